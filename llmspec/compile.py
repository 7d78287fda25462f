"""Stage 4: compile a resolved project into a graph of jobs, each carrying every input it reads.

Each job kind's record (`llmspec.jobs.KINDS`) builds its jobs; a kind that needs another's jobs
asks for them with `Compiler.get`, so jobs come out in dependency order. A job's `inputs` are
frozen JSON values (model settings, prompt texts, the output constraint, retrieval settings,
shard range and row digests, metric specs, gates, target settings; files enter as digests), and

    key = digest(kind, kind version, inputs, the keys of its dependencies by role)

Jobs never read the spec at run time, so what a job reads and what its key hashes are the same
thing by construction. Machine-local facts (absolute paths, resources) go in `Job.local`,
which is not keyed. Nothing here imports ray, torch, transformers or guidance.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from llmspec import __version__
from llmspec.errors import LlmspecError, Loc
from llmspec.facts import Facts, summarize
from llmspec.hashing import HashCache, canonical, digest

TOOLCHAIN = (
    "guidance",
    "llguidance",
    "transformers",
    "torch",
    "ray",
    "sentence-transformers",
    "peft",
)
Key = str | tuple[str, ...]  # a key of a fact, or a path into it (`("files", "kb/a.md")`)
Origin = tuple[str, str, tuple[Key, ...] | None]  # (fact section, name, the keys it takes)
_SINGULAR = {
    "models": "model",
    "prompts": "prompt",
    "schemas": "schema",
    "datasets": "dataset",
    "knowledge": "knowledge",
}


@dataclass(frozen=True, slots=True)
class Job:
    """One unit of work and everything it reads.

    `deps` maps a role (`"index"`, `"shard.0"`) to a job id. `origin` names, for inputs taken
    from a fact, the fact they came from (section, name, keys), so `plan` can say in words what
    moved. `pool` is `driver`, `general` or `model:<name>`; `resources` its replicas and
    CPUs/GPUs per replica."""

    id: str
    kind: str
    inputs: dict[str, Any]
    deps: dict[str, str]
    key: str
    local: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, Origin] = field(default_factory=dict)
    loc: Loc | None = None
    pool: str = "general"
    resources: dict[str, float] = field(default_factory=dict)

    def lock_inputs(self) -> dict[str, Any]:
        """Each input as the lock records it: a short scalar as itself, anything else by its
        digest, so `plan` can tell which input moved (and, for short ones, from what)."""
        return {k: lock_value(v) for k, v in sorted(self.inputs.items())}


INLINE = 120  # inputs whose JSON is at most this long are recorded as themselves


def lock_value(value: Any) -> Any:
    """An input as the lock records it: itself when short, else its digest (a long value would
    make the lock unreadable, and its digest still shows any change).

    >>> lock_value(3), lock_value({"kind": "export"}), lock_value("x" * 200)[:7]
    (3, {'kind': 'export'}, 'sha256:')
    """
    if isinstance(value, str) and value.startswith("sha256:"):
        return value
    if len(canonical(value)) <= INLINE:
        return value
    return digest(value)


@dataclass(frozen=True)
class JobGraph:
    """Jobs in dependency order, the facts the lock records, and where the project lives."""

    project: str
    root: Path
    jobs: dict[str, Job]
    facts: dict[str, dict[str, Any]]
    limit: int | None = None  # a smoke run over the first `limit` rows: never locked

    def closure(self, ids: set[str]) -> set[str]:
        """`ids` and every job they depend on, directly or not."""
        out: set[str] = set()
        todo = list(ids)
        while todo:
            jid = todo.pop()
            if jid not in out:
                out.add(jid)
                todo += self.jobs[jid].deps.values()
        return out

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {j: [] for j in self.jobs}
        for job in self.jobs.values():
            for d in job.deps.values():
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


def pick(fact: Any, keys: tuple[Key, ...]) -> Any:
    """The part of a fact that `keys` name; a tuple key is a path, kept nested.

    >>> pick({"a": 1, "files": {"x.md": "d1", "y.md": "d2"}, "b": 2}, ("a", ("files", "y.md")))
    {'a': 1, 'files': {'y.md': 'd2'}}
    """
    if not isinstance(fact, dict):
        return fact
    out: dict[str, Any] = {}
    for key in keys:
        path = key if isinstance(key, tuple) else (key,)
        node, target = fact, out
        for i, part in enumerate(path):
            if not isinstance(node, dict) or part not in node:
                break
            if i == len(path) - 1:
                target[part] = node[part]
            else:
                node, target = node[part], target.setdefault(part, {})
    return out


class Inputs:
    """A job's named inputs as they are gathered: values taken from facts remember where they
    came from (for the plan's reasons), others are set directly.

    >>> ins = Inputs(None); ins.set("repeats", 3).values
    {'repeats': 3}
    """

    def __init__(self, facts: Facts | None):
        self.facts = facts
        self.values: dict[str, Any] = {}
        self.origin: dict[str, Origin] = {}

    def take(self, name: str, section: str, entity: str, keys: tuple[Key, ...] | None = None):
        """Input `name` is the fact `section.entity` (or its `keys`; a key may be a path into
        the fact, such as `("files", "kb/a.md")`: one file of a knowledge source)."""
        whole = getattr(self.facts, _SINGULAR[section])(entity)
        self.values[name] = whole if keys is None else pick(whole, keys)
        self.origin[name] = (section, entity, keys)
        return self

    def set(self, name: str, value: Any, origin: Origin | None = None) -> Inputs:
        self.values[name] = value
        if origin is not None:
            self.origin[name] = origin
        return self


class Compiler:
    """What a kind's `build` works with: the resolved project, its facts, and the jobs so far."""

    def __init__(
        self,
        rp: Any,
        cache: HashCache,
        lock: Any = None,
        limit: int | None = None,
        served: dict[str, Any] | None = None,
    ):
        self.rp = rp
        self.lock = lock  # the current lock: what `baseline` gates compare with
        self.spec = rp.spec
        self.root: Path = rp.root
        # What the last probe of each remote model recorded in the lock, or a fresh probe's.
        from llmspec.jobs.drift import identity

        known = dict(lock.section("drift")) if lock is not None else {}
        known |= served or {}
        self.facts = Facts(rp, cache, limit, {m: identity(e) for m, e in known.items()})
        self.facts.produce = self.get  # a made model's fact names the job that makes it
        self.jobs: dict[str, Job] = {}
        self._built: dict[tuple[str, str], Any] = {}

    def loc(self, *path: Any) -> Loc:
        return self.rp.sources.loc(tuple(path))

    def inputs(self) -> Inputs:
        return Inputs(self.facts)

    def get(self, kind: str, name: str) -> Any:
        """The handle `kind`'s build returned for `name` (a job, or several), built once."""
        from llmspec.jobs import kind as record

        k = (kind, name)
        if k not in self._built:
            self._built[k] = record(kind).build(self, name)
        return self._built[k]

    def job(
        self,
        kind: str,
        job_id: str,
        inputs: Inputs,
        *,
        deps: dict[str, Job] | None = None,
        local: dict[str, Any] | None = None,
        loc: Loc | None = None,
        model: str | None = None,
    ) -> Job:
        """Make a job (its key from its inputs and its dependencies' keys) and add it.
        `model` puts it in that model's pool."""
        from llmspec.jobs import kind as record

        rec = record(kind)
        deps = dict(deps or {})
        # A job that reads a model whose weights a job makes (fine-tuned, quantized) needs
        # that job done first: the dependency is added here, for every kind alike.
        for section, entity, _keys in inputs.origin.values():
            made = getattr(self.spec.models.get(entity), "made_by", None)
            if section == "models" and made is not None and job_id != f"{made}.{entity}":
                deps.setdefault(f"weights.{entity}", self.get(made, entity).job)
        # Round-trip through canonical JSON: inputs become plain, frozen-by-convention data that
        # pickles to workers and digests the same everywhere.
        import json

        values = json.loads(canonical(inputs.values))
        key = digest(
            {
                "kind": kind,
                "version": rec.version,
                "inputs": values,
                "deps": {role: d.key for role, d in sorted(deps.items())},
            }
        )
        if rec.pool == "model" and model is not None:
            pool, resources = f"model:{model}", self.facts.model_resources(model)
        else:
            pool, resources = rec.pool, {}
        job = Job(
            job_id,
            kind,
            values,
            {role: d.id for role, d in deps.items()},
            key,
            local or {},
            dict(inputs.origin),
            loc,
            pool,
            resources,
        )
        if job_id in self.jobs:
            raise AssertionError(f"two jobs named {job_id}")
        self.jobs[job_id] = job
        return job


def compile_project(
    rp: Any,
    cache: HashCache | None = None,
    lock: Any = None,
    limit: int | None = None,
    served: dict[str, Any] | None = None,
) -> JobGraph:
    """Compile a resolved project into a `JobGraph` in dependency order. `lock` (the project's
    current lock) is read by gates that compare with a baseline and for what each remote model
    said it was when last probed; `served` (model -> a fresh probe's lock entry) replaces
    that (`plan --refresh`, apply); `limit` keeps the first rows of each dataset (a smoke run:
    its jobs have keys of their own)."""
    from llmspec.jobs import all_kinds

    c = Compiler(rp, cache or HashCache(None), lock, limit, served)
    p = rp.spec
    try:
        for rec in all_kinds():
            for name in rec.names(p):
                c.get(rec.name, name)
        # Facts of what no job reads yet (an unused prompt) are recorded too.
        for name in p.models:
            c.facts.model(name)
        for name in p.prompts:
            c.facts.prompt(name)
        for name in rp.schemas:
            c.facts.schema(name)
        for name in p.datasets:
            c.facts.dataset(name)
        for name in p.knowledge:
            c.facts.knowledge(name)
    except OSError as e:
        raise LlmspecError.one("E031", f"cannot read {e.filename}: {e.strerror}") from None
    return JobGraph(p.name, rp.root, c.jobs, c.facts.lock_view(), limit)


__all__ = ["Compiler", "Job", "JobGraph", "compile_project", "summarize", "toolchain"]
