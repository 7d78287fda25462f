"""Drift: has a remote model changed behind its name since the lock was written?

`probe(graph)` runs the live probes (`drift` jobs: cache policy `always`, never stored by this
module) and returns what each observed, as the lock entry it would write. `compare` sets that
beside the lock: the model id, the `system_fingerprint`, the canaries' answers at temperature 0
(for the same canaries), and finds the jobs that become stale: those whose key moves when the
fresh observation replaces the locked one in the model's fact, and what depends on them.

    llmspec drift [PATH]             exit 0 no drift, 2 drift, 1 could not measure
    llmspec plan --refresh [PATH]    the plan with what the probes observe now
    llmspec apply [PATH]             probes first, then runs what moved

A `DriftReport` is versioned and has a JSON Schema (`llmspec schema --artifact drift`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DRIFT_VERSION = 1
Status = Literal["no drift", "drift", "could not measure", "no baseline", "not due"]
EXIT = {"drift": 2, "could not measure": 1, "no baseline": 1}


class ModelDrift(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    model: str
    status: Status
    moved: list[str] = []  # what changed, in words
    notes: list[str] = []
    observed: dict[str, Any] | None = None  # the fresh lock entry
    locked: dict[str, Any] | None = None  # the lock's entry
    error: str | None = None
    changed_canaries: list[int] = []  # rows whose answer changed (where the store knows)
    stale: list[str] = []  # jobs whose key moves with the fresh observation
    measured: str | None = None  # when (UTC, ISO 8601)


class DriftReport(BaseModel):
    """`llmspec drift --format json`: documented in schemas/drift.schema.json."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="llmspec drift")
    drift_version: Literal[1] = DRIFT_VERSION
    project: str
    status: Literal["no drift", "drift", "could not measure"]
    models: list[ModelDrift]
    stale: list[str]

    @property
    def exit_code(self) -> int:
        return {"no drift": 0, "drift": 2, "could not measure": 1}[self.status]


def drift_json_schema() -> dict[str, Any]:
    schema = DriftReport.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://llmspec.dev/schemas/drift.schema.json"
    return schema


# -- probing -----------------------------------------------------------------------------------


def probe_jobs(graph: Any, models: set[str] | None = None) -> list[Any]:
    from llmspec.jobs import kind

    out = []
    for job in graph.jobs.values():
        rec = kind(job.kind)
        if rec.cache != "always":
            continue
        name = rec.lock_name(job) if rec.lock_name is not None else None
        if models is None or name is None or name in models:
            out.append(job)
    return out


def probe(jobs: list[Any]) -> dict[str, Any]:
    """Run probe jobs in this process; job id -> Outcome. Nothing is stored."""
    from llmspec.jobs import Deps, JobContext
    from llmspec.runner import execute

    ctx = JobContext()
    return {j.id: execute(j, Deps(j.deps, _no_deps), ctx) for j in jobs}


def _no_deps(job_id: str) -> Any:
    raise KeyError(job_id)


def observed(graph: Any, outcomes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Model -> the lock entry a successful probe would write (the `served` of `compile`)."""
    from llmspec.jobs import kind

    out = {}
    for job_id, o in outcomes.items():
        job = graph.jobs[job_id]
        rec = kind(job.kind)
        if o.status == "done" and rec.lock_entry is not None and rec.lock_name is not None:
            out[rec.lock_name(job)] = rec.lock_entry(job, o.output)
    return out


# -- schedules ---------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(every: str) -> int:
    """`30m` -> 1800.

    >>> seconds("1d"), seconds("90s")
    (86400, 90)
    """
    m = re.fullmatch(r"([0-9]+)([smhd])", every)
    if m is None:
        raise ValueError(every)
    return int(m.group(1)) * _UNITS[m.group(2)]


def _measured_path(root: Path) -> Path:
    return Path(root) / ".llmspec" / "drift" / "measured.json"


def last_measured(root: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(_measured_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_measured(root: Path, results: dict[str, ModelDrift]) -> None:
    """Remember when each model was measured and what came out (for `--due`)."""
    from llmspec.fsutil import write_atomic

    data = last_measured(root)
    for name, r in results.items():
        if r.status != "not due":
            data[name] = {"at": r.measured, "status": r.status}
    path = _measured_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def due(spec: Any, root: Path, now: dt.datetime) -> set[str]:
    """The remote models whose last measurement is older than their `drift.every`."""
    last = last_measured(root)
    out = set()
    for name, m in spec.models.items():
        every = m.drift.every if getattr(m, "drift", None) is not None else "1d"
        at = (last.get(name) or {}).get("at")
        if at is None or (now - dt.datetime.fromisoformat(at)).total_seconds() >= seconds(every):
            out.add(name)
    return out


# -- comparing ---------------------------------------------------------------------------------


def compare(
    graph: Any,
    lock: Any,
    store: Any,
    outcomes: dict[str, Any],
    recompile: Any,
    now: dt.datetime,
    skipped: dict[str, Any] | None = None,
) -> DriftReport:
    """Set each probe's outcome beside the lock; `recompile(served)` compiles the project with
    fresh observations (to find the stale jobs)."""
    from llmspec.jobs import kind

    locked_all = lock.section("drift") if lock is not None else {}
    fresh = observed(graph, outcomes)
    stamp = now.replace(microsecond=0).isoformat()
    results: dict[str, ModelDrift] = {}
    for job_id, o in outcomes.items():
        job = graph.jobs[job_id]
        name = kind(job.kind).lock_name(job)
        locked = locked_all.get(name)
        if o.status != "done":
            results[name] = ModelDrift(
                model=name, status="could not measure", error=o.error, locked=locked, measured=stamp
            )
            continue
        entry = fresh[name]
        if locked is None:
            results[name] = ModelDrift(
                model=name,
                status="no baseline",
                observed=entry,
                measured=stamp,
                notes=["the lock records no probe of it yet: `llmspec apply` records one"],
            )
            continue
        moved, notes, rows = _moved(job, lock, store, locked, entry, o.output)
        if not moved:
            n = len(o.output["outputs"] or [])
            same = f"; {n} canary answers as locked" if n and not notes else ""
            notes.insert(
                0,
                f"model id {_q(entry['model'])}, system_fingerprint "
                f"{_q(entry['system_fingerprint'])}{same}",
            )
        stale = _stale(graph, recompile, {name: entry}) if moved else []
        results[name] = ModelDrift(
            model=name,
            status="drift" if moved else "no drift",
            moved=moved,
            notes=notes,
            observed=entry,
            locked=locked,
            changed_canaries=rows,
            stale=stale,
            measured=stamp,
        )
    for name, last in (skipped or {}).items():
        results[name] = ModelDrift(
            model=name,
            status="not due",
            measured=last.get("at"),
            notes=[f"last measured {last.get('at') or 'never'}: {last.get('status', '?')}"],
        )
    models = [results[n] for n in sorted(results)]
    statuses = {m.status for m in models}
    status = (
        "drift"
        if "drift" in statuses
        else "could not measure"
        if statuses & {"could not measure", "no baseline"}
        else "no drift"
    )
    order = {j: i for i, j in enumerate(graph.jobs)}
    stale = sorted({j for m in models for j in m.stale}, key=order.__getitem__)
    return DriftReport(project=graph.project, status=status, models=models, stale=stale)


def with_local_models(report: DriftReport, graph: Any, lock: Any) -> DriftReport:
    """Add the local models whose weights differ from what the lock recorded (their identity
    is their files), with the jobs that read them and what depends on those."""
    from llmspec.providers import PROVIDERS

    if lock is None:
        return report
    models = list(report.models)
    changed = {j for j, job in graph.jobs.items() if j in lock.jobs and lock.jobs[j].key != job.key}
    dependents = graph.dependents()
    for name, fact in sorted(graph.facts.get("models", {}).items()):
        if not PROVIDERS[fact["provider"]].local or "files" not in fact:
            continue
        before = (lock.models.get(name) or {}).get("files")
        if before is None or before == fact["files"]:
            continue
        files = sorted(
            k for k in set(before) | set(fact["files"]) if before.get(k) != fact["files"].get(k)
        )
        readers = [
            j
            for j, job in graph.jobs.items()
            if any(o[:2] == ("models", name) for o in job.origin.values())
        ]
        stale, todo = set(), list(readers)
        while todo:
            j = todo.pop()
            if j in changed and j not in stale:
                stale.add(j)
                todo += dependents.get(j, [])
        models.append(
            ModelDrift(
                model=name,
                status="drift",
                stale=[j for j in graph.jobs if j in stale],
                moved=[
                    f"weights changed: {', '.join(files[:3])}" + (" ..." if len(files) > 3 else "")
                ],
            )
        )
    if len(models) == len(report.models):
        return report
    models.sort(key=lambda m: m.model)
    stale_all = [j for j in graph.jobs if any(j in m.stale for m in models)]
    return report.model_copy(update={"models": models, "status": "drift", "stale": stale_all})


def _moved(job: Any, lock: Any, store: Any, locked: dict, entry: dict, output: dict):
    moved, notes, rows = [], [], []
    for key, label in (("model", "model id"), ("system_fingerprint", "system_fingerprint")):
        if locked.get(key) != entry.get(key):
            moved.append(f"{label} {_q(locked.get(key))} -> {_q(entry.get(key))}")
    if entry.get("canaries") is None:
        notes.append("no canaries declared: model id and fingerprint compared")
    elif locked.get("canaries") != entry.get("canaries"):
        notes.append("the canary set changed since the lock: its answers become the reference")
    elif locked.get("outputs") != entry.get("outputs"):
        before = _locked_outputs(job, lock, store)
        now = output["outputs"]
        if before is not None and len(before) == len(now):
            rows = [i for i, (a, b) in enumerate(zip(before, now, strict=True)) if a != b]
            moved.append(f"{len(rows)} of {len(now)} canary answers changed at temperature 0")
        else:
            moved.append("canary answers changed at temperature 0")
    return moved, notes, rows


def _locked_outputs(job: Any, lock: Any, store: Any) -> list[str] | None:
    """The canary answers the lock recorded, where the store still holds that probe."""
    entry = lock.jobs.get(job.id)  # by the key it had then: its inputs hold the lock's record
    s = store.get(entry.key) if entry is not None else None
    if s is None or s.digest != entry.output:
        return None
    return s.output.get("outputs")


def _stale(graph: Any, recompile: Any, served: dict[str, Any]) -> list[str]:
    from llmspec.jobs import kind

    moved = recompile(served)
    return [  # in dependency order: the jobs reading the model first
        j
        for j, job in moved.jobs.items()
        if j in graph.jobs and graph.jobs[j].key != job.key and kind(job.kind).cache != "always"
    ]


def _q(value: Any) -> str:
    return "none" if value is None else json.dumps(value)


# -- rendering ---------------------------------------------------------------------------------


def _stale_line(jobs: list[str], limit: int = 4) -> str:
    shown = ", ".join(jobs[:limit])
    return shown + (f" and {len(jobs) - limit} more" if len(jobs) > limit else "")


def render_text(r: DriftReport) -> str:
    lines = [f"llmspec drift: {r.project}", ""]
    width = max((len(m.model) for m in r.models), default=0)
    for m in r.models:
        what = "; ".join(m.moved) if m.moved else (m.error or "; ".join(m.notes) or "")
        lines.append(f"  {m.model:<{width}}  {m.status}{': ' + what if what else ''}")
        if m.moved and m.notes:
            lines += [f"  {'':<{width}}    {n}" for n in m.notes]
        if m.stale:
            lines.append(f"  {'':<{width}}    stale: {_stale_line(m.stale)}")
    if not r.models:
        lines.append("  no remote models to probe")
    lines.append("")
    lines.append(summary(r))
    return "\n".join(lines) + "\n"


def summary(r: DriftReport) -> str:
    if r.status == "drift":
        n = sum(1 for m in r.models if m.status == "drift")
        return (
            f"Drift: {n} model{'s' if n != 1 else ''} moved; {len(r.stale)} jobs are stale. "
            "`llmspec plan --refresh` shows them; `llmspec apply` runs them again."
        )
    if r.status == "could not measure":
        bad = [m.model for m in r.models if m.status in ("could not measure", "no baseline")]
        return f"Could not measure drift of {', '.join(bad)}."
    return "No drift."


def render_markdown(r: DriftReport) -> str:
    icon = {
        "drift": "🔴",
        "could not measure": "🟠",
        "no baseline": "🟠",
        "no drift": "🟢",
        "not due": "⚪",
    }
    lines = [f"### llmspec drift: `{r.project}`", "", f"**{summary(r)}**", ""]
    lines += ["| | model | status | what moved | stale jobs |", "|---|---|---|---|---|"]
    for m in r.models:
        what = "; ".join(m.moved) or m.error or "; ".join(m.notes)
        stale = _stale_line([f"`{j}`" for j in m.stale]) if m.stale else ""
        lines.append(
            f"| {icon[m.status]} | `{m.model}` | {m.status} | {what.replace('|', '/')} | {stale} |"
        )
    return "\n".join(lines) + "\n"
