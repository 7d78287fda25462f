"""Job kinds: one module per kind declares everything about it in a `JobKind` record.

A record says how the kind compiles from a project (`names` and `build`), how a job runs
(`run`), where it runs (`pool`), how the graph draws it (`shape`), what it adds to the lock
(`lock_section` and `lock_entry`), how many rows the progress bar counts for it (`rows`),
whether its result may be reused (`cache`), whether it leaves a folder in the store (`tree`),
whether it reports progress while it runs (`progress`) and which files of the project mirror
its output (`exports`, written by apply from `export_bytes`: a generated test set's frozen
file). compile, plan, apply, the lock, lock diff, the graph, progress and the runners read these
records and nothing else about a kind, so adding a kind is one module and one line in `KINDS`.

`run(job, deps, ctx) -> (output, meta)`: `output` is deterministic and digested into the lock;
`meta` (timings, observed server identity, embeddings whose last bits vary) is stored beside it.
A job reads only its own inputs (`job.inputs`, keyed), its machine-local part (`job.local`:
paths, resources; unkeyed), its dependencies' outputs (`deps[role]`) and the caches in `ctx`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

KINDS: dict[str, str] = {
    "chunks": "llmspec.jobs.chunks:KIND",
    "index": "llmspec.jobs.index:KIND",
    "testgen": "llmspec.jobs.testgen:KIND",
    "finetune": "llmspec.jobs.finetune:KIND",
    "quantize": "llmspec.jobs.quantize:KIND",
    "generate": "llmspec.jobs.generate:KIND",
    "judge": "llmspec.jobs.judge:KIND",
    "perplexity": "llmspec.jobs.perplexity:KIND",
    "score": "llmspec.jobs.score:KIND",
    "summary": "llmspec.jobs.summary:KIND",
    "probes": "llmspec.jobs.probes:KIND",
    "redteam": "llmspec.jobs.redteam:KIND",
    "detect": "llmspec.jobs.detect:KIND",
    "gate": "llmspec.jobs.gate:KIND",
    "deploy": "llmspec.jobs.deploy:KIND",
    "drift": "llmspec.jobs.drift:KIND",
}
"""Kind name -> "module:record", in compile order; imported when first used."""

Pool = Literal["driver", "general", "model"]
"""driver: cheap pure-Python work, run in the applying process; general: one shared worker
(keeps embedding models loaded); model: the pool of the model named in `job.local["pool"]`."""


@dataclass(frozen=True)
class JobKind:
    name: str
    version: int  # bump when the kind's code would produce other outputs from the same inputs
    names: Callable[[Any], Iterable[str]]  # project spec -> what to build (e.g. suite names)
    build: Callable[[Any, str], Any]  # (Compiler, name) -> the jobs' handle, memoised
    run: Callable[[Any, Deps, JobContext], tuple[Any, dict[str, Any]]]
    pool: Pool = "general"
    shape: str = "box"  # box, cylinder, folder, ellipse, diamond, house, hexagon, note
    lock_section: str | None = None  # a lock section this kind's results fill, by entry name
    lock_name: Callable[[Any], str] | None = None  # job -> its entry's name in that section
    lock_entry: Callable[[Any, Any], Any] | None = None  # (job, output) -> the entry
    rows: Callable[[Any], int] | None = None  # rows the progress bar counts for a job
    cache: Literal["content", "always"] = "content"  # always: live probes, never reused
    exports: Callable[[Any], tuple[str, ...]] | None = None  # job -> project files it writes
    export_bytes: Callable[[Any, Any], dict[str, bytes]] | None = None  # (job, output) -> them
    description: str = ""
    tree: bool = False  # its result includes a folder in the store (weights): stored only with it
    progress: bool = False  # it reports progress while it runs (`ctx.progress`: epoch, loss)
    missing: str = "result not in .llmspec/"  # plan's reason when the store lacks its result


_loaded: dict[str, JobKind] = {}


def kind(name: str) -> JobKind:
    """The record of a job kind (imports its module the first time)."""
    if name not in _loaded:
        module, _, attr = KINDS[name].partition(":")
        _loaded[name] = getattr(importlib.import_module(module), attr)
    return _loaded[name]


def all_kinds() -> list[JobKind]:
    return [kind(name) for name in KINDS]


def register(record: JobKind, impl: str) -> None:
    """Add a kind (its record at `impl`, "module:attr") after the built-in ones."""
    KINDS[record.name] = impl
    _loaded[record.name] = record


def unregister(name: str) -> None:
    KINDS.pop(name, None)
    _loaded.pop(name, None)


class JobError(Exception):
    """A job failed for a reason worth showing the user (no traceback)."""


class Blocked(Exception):
    """A job must not run: a gate it requires failed."""


class Deps(Mapping):
    """Dependency outputs by role (`deps["index"]`), read from the store when a job asks for
    one; only the last one read is kept, so a score job over many shards holds one shard at a
    time. `deps.meta[role]` holds their run-to-run details (timings, embeddings)."""

    def __init__(self, roles: Mapping[str, str], load: Callable[[str], tuple[Any, dict]]):
        self._roles = dict(roles)  # role -> job id
        self._load = load
        self._last: tuple[str | None, Any] = (None, None)
        self.meta: Mapping[str, dict] = _MetaView(self)

    @classmethod
    def of(cls, values: dict[str, tuple[Any, dict]]) -> Deps:
        """Deps over (output, meta) pairs already in memory, by role."""
        return cls({r: r for r in values}, values.__getitem__)

    def pair(self, role: str) -> tuple[Any, dict]:
        job_id = self._roles[role]
        if self._last[0] != job_id:
            self._last = (job_id, self._load(job_id))
        return self._last[1]

    def job_id(self, role: str) -> str:
        return self._roles[role]

    def __getitem__(self, role: str) -> Any:
        return self.pair(role)[0]

    def __iter__(self) -> Iterator[str]:
        return iter(self._roles)

    def __len__(self) -> int:
        return len(self._roles)


class _MetaView(Mapping):
    def __init__(self, deps: Deps):
        self._deps = deps

    def __getitem__(self, role: str) -> dict:
        return self._deps.pair(role)[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._deps)

    def __len__(self) -> int:
        return len(self._deps)


_EMBEDDERS: dict[tuple[str, tuple], Any] = {}
"""Embedding models loaded in this process: an in-process apply (or test) that runs again
does not load MiniLM again."""


@dataclass
class JobContext:
    """Caches a worker keeps between jobs: loaded models, embedders, dataset line offsets.
    Holds nothing a job's output could depend on besides what the job itself names."""

    providers: dict[str, Any] = field(default_factory=dict)
    embedders: dict[str, Any] = field(default_factory=dict)
    offsets: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    files: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # (job id, point) while a job runs: epoch, step, loss; the runner sends it to the driver
    progress: Callable[[str, dict[str, Any]], None] | None = None
    trainer: Literal["inline", "ray"] = "inline"  # where training runs: here, or Ray Train
    progress_to: str | None = None  # under Ray: the actor Ray Train workers send progress to

    def provider(self, settings: dict[str, Any]) -> Any:
        """The provider for a model's settings (keyed fact + local part), loaded once."""
        from llmspec.hashing import digest

        k = digest(settings)
        if k not in self.providers:
            from llmspec.providers import load_provider

            self.providers[k] = load_provider(settings)
        return self.providers[k]

    def embedder(self, path: str) -> Any:
        """The sentence-transformers model in folder `path`, loaded once per process (and
        folder content: its files' sizes and times)."""
        if path not in self.embedders:
            import os

            from llmspec.jobs.index import load_embedder

            stamp = tuple(
                (e.name, e.stat().st_size, e.stat().st_mtime_ns)
                for e in sorted(os.scandir(path), key=lambda e: e.name)
                if e.is_file()
            )
            if (path, stamp) not in _EMBEDDERS:
                _EMBEDDERS[(path, stamp)] = load_embedder(path)
            self.embedders[path] = _EMBEDDERS[(path, stamp)]
        return self.embedders[path]

    def dataset_rows(self, local: dict[str, Any], start: int, end: int) -> list[dict[str, Any]]:
        """Rows `start:end` of a dataset file. A JSONL shard reads only its own bytes (where
        they lie was found when the plan was made: `local["bytes"]`), so memory does not grow
        with the dataset and the rest of the file is not read; other formats are read whole
        once per worker."""
        from llmspec import data

        path, fmt, content = local["path"], local["format"], local["file"]
        if fmt == "jsonl" and "bytes" in local:
            first, last = local["bytes"]
            return data.read_jsonl_bytes(_p(path), first, last, local["shown"])
        if fmt != "jsonl":
            if (path, content) not in self.files:
                self.files[(path, content)] = list(data.read_rows(_p(path), fmt, local["shown"]))
            return self.files[(path, content)][start:end]
        if (path, content) not in self.offsets:
            self.offsets[(path, content)] = data.jsonl_offsets(_p(path))
        return data.read_jsonl_range(_p(path), self.offsets[(path, content)], start, end)


def _p(path: str) -> Any:
    from pathlib import Path

    return Path(path)


def run_job(job: Any, deps: Deps, ctx: JobContext) -> tuple[Any, dict[str, Any]]:
    return kind(job.kind).run(job, deps, ctx)
