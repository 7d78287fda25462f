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
        self.live: dict[str, Any] = {}  # job id -> its own bar while it reports progress
        self.shown: dict[str, int] = {}  # job id -> the last epoch printed (no terminal)
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
        if kind == "progress":  # `outcome` is the job's point: epoch, step, loss
            return self._point(job_id, outcome)
        if self.bar is not None:
            if job_id in self.live:
                self.bar.remove_task(self.live.pop(job_id))
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

    def _point(self, job_id: str, point: dict[str, Any]) -> None:
        text = describe_point(point)
        if self.bar is not None:
            total = point.get("steps") or None
            if job_id not in self.live:
                self.live[job_id] = self.bar.add_task(f"{job_id} {text}", total=total)
            self.bar.update(
                self.live[job_id], completed=point.get("step", 0), description=f"{job_id} {text}"
            )
            return
        if self.quiet:
            return
        epoch, epochs = point.get("epoch", 0), point.get("epochs", 0)
        every = max(1, epochs // 10)
        if epoch != self.shown.get(job_id) and (epoch in (1, epochs) or epoch % every == 0):
            self.shown[job_id] = epoch
            click.echo(f"  {job_id}: {text}")


def describe_point(point: dict[str, Any]) -> str:
    """A progress point in words.

    >>> describe_point({"epoch": 3, "epochs": 30, "step": 9, "steps": 90, "loss": 1.23456})
    'epoch 3/30, step 9/90, loss 1.2346'
    """
    parts = []
    if "epoch" in point:
        parts.append(f"epoch {point['epoch']}/{point.get('epochs', '?')}")
    if "step" in point:
        parts.append(f"step {point['step']}/{point.get('steps', '?')}")
    if point.get("loss") is not None:
        parts.append(f"loss {point['loss']:.4f}")
    return ", ".join(parts)
