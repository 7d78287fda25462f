"""The work each kind of job does: plain functions, the same under every runner.

`run_job(job, deps, ctx)` returns `(output, meta)`: `output` is what the job produced (its
digest goes into the lock, so it must be deterministic), `meta` is what varies from run to run
(timings, hosts) and stays in the store and the run log.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmspec.resolve import ResolvedProject

REGISTRY = {
    "index": "llmspec.jobs.index:run",
    "testgen": "llmspec.jobs.testgen:run",
    "generate": "llmspec.jobs.generate:run",
    "score": "llmspec.jobs.score:run",
    "gate": "llmspec.jobs.gate:run",
    "deploy": "llmspec.jobs.deploy:run",
}


class Deps(Mapping):
    """Dependency outputs by job id, read from the store when a job asks for one; only the
    last one read is kept, so a score job over many shards holds one shard at a time.
    `.meta[job_id]` holds their run-to-run details (timings, embeddings)."""

    def __init__(self, ids: Iterable[str], load: Callable[[str], tuple[Any, dict]]):
        self._ids = tuple(ids)
        self._load = load
        self._last: tuple[str | None, Any] = (None, None)
        self.meta: Mapping[str, dict] = _MetaView(self)

    @classmethod
    def of(cls, values: dict[str, tuple[Any, dict]]) -> Deps:
        """Deps over (output, meta) pairs already in memory."""
        return cls(values, values.__getitem__)

    def pair(self, key: str) -> tuple[Any, dict]:
        if key not in self._ids:
            raise KeyError(key)
        if self._last[0] != key:
            self._last = (key, self._load(key))
        return self._last[1]

    def __getitem__(self, key: str) -> Any:
        return self.pair(key)[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class _MetaView(Mapping):
    def __init__(self, deps: Deps):
        self._deps = deps

    def __getitem__(self, key: str) -> dict:
        return self._deps.pair(key)[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._deps)

    def __len__(self) -> int:
        return len(self._deps)


class JobError(Exception):
    """A job failed for a reason worth showing the user (no traceback)."""


class Blocked(Exception):
    """A job must not run: a gate it requires failed."""


@dataclass
class JobContext:
    """What a job may use besides its dependencies' outputs. One per worker process."""

    project: ResolvedProject
    providers: dict[str, Any] = field(default_factory=dict)
    embedders: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    offsets: dict[str, list[int]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.project.root

    def provider(self, model: str) -> Any:
        """The model's provider, loaded once per process."""
        if model not in self.providers:
            from llmspec.providers import load_provider

            self.providers[model] = load_provider(self.project.spec.models[model], self.root)
        return self.providers[model]

    def rows(self, dataset: str) -> list[dict[str, Any]]:
        """All of a file dataset's rows, read once per process."""
        if dataset not in self.datasets:
            from llmspec import data
            from llmspec.load import shown_path

            path, fmt = self._dataset_file(dataset)
            self.datasets[dataset] = list(data.read_rows(path, fmt, shown_path(path)))
        return self.datasets[dataset]

    def shard(self, dataset: str, start: int, end: int) -> list[dict[str, Any]]:
        """Rows `start:end` of a file dataset. A JSONL file is read by seeking to the shard
        (its line offsets are found once per process), so memory does not grow with the
        dataset; other formats are read whole once."""
        from llmspec import data

        path, fmt = self._dataset_file(dataset)
        if fmt != "jsonl":
            return self.rows(dataset)[start:end]
        if dataset not in self.offsets:
            self.offsets[dataset] = data.jsonl_offsets(path)
        return data.read_jsonl_range(path, self.offsets[dataset], start, end)

    def _dataset_file(self, dataset: str) -> tuple[Path, str]:
        from llmspec import data

        d = self.project.spec.datasets[dataset]
        return self.root / d.path, data.dataset_format(d.path, d.format) or "jsonl"

    def embedder(self, name: str) -> Any:
        if name not in self.embedders:
            from llmspec.jobs.index import load_embedder

            self.embedders[name] = load_embedder(name, self.root)
        return self.embedders[name]


def run_job(job: Any, deps: dict[str, Any], ctx: JobContext) -> tuple[Any, dict[str, Any]]:
    module, _, attr = REGISTRY[job.kind].partition(":")
    fn = getattr(importlib.import_module(module), attr)
    return fn(job, deps, ctx)
