"""Runners execute jobs: a small contract with backends chosen by name.

A runner gets the jobs to run (in dependency order), a way to read the outputs of jobs that
are already done, and a callback that it calls in the driver process as each job ends — the
callback writes the result to the store at once. A job whose dependency failed is skipped; one
whose required gate failed is blocked; neither stops independent jobs.
"""

from __future__ import annotations

import importlib
import os
import sys
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


class Runner(Protocol):
    name: str

    def prepare(self, jobs: list[Any], root: Any = None) -> None:
        """Start what `run` will need for these jobs (Ray, actors) in the background, so that
        it comes up while the plan is printed; returns at once. Optional to call."""

    def run(
        self,
        graph: Any,
        jobs: list[Any],
        output_of: OutputOf,
        on_start: OnStart,
        on_outcome: OnOutcome,
    ) -> None: ...

    def close(self) -> None: ...


def make_runner(name: str, **options: Any) -> Runner:
    module, _, attr = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module), attr)(**options)


SMALL_PLAN_ROWS = 256
"""A plan with at most this many generations (rows x repeats) for at most one model replica is
small: starting Ray (seconds) would cost more than anything it could run in parallel."""


def small_plan(jobs: list[Any]) -> str | None:
    """Why `jobs` are small enough to run in this process without Ray, or None.

    Small: every model-bound job is for one model, which has one replica, and the jobs
    generate at most `SMALL_PLAN_ROWS` rows. Ray could not run anything side by side that is
    worth its start-up then.
    """
    from llmspec.jobs import kind

    pools = {j.pool for j in jobs if j.pool.startswith("model:")}
    if len(pools) > 1:
        return None
    replicas = {int(j.resources.get("replicas", 1)) for j in jobs if j.pool in pools}
    if any(r > 1 for r in replicas):
        return None
    rows = 0
    for j in jobs:
        rec = kind(j.kind)
        rows += rec.rows(j) if rec.rows is not None else 0
    if rows > SMALL_PLAN_ROWS:
        return None
    models = "one model replica" if pools else "no model"
    return f"{rows} generation{'s' if rows != 1 else ''}, {models}"


def threads_for(configured: int | None) -> int:
    """Threads per model replica: the profile's `threads`, else OMP_NUM_THREADS, else 1.

    One thread per replica is the default: replicas and the other work of an apply run side by
    side, and torch's default (a thread per core in every process) oversubscribes the machine
    (measured on 2 busy cores: 2 threads took 10x as long as 1 for the same work).

    >>> threads_for(3), threads_for(None) >= 1
    (3, True)
    """
    if configured:
        return int(configured)
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) >= 1 else 1


def use_threads(n: int) -> dict[str, str | None]:
    """Make this process's torch (and OpenMP, MKL, llama.cpp) use `n` threads, whether torch is
    loaded yet or not; returns what the environment held before, for `restore_threads`."""
    before = {k: os.environ.get(k) for k in THREAD_VARS}
    for k in THREAD_VARS:
        os.environ[k] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        before["torch"] = str(torch.get_num_threads())
        torch.set_num_threads(n)
    return before


def restore_threads(before: dict[str, str | None]) -> None:
    for k in THREAD_VARS:
        if before.get(k) is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = before[k]  # type: ignore[assignment]
    torch = sys.modules.get("torch")
    if torch is not None and before.get("torch"):
        torch.set_num_threads(int(before["torch"]))  # type: ignore[arg-type]


THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
