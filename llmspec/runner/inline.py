"""The in-process runner: jobs one after another in this process. For debugging, tests and
small projects; the same job code runs under the Ray runner."""

from __future__ import annotations

from typing import Any

from llmspec.jobs import Deps, JobContext
from llmspec.runner import OnOutcome, OnProgress, OnStart, Outcome, OutputOf, blocked_by, execute


class InlineRunner:
    name = "inline"

    def __init__(self, **options: Any):
        self.ctx = JobContext()

    def run(
        self,
        graph: Any,
        jobs: list[Any],
        output_of: OutputOf,
        on_start: OnStart,
        on_outcome: OnOutcome,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.ctx.progress = on_progress
        finished: dict[str, Outcome] = {}
        for job in jobs:
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
