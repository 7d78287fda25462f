"""Runners execute jobs: a small contract with backends chosen by name.

A runner gets the jobs to run (in dependency order), a way to read the outputs of jobs that
are already done, and a callback that it calls in the driver process as each job ends — the
callback writes the result to the store at once — and another for progress that jobs report
while they run (a fine-tune's epochs). A job whose dependency failed is skipped; one
whose required gate failed is blocked; neither stops independent jobs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

REGISTRY = {
    "inline": "llmspec.runner.inline:InlineRunner",
    "ray": "llmspec.runner.ray:RayRunner",
}

Status = Literal["done", "failed", "skipped", "blocked"]


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: Status
    output: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


OutputOf = Callable[[str], tuple[Any, dict[str, Any]]]
OnOutcome = Callable[[Outcome], None]
OnStart = Callable[[str], None]
OnProgress = Callable[[str, dict[str, Any]], None]
"""(job id, point) while a job runs, in the driver: a fine-tune's epoch, step and loss."""


class Runner(Protocol):
    name: str

    def run(
        self,
        graph: Any,
        jobs: list[Any],
        output_of: OutputOf,
        on_start: OnStart,
        on_outcome: OnOutcome,
        on_progress: OnProgress | None = None,
    ) -> None: ...

    def close(self) -> None: ...


def make_runner(name: str, **options: Any) -> Runner:
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)(**options)


def blocked_by(job: Any, finished: dict[str, Outcome]) -> Outcome | None:
    """The outcome a job gets without running, when one of its dependencies did not finish."""
    for dep in job.deps.values():
        o = finished.get(dep)
        if o is None or o.status == "done":
            continue
        if o.status == "blocked":  # a failed gate blocks everything downstream of it
            return Outcome(job.id, "blocked", error=o.error)
        return Outcome(job.id, "skipped", error=f"depends on {dep}, which {o.status}")
    return None


def execute(job: Any, deps: Any, ctx: Any) -> Outcome:
    """Run one job's work and turn every failure into an Outcome (never an exception)."""
    import time
    import traceback

    from llmspec.errors import LlmspecError
    from llmspec.jobs import Blocked, JobError, run_job

    t0 = time.perf_counter()
    try:
        output, meta = run_job(job, deps, ctx)
    except Blocked as e:
        return Outcome(job.id, "blocked", error=str(e), seconds=time.perf_counter() - t0)
    except (JobError, LlmspecError) as e:
        return Outcome(job.id, "failed", error=str(e), seconds=time.perf_counter() - t0)
    except Exception as e:  # a bug or an environment problem: keep the whole story
        tb = traceback.format_exc(limit=8)
        return Outcome(
            job.id,
            "failed",
            error=f"{type(e).__name__}: {e}",
            meta={"traceback": tb},
            seconds=time.perf_counter() - t0,
        )
    return Outcome(job.id, "done", output, meta, seconds=time.perf_counter() - t0)
