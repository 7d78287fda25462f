"""Stages 6 and 7: run a plan, store each result as it lands, then write the new lock.

A job's output goes to the store the moment it finishes; the lock is written once, atomically,
at the end (also after failures and Ctrl-C, for the jobs that did finish). A crash at any
moment leaves the old lock or the new one, and the next apply finds every finished job in the
store by key and does not run it again. The lock records only what finished: a job that did not
run keeps its old entry, and a fact keeps its old value until a job that reads it has run.
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
from llmspec.hashing import digest
from llmspec.lock import FACT_SECTIONS, Lock, LockedJob, read_lock, write_lock
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
    exported: list[str] = field(default_factory=list)  # project files written from outputs
    lock_written: bool = False
    interrupted: bool = False
    lock: Lock | None = None  # the lock as written at the end
    shipped: dict[str, str] = field(default_factory=dict)  # deployment -> where it runs now
    destroyed: list[str] = field(default_factory=list)  # deployments removed (not in the spec)
    ship_failed: dict[str, str] = field(default_factory=dict)  # deployment -> why
    log_path: Path | None = None  # this apply's run log, .llmspec/runs/<time>-<pid>.jsonl

    @property
    def ok(self) -> bool:
        return not (self.failed or self.skipped or self.interrupted or self.ship_failed)


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


def jobs_to_run(
    plan: Plan,
    graph: JobGraph,
    stored: set[str],
    only: set[str] | None = None,
    probed: bool = False,
) -> tuple[list[Any], list[str]]:
    """The jobs an apply of `plan` runs, in dependency order, and the ids of those it takes
    from the store instead (finished by an earlier, interrupted apply); `only` (job ids)
    restricts both. `probed`: the live probes ran already, before compiling (or this apply
    needs none), so no job of cache policy `always` is among them."""
    from llmspec.jobs import kind as record

    todo = set(plan.to_run)
    jobs, reused = [], []
    for job in graph.jobs.values():
        if only is not None and job.id not in only:
            continue
        always = record(job.kind).cache == "always"
        if always and probed:
            continue
        if job.id in todo or always:
            if job.key in stored and not always:
                reused.append(job.id)
            else:
                jobs.append(job)
        elif job.key not in stored:
            jobs.append(job)  # the plan counted on a result this store does not have
    return jobs, reused


def apply_plan(
    plan: Plan,
    graph: JobGraph,
    store: Store,
    runner: Runner,
    on_event: Callable[[str, str, Outcome | None], None] | None = None,
    stored: set[str] | None = None,
    only: set[str] | None = None,
    probed: dict[str, Outcome] | None = None,
    old_lock: Lock | None | str = "read",
) -> ApplyReport:
    """Run the jobs the plan says to run; store each result; write the lock at the end; then
    ship the deployments of stateful targets whose running version is not the one the lock
    records, and remove those that left the spec.

    `only` (job ids) restricts the run to those jobs, as Terraform's -target does: every other
    job keeps its entry in the lock. `probed` (job id -> Outcome) are the live probes this
    apply ran already, before compiling with what they observed (their results stored); when
    it is given, no other probe runs (without it, every probe of the graph runs here).
    A smoke run (`graph.limit`) stores its results but never writes the lock or ships.
    `stored` and `old_lock` (the store's keys, the lock the plan was made against) are read
    here unless the caller read them already."""
    root = graph.root
    report = ApplyReport()
    emit = on_event or (lambda kind, job_id, outcome: None)
    if isinstance(old_lock, str):
        old_lock = read_lock(root)
    stored = stored_keys(graph, store) if stored is None else stored
    results: dict[str, tuple[str, Any]] = {}  # job id -> (output digest, output) of this apply
    for job_id, o in (probed or {}).items():
        if o.status == "done":
            results[job_id] = (digest(o.output), o.output)
            report.done.append(job_id)
        else:
            getattr(report, o.status)[job_id] = o.error or o.status
    jobs, reused = jobs_to_run(plan, graph, stored, only, probed is not None)
    for job_id in reused:
        report.reused.append(job_id)  # finished by an earlier, interrupted apply
        emit("reused", job_id, None)
    for change in plan.changes:
        if only is not None and change.job_id not in only:
            continue
        if change.cached and change.job_id not in report.reused:
            report.reused.append(change.job_id)  # the store holds it already (a revert)
    log = RunLog(store.root / "runs")
    report.log_path = log.path

    def output_of(job_id: str) -> tuple[Any, dict]:
        s = store.get(graph.jobs[job_id].key)
        if s is None:
            job = graph.jobs[job_id]
            raise LlmspecError.one(
                "E090",
                f"the result of {job_id} is missing from the store",
                job.loc,
                "run apply again: the job runs anew",
            )
        return s.output, s.meta

    def on_start(job_id: str) -> None:
        log.write({"event": "start", "job": job_id})
        emit("start", job_id, None)

    def on_outcome(o: Outcome) -> None:
        job = graph.jobs[o.job_id]
        if o.status == "done":
            put = store.put(job.id, job.kind, job.key, o.output, o.meta | {"seconds": o.seconds})
            results[job.id] = (put.digest, o.output)
            report.done.append(job.id)
            if job.kind == "gate" and not o.output.get("passed", True):
                report.gates_failed.append(job.id.removeprefix("gate."))
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

    def on_progress(job_id: str, point: dict[str, Any]) -> None:
        log.write({"event": "progress", "job": job_id, **point})
        emit("progress", job_id, point)

    from llmspec.runner.interrupts import graceful_interrupts

    failed = False
    try:
        if jobs:
            with graceful_interrupts():
                runner.run(graph, jobs, output_of, on_start, on_outcome, on_progress)
    except KeyboardInterrupt:
        report.interrupted = True
        log.write({"event": "interrupted"})
    except BaseException:
        failed = True  # refused (say, an unreachable cluster) or broken: re-raised below
        raise
    finally:
        if graph.limit is None:
            report.exported = write_exports(graph, store, report, results, stored, only)
        if (report.interrupted or failed) and not results and not report.failed:
            report.lock = old_lock  # nothing finished: the lock says what it said before
        else:
            report.lock = update_lock(old_lock, graph, store, results, only)
            # a smoke run never writes the lock; the same lock as before is not even rendered
            if graph.limit is None and report.lock != old_lock:
                report.lock_written = write_lock(root, report.lock)
        log.close()
    if graph.limit is None and not report.interrupted:
        reconcile(graph, store, report, only)
    return report


def write_exports(
    graph: JobGraph,
    store: Store,
    report: ApplyReport,
    results: dict[str, tuple[str, Any]],
    stored: set[str],
    only: set[str] | None = None,
) -> list[str]:
    """Write the project files that mirror job outputs (a generated test set's export), for
    the jobs that ran or were reused now, and for finished ones whose file is missing. A file
    already holding those bytes is left alone. Returns the files written."""
    from llmspec.fsutil import write_atomic
    from llmspec.jobs import kind as record

    written = []
    for job in graph.jobs.values():
        rec = record(job.kind)
        if rec.exports is None or rec.export_bytes is None:
            continue
        if only is not None and job.id not in only:
            continue
        paths = rec.exports(job)
        if job.id in results:
            output = results[job.id][1]
        elif job.id in report.reused or (
            job.key in stored and any(not (graph.root / p).exists() for p in paths)
        ):
            s = store.get(job.key)
            output = s.output if s is not None else None
        else:
            continue
        if output is None:
            continue
        for rel, data in rec.export_bytes(job, output).items():
            target = graph.root / rel
            try:
                if target.read_bytes() == data:
                    continue
            except OSError:
                pass
            write_atomic(target, data)
            written.append(rel)
    return written


def stored_keys(graph: JobGraph, store: Store) -> set[str]:
    """The keys whose results this machine's store holds, whole: a job that leaves a folder
    (tuned weights) counts only while its folder is there too, else it runs again."""
    from llmspec.jobs import kind as record

    keys = store.keys()
    for job in graph.jobs.values():
        if job.key in keys and record(job.kind).tree and store.tree(job.key) is None:
            keys.discard(job.key)
    return keys


def reconcile(graph: JobGraph, store: Store, report: ApplyReport, only: set[str] | None) -> None:
    """Make what runs match the lock just written: ship each deployment (of a stateful
    target) whose running version is not its deploy job's key, with the lock's digest;
    remove the deployments no job ships any more (not with `--only`)."""
    from llmspec import targets
    from llmspec.lock import lock_digest

    jobs = {j: job for j, job in graph.jobs.items() if only is None or j in only}
    todo = targets.releases(graph, store, jobs)
    if only is None:
        keep = {j.removeprefix("deploy.") for j, job in graph.jobs.items() if job.kind == "deploy"}
        for name, error in targets.remove_orphans(graph.root, keep).items():
            if error is None:
                report.destroyed.append(name)
            else:
                report.ship_failed[name] = f"could not remove it: {error}"
    if not todo:
        return
    digest = lock_digest(graph.root)
    for kind, items in todo.items():
        for name, error in targets.ship(graph.root, kind, items, digest).items():
            if error is None:
                live = targets.live_of(graph.root, kind, name)
                report.shipped[name] = live.url if live is not None else ""
            else:
                report.ship_failed[name] = error


def update_lock(
    old: Lock | None,
    graph: JobGraph,
    store: Store,
    results: dict[str, tuple[str, Any]] | None = None,
    only: set[str] | None = None,
) -> Lock:
    """The lock after an apply. A job whose key is finished (run now, or in the store) takes
    its new entry; any other keeps its old one. A fact takes its new value once some job that
    reads it has its new entry (or when no job reads it); until then it keeps its old value,
    so the lock never claims an input that nothing ran with.

    `results` (job id -> (output digest, output)) are the outputs of this apply; the store is
    read only for jobs finished earlier that the old lock does not record."""
    from llmspec.hashing import digest as digest_of
    from llmspec.jobs import kind as record

    results = dict(results or {})
    jobs: dict[str, LockedJob] = {}
    sections: dict[str, dict[str, Any]] = {}
    for job in graph.jobs.values():
        rec = record(job.kind)
        prev = old.jobs.get(job.id) if old else None
        section = rec.lock_section if rec.lock_name and rec.lock_entry else None
        name = rec.lock_name(job) if section else None
        old_value = old.section(section).get(name) if section and old is not None else None
        output: Any = None
        if job.id in results:
            digest, output = results[job.id]
        elif prev is not None and prev.key == job.key:
            digest = prev.output
        elif only is not None and job.id not in only:
            digest = None  # outside `--only`: this apply says nothing new about it
        else:
            s = store.get(job.key)
            digest, output = (s.digest, s.output) if s is not None else (None, None)
        if digest is None:
            if prev is not None:  # not run: its old entry stays, with its old results
                jobs[job.id] = prev
                if section and old_value is not None:
                    sections.setdefault(section, {})[name] = old_value
            continue
        value = None
        if section:
            if output is not None:
                value = rec.lock_entry(job, output)
            elif old_value is not None:
                value = old_value
            else:
                s = store.get(job.key)
                value = rec.lock_entry(job, s.output) if s is not None else None
            if value is not None:
                sections.setdefault(section, {})[name] = value
        jobs[job.id] = LockedJob(
            kind=job.kind,
            key=job.key,
            inputs=job.lock_inputs(),
            output=digest,
            entry=digest_of(value) if value is not None else None,
        )
    facts = _facts(old, graph, jobs)
    facts["models"] = _with_observed(facts["models"], graph, store, jobs, old)
    return Lock(
        project=graph.project,
        toolchain=toolchain(),
        jobs=jobs,
        sections={k: dict(sorted(v.items())) for k, v in sorted(sections.items())},
        **facts,
    )


def _facts(old: Lock | None, graph: JobGraph, jobs: dict[str, LockedJob]) -> dict[str, Any]:
    readers: dict[tuple[str, str], list[Any]] = {}
    for job in graph.jobs.values():
        for section, name, _keys in job.origin.values():
            readers.setdefault((section, name), []).append(job)
    out: dict[str, Any] = {}
    for section in FACT_SECTIONS:
        new = graph.facts.get(section, {})
        before = getattr(old, section) if old else {}
        merged = {}
        for name, value in new.items():
            who = readers.get((section, name), [])
            current = not who or any(j.id in jobs and jobs[j.id].key == j.key for j in who)
            if current:
                merged[name] = value
            elif name in before:
                merged[name] = before[name]
        out[section] = dict(sorted(merged.items()))
    return out


def _with_observed(
    models: dict[str, Any], graph: JobGraph, store: Store, jobs: dict[str, LockedJob],
    old: Lock | None,
) -> dict[str, Any]:  # fmt: skip
    """Remote models: what the server said it was (model id, system fingerprint), so a lock
    diff shows a model that changed behind the same name."""
    from llmspec.providers import PROVIDERS

    seen: dict[str, dict[str, set[str]]] = {}
    for job in graph.jobs.values():
        origin = job.origin.get("model")
        if job.kind != "generate" or origin is None:
            continue
        name = origin[1]
        if name not in models or not PROVIDERS[models[name]["provider"]].capabilities.remote:
            continue  # only a server reports what it is (echo and local weights do not)
        if job.id not in jobs or jobs[job.id].key != job.key:
            continue
        s = store.get(job.key)
        for k, values in ((s.meta.get("observed") or {}) if s else {}).items():
            seen.setdefault(name, {}).setdefault(k, set()).update(values)
    out = dict(models)
    for name, obs in seen.items():
        out[name] = models[name] | {"observed": {k: sorted(v) for k, v in sorted(obs.items())}}
    for name, fact in models.items():  # keep what an earlier apply observed
        if name not in seen and old is not None and "observed" in (old.models.get(name) or {}):
            if {k: v for k, v in old.models[name].items() if k != "observed"} == fact:
                out[name] = old.models[name]
    return out


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
