"""The work each kind of job does: plain functions, the same under every runner.

`run_job(job, deps, ctx)` returns `(output, meta)`: `output` is what the job produced (its
digest goes into the lock, so it must be deterministic), `meta` is what varies from run to run
(timings, hosts) and stays in the store and the run log.
"""

from __future__ import annotations

import importlib
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


class Deps(dict):
    """Dependency outputs by job id; `.meta[job_id]` holds their run-to-run details."""

    def __init__(self, outputs: dict[str, Any], meta: dict[str, dict] | None = None):
        super().__init__(outputs)
        self.meta: dict[str, dict] = meta or {}


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
        """A file dataset's rows, read once per process (shards slice them)."""
        if dataset not in self.datasets:
            from llmspec import data
            from llmspec.load import shown_path

            d = self.project.spec.datasets[dataset]
            path = self.root / d.path
            fmt = data.dataset_format(d.path, d.format)
            self.datasets[dataset] = list(data.read_rows(path, fmt, shown_path(path)))
        return self.datasets[dataset]

    def embedder(self, name: str) -> Any:
        if name not in self.embedders:
            from llmspec.jobs.index import load_embedder

            self.embedders[name] = load_embedder(name, self.root)
        return self.embedders[name]


def run_job(job: Any, deps: dict[str, Any], ctx: JobContext) -> tuple[Any, dict[str, Any]]:
    module, _, attr = REGISTRY[job.kind].partition(":")
    fn = getattr(importlib.import_module(module), attr)
    return fn(job, deps, ctx)
