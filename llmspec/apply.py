"""Stages 6 and 7: run a plan, store each result as it lands, then write the new lock.

A job's output goes to the store the moment it finishes; the lock is written once, atomically,
at the end (also after failures and Ctrl-C, for the jobs that did finish). A crash at any
moment leaves the old lock or the new one, and the next apply finds every finished job in the
store by key and does not run it again.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmspec.compile import JobGraph, toolchain
from llmspec.errors import LlmspecError, Loc
from llmspec.lock import GateResult, Lock, LockedJob, SuiteResult, read_lock, rounded, write_lock
from llmspec.plan import Plan, SavedPlan, graph_digest
from llmspec.runner import Outcome, Runner
from llmspec.store import Store


@dataclass
class ApplyReport:
    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    gates_failed: list[str] = field(default_factory=list)
    lock_written: bool = False
    interrupted: bool = False
    lock: Lock | None = None  # the lock as written at the end

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped or self.interrupted)


def check_saved_plan(saved: SavedPlan, graph: JobGraph, lock_digest: str, where: str) -> None:
    """Refuse a saved plan when anything it was computed from has moved."""
    if saved.project != graph.project:
        raise LlmspecError.one(
            "E082",
            f"saved plan is for project `{saved.project}`, not `{graph.project}`",
            Loc(where),
        )
    if saved.lock_digest != lock_digest:
        raise LlmspecError.one(
            "E083",
            "saved plan is stale: llmspec.lock changed since the plan was made",
            Loc(where),
            "run `llmspec plan --out plan.json` again and review it",
        )
    if saved.graph_digest != graph_digest(graph):
        raise LlmspecError.one(
            "E083",
            "saved plan is stale: the project changed since the plan was made",
            Loc(where),
            "run `llmspec plan --out plan.json` again and review it",
        )


def apply_plan(
    plan: Plan,
    graph: JobGraph,
    store: Store,
    runner: Runner,
    on_event: Callable[[str, str, Outcome | None], None] | None = None,
) -> ApplyReport:
    """Run the jobs the plan says to run; store each result; write the lock at the end."""
    root = graph.resolved.root
    report = ApplyReport()
    emit = on_event or (lambda kind, job_id, outcome: None)
    todo = set(plan.to_run)
    for change in plan.changes:
        if change.cached:  # the store holds it already (an interrupted apply, a revert)
            report.reused.append(change.job_id)
    # What the lock will record, gathered once: reading a large store twice would double the
    # cost of an apply with little to do.
    digests: dict[str, str] = {}
    gates: dict[str, Any] = {}

    def remember(key: str, kind: str, output: Any, digest: str) -> None:
        digests[key] = digest
        if kind == "gate":
            gates[key] = output

    jobs = []
    for job in graph.jobs.values():
        # Read the entry, not just its name: an entry cut short by a power cut (the store is
        # not fsynced) or removed since the plan counts as missing, and its job runs again.
        stored = store.get(job.key)
        if stored is not None:
            remember(job.key, job.kind, stored.output, stored.digest)
        if job.id not in todo:
            if stored is None:  # the plan counted on this stored result (it went by file names)
                jobs.append(job)
            continue
        if stored is not None:
            report.reused.append(job.id)  # finished by an earlier, interrupted apply
            emit("reused", job.id, None)
        else:
            jobs.append(job)
    log = RunLog(store.root / "runs")

    def output_of(job_id: str) -> tuple[Any, dict]:
        s = store.get(graph.jobs[job_id].key)
        if s is None:
            raise LlmspecError.one("E090", f"result of {job_id} is missing from the store")
        return s.output, s.meta

    def on_start(job_id: str) -> None:
        log.write({"event": "start", "job": job_id})
        emit("start", job_id, None)

    def on_outcome(o: Outcome) -> None:
        job = graph.jobs[o.job_id]
        if o.status == "done":
            put = store.put(job.id, job.kind, job.key, o.output, o.meta | {"seconds": o.seconds})
            remember(job.key, job.kind, o.output, put.digest)
            report.done.append(job.id)
            if job.kind == "gate" and not o.output.get("passed", True):
                report.gates_failed.append(job.params["suite"])
        else:
            getattr(report, o.status)[job.id] = o.error or o.status
        log.write(
            {
                "event": o.status,
                "job": job.id,
                "seconds": round(o.seconds, 4),
                **({"error": o.error} if o.error else {}),
                **({"traceback": o.meta["traceback"]} if "traceback" in o.meta else {}),
            }
        )
        emit(o.status, job.id, o)

    try:
        runner.run(graph, jobs, output_of, on_start, on_outcome)
    except KeyboardInterrupt:
        report.interrupted = True
        log.write({"event": "interrupted"})
    finally:
        report.lock = update_lock(read_lock(root), graph, store, digests, gates)
        report.lock_written = write_lock(root, report.lock)
        log.close()
    return report


def update_lock(
    old: Lock | None,
    graph: JobGraph,
    store: Store,
    digests: dict[str, str] | None = None,
    gates: dict[str, Any] | None = None,
) -> Lock:
    """The lock after an apply: finished jobs take their new keys, unfinished keep the old.

    `digests` (key -> output digest) and `gates` (key -> gate output) are what apply already
    read or wrote; without them the store is read.
    """
    if digests is None:
        digests, gates = {}, {}
        for job in graph.jobs.values():
            s = store.get(job.key)
            if s is not None:
                digests[job.key] = s.digest
                if job.kind == "gate":
                    gates[job.key] = s.output
    gates = gates or {}
    jobs: dict[str, LockedJob] = {}
    suites: dict[str, SuiteResult] = {}
    for job in graph.jobs.values():
        if job.key in digests:
            jobs[job.id] = LockedJob(
                kind=job.kind, key=job.key, inputs=job.inputs, output=digests[job.key]
            )
            if job.kind == "gate":
                suites[job.params["suite"]] = _suite_result(gates[job.key])
        elif old is not None and job.id in old.jobs:
            jobs[job.id] = old.jobs[job.id]
            suite = job.params.get("suite")
            if job.kind == "gate" and suite in old.suites:
                suites[suite] = old.suites[suite]
    f = graph.facts
    return Lock(
        project=graph.project,
        toolchain=toolchain(),
        models=_with_observed(f["models"], graph, store),
        prompts=f["prompts"],
        schemas=f["schemas"],
        datasets=f["datasets"],
        knowledge=f["knowledge"],
        jobs=jobs,
        suites=suites,
    )


def _with_observed(models: dict[str, Any], graph: JobGraph, store: Store) -> dict[str, Any]:
    """Remote models: what the server said it was (model id, system fingerprint), so a lock
    diff shows a model that changed behind the same name."""
    seen: dict[str, dict[str, set[str]]] = {}
    for job in graph.jobs.values():
        if job.kind != "generate" or models[job.params["model"]]["provider"] != "openai":
            continue
        s = store.get(job.key)
        for k, values in ((s.meta.get("observed") or {}) if s else {}).items():
            seen.setdefault(job.params["model"], {}).setdefault(k, set()).update(values)
    if not seen:
        return models
    out = dict(models)
    for name, obs in seen.items():
        out[name] = models[name] | {"observed": {k: sorted(v) for k, v in sorted(obs.items())}}
    return out


def _suite_result(out: dict[str, Any]) -> SuiteResult:
    return SuiteResult(
        passed=out["passed"],
        metrics={m: {k: rounded(v) for k, v in vals.items()} for m, vals in out["metrics"].items()},
        gates=[
            GateResult(
                gate=r["gate"], model=r["model"], value=rounded(r["value"]), passed=r["passed"]
            )
            for r in out["results"]
        ],
    )


class RunLog:
    """`.llmspec/runs/<time>-<pid>.jsonl`: what happened when; never part of the lock."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.path = folder / f"{stamp}-{os.getpid()}.jsonl"
        self.fh = self.path.open("a", encoding="utf-8")

    def write(self, event: dict[str, Any]) -> None:
        event = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")} | event
        self.fh.write(json.dumps(event, sort_keys=True, default=str) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()
