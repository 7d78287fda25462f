"""Jobs and rows as they finish: a rich progress bar on a terminal, plain lines otherwise.
How many rows a job counts for comes from its kind's record."""

from __future__ import annotations

import sys
from typing import Any

import click


def rows_of(job: Any) -> int:
    from llmspec.jobs import kind

    rows = kind(job.kind).rows
    return rows(job) if rows else 0


class Progress:
    def __init__(self, graph: Any, plan: Any, quiet: bool):
        self.quiet = quiet
        self.graph = graph
        jobs = [graph.jobs[j] for j in plan.to_run]
        self.rows = {j.id: rows_of(j) for j in jobs}
        self.bar: Any = None
        if not quiet and sys.stderr.isatty() and jobs:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self.bar = Bar(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.jobs_task = self.bar.add_task("jobs", total=len(jobs))
            self.rows_task = self.bar.add_task("rows", total=sum(self.rows.values()) or None)

    def __enter__(self) -> Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, kind: str, job_id: str, outcome: Any) -> None:
        if kind == "start":
            return
        if self.bar is not None:
            self.bar.advance(self.jobs_task)
            if kind in ("done", "reused"):
                self.bar.advance(self.rows_task, self.rows.get(job_id, 0))
            if outcome is not None and outcome.error:
                self.bar.console.print(f"[red]{job_id}: {kind}[/red]: {outcome.error}")
            return
        if self.quiet and kind in ("done", "reused"):
            return
        mark = {
            "done": "ok",
            "reused": "ok (stored)",
            "failed": "FAILED",
            "skipped": "skipped",
            "blocked": "blocked",
        }[kind]
        secs = f" {outcome.seconds:.2f}s" if outcome is not None and kind == "done" else ""
        line = f"  {job_id}: {mark}{secs}"
        if outcome is not None and outcome.error:
            line += f"\n      {outcome.error}"
        click.echo(line, err=kind in ("failed", "skipped", "blocked"))
