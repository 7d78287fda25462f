"""The in-process runner: jobs one after another in this process. For debugging, tests and
small projects; the same job code runs under the Ray runner."""

from __future__ import annotations

from typing import Any

from llmspec.jobs import Deps, JobContext
from llmspec.runner import (
    OnOutcome,
    OnStart,
    Outcome,
    OutputOf,
    blocked_by,
    execute,
    restore_threads,
    threads_for,
    use_threads,
)


class InlineRunner:
    """Runs jobs here, one after another, with `threads` torch threads (the profile's, else
    OMP_NUM_THREADS, else 1), as one Ray replica would; the process's setting is restored at
    the end of `run`."""

    name = "inline"

    def __init__(self, profile: Any = None, **options: Any):
        self.ctx = JobContext()
        self.threads = threads_for(getattr(profile, "threads", None))

    def prepare(self, jobs: list[Any], root: Any = None) -> None:
        """Nothing to start ahead of `run`."""

    def run(
        self,
        graph: Any,
        jobs: list[Any],
        output_of: OutputOf,
        on_start: OnStart,
        on_outcome: OnOutcome,
    ) -> None:
        before = use_threads(self.threads)
        try:
            self._run(jobs, output_of, on_start, on_outcome)
        finally:
            restore_threads(before)

    def _run(
        self, jobs: list[Any], output_of: OutputOf, on_start: OnStart, on_outcome: OnOutcome
    ) -> None:
        from llmspec.runner.interrupts import current

        stop = current()
        finished: dict[str, Outcome] = {}
        for job in jobs:
            if stop.requested:  # first Ctrl-C: what ran is stored, nothing new starts
                raise KeyboardInterrupt
            early = blocked_by(job, finished)
            if early is not None:
                finished[job.id] = early
                on_outcome(early)
                continue
            # read from the store when the job asks: finished jobs are written at once
            deps = Deps(job.deps, output_of)
            on_start(job.id)
            outcome = execute(job, deps, self.ctx)
            finished[job.id] = outcome
            on_outcome(outcome)

    def close(self) -> None:
        self.ctx = JobContext()
