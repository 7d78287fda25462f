"""Stage 5: the plan — which jobs will run and why, as a diff of content keys against the lock.

    +   new: the job is not in the lock
    ~   must re-run: its key changed (each reason names the input that moved, in words)
    -   no longer in the spec: dropped from the lock on apply
    *   the lock is current but this machine lacks it: the store lacks the result (it runs
        again here), or a deployment does not run the version the lock records (it ships)
    <=  a live probe (cache policy `always`): it runs on every apply

A plan can be saved (`--out plan.json`) and applied later; `apply` refuses a saved plan when
the project or the lock moved since it was made, as Terraform does. Reasons come from one
generic diff of a job's named inputs (`llmspec.diffs`), never from per-kind code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmspec.compile import Job, JobGraph, pick, toolchain
from llmspec.diffs import describe, is_digest, sentence
from llmspec.hashing import digest
from llmspec.lock import FACT_SECTIONS, Lock, LockedJob

PLAN_VERSION = 1
Action = Literal["create", "update", "delete", "restore", "read"]
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "restore": "*", "read": "<="}
SINGULAR = {
    "models": "model",
    "prompts": "prompt",
    "schemas": "schema",
    "datasets": "dataset",
    "knowledge": "knowledge",
}


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    job_id: str
    kind: str
    reasons: tuple[str, ...]
    cached: bool = False  # the store already holds this key: apply reuses it, runs nothing

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.action]


@dataclass(frozen=True)
class Plan:
    project: str
    changes: tuple[Change, ...]
    unchanged: int
    lock_digest: str
    graph_digest: str
    lock_changes: tuple[str, ...] = ()  # facts that move in the lock without a job re-running
    exports: tuple[str, ...] = ()  # files of finished jobs that apply writes again (missing)

    @property
    def to_run(self) -> tuple[str, ...]:
        return tuple(c.job_id for c in self.changes if c.action != "delete" and not c.cached)

    @property
    def empty(self) -> bool:
        return (
            not [c for c in self.changes if c.action != "read"]
            and not self.lock_changes
            and not self.exports
        )

    def counts(self) -> dict[str, int]:
        out = {a: 0 for a in SYMBOLS}
        for c in self.changes:
            out[c.action] += 1
        return out


def graph_digest(graph: JobGraph) -> str:
    """Everything a plan was computed from, on the project's side."""
    return digest(
        {
            "jobs": {j.id: j.key for j in graph.jobs.values()},
            "facts": graph.facts,
            "toolchain": toolchain(),
        }
    )


def make_plan(
    graph: JobGraph,
    lock: Lock | None,
    stored: set[str],
    lock_digest: str,
    effects: tuple[dict[str, str], dict[str, str]] | None = None,
) -> Plan:
    """Diff the graph's keys against the lock and the store. `effects` (from
    `llmspec.targets.effects`) are what runs outside the store: per deploy job whose deployment
    does not run its key, why; per deployment that runs but no job ships any more, why."""
    from llmspec.jobs import kind as record

    restore, orphans = effects or ({}, {})
    locked = lock.jobs if lock else {}
    changes: list[Change] = []
    unchanged = 0
    changed_ids: set[str] = set()
    exports: list[str] = []
    for job in graph.jobs.values():  # dependency order, so causes come before effects
        old = locked.get(job.id)
        rec = record(job.kind)
        if rec.exports is not None and old is not None and old.key == job.key:
            exports += [p for p in rec.exports(job) if not (graph.root / p).exists()]
        if record(job.kind).cache == "always":
            changes.append(Change("read", job.id, job.kind, ("a live probe: runs on every apply",)))
            changed_ids.add(job.id)
        elif old is None:
            changes.append(Change("create", job.id, job.kind, ("new",), job.key in stored))
            changed_ids.add(job.id)
        elif old.key != job.key:
            reasons = explain(job, old, graph, lock, changed_ids)
            changes.append(Change("update", job.id, job.kind, reasons, job.key in stored))
            changed_ids.add(job.id)
        elif job.key not in stored:
            changes.append(Change("restore", job.id, job.kind, (record(job.kind).missing,)))
        elif job.id in restore:  # the result is stored: only the deployment ships again
            changes.append(Change("restore", job.id, job.kind, (restore[job.id],), True))
        else:
            unchanged += 1
    for job_id, old in sorted(locked.items()):
        if job_id not in graph.jobs:
            why = orphans.get(job_id, "no longer in the spec")
            changes.append(Change("delete", job_id, old.kind, (why,)))
    for job_id, why in sorted(orphans.items()):
        if job_id not in graph.jobs and job_id not in locked:
            changes.append(Change("delete", job_id, "deploy", (why,)))
    return Plan(
        graph.project,
        tuple(changes),
        unchanged,
        lock_digest,
        graph_digest(graph),
        tuple(fact_changes(graph, lock)),
        tuple(exports),
    )


def fact_changes(graph: JobGraph, lock: Lock | None) -> list[str]:
    """Lock entries that change although no job does (a new tool version, an unused schema)."""
    if lock is None:
        return []
    out = []
    tc = toolchain()
    for name in sorted(set(tc) | set(lock.toolchain)):
        a, b = lock.toolchain.get(name), tc.get(name)
        if a != b:
            out.append(f"tool chain: {name} {a or 'absent'} -> {b or 'absent'}")
    for section in FACT_SECTIONS:
        old, new = getattr(lock, section), graph.facts.get(section, {})
        for name in sorted(set(old) | set(new)):
            before = _unobserved(old.get(name))
            if before != new.get(name):
                what = "added" if name not in old else "removed" if name not in new else "changed"
                out.append(f"{SINGULAR[section]} `{name}` {what}")
    return out


def _unobserved(fact: Any) -> Any:
    """A model's fact without what apply observed of it (set by apply, not by the spec)."""
    if isinstance(fact, dict) and "observed" in fact:
        return {k: v for k, v in fact.items() if k != "observed"}
    return fact


# -- reasons ------------------------------------------------------------------------------


def explain(
    job: Job, old: LockedJob, graph: JobGraph, lock: Lock | None, changed: set[str]
) -> tuple[str, ...]:
    """Say which inputs of a job moved, in words a reviewer can check."""
    if old.inputs == {"lock_version": 1}:
        return ("the lock was written by an older llmspec (lock version 1); keys are new",)
    new = job.lock_inputs()
    reasons: list[str] = []
    for name in sorted(set(new) | set(old.inputs)):
        if new.get(name) == old.inputs.get(name):
            continue
        r = _reason(job, name, old.inputs.get(name), new.get(name), graph, lock)
        if r not in reasons:
            reasons.append(r)
    moved = [d for d in job.deps.values() if d in changed]
    if moved and not reasons:
        shown = ", ".join(moved[:3]) + (f" and {len(moved) - 3} more" if len(moved) > 3 else "")
        reasons.append(f"depends on {shown}, which change{'s' if len(moved) == 1 else ''}")
    if not reasons:
        reasons.append(f"llmspec's `{job.kind}` implementation changed")
    return tuple(reasons)


def _reason(job: Job, name: str, before: Any, after: Any, graph: JobGraph, lock: Lock | None):
    origin = job.origin.get(name)
    if origin is not None:
        section, entity, keys = origin
        old_fact = _unobserved(lock.fact(section, entity)) if lock else None
        new_fact = graph.facts.get(section, {}).get(entity)
        if keys is not None:
            old_fact = pick(old_fact, keys)
            new_fact = pick(new_fact, keys)
        label = f"{SINGULAR[section]} `{entity}`"
        phrases = describe(old_fact, new_fact) if old_fact is not None else []
        return f"{label} {sentence(phrases)}" if phrases else f"{label} changed"
    if before is None:
        return f"{name} added"
    if after is None:
        return f"{name} removed"
    if is_digest(before) or is_digest(after):
        return f"{name} changed"
    return sentence(describe(before, after, name)) or f"{name} changed"


# -- saved plans ----------------------------------------------------------------------------


class SavedChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Action
    job: str
    kind: str
    reasons: list[str]
    cached: bool = False


class SavedPlan(BaseModel):
    """`llmspec plan --format json` and `--out`: documented in schemas/plan.schema.json."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="llmspec plan")
    plan_version: Literal[1] = PLAN_VERSION
    project: str
    lock_digest: str
    graph_digest: str
    summary: dict[str, int]
    changes: list[SavedChange]
    lock_changes: list[str] = []
    exports: list[str] = []


def to_saved(plan: Plan) -> SavedPlan:
    summary = plan.counts() | {"unchanged": plan.unchanged, "to_run": len(plan.to_run)}
    return SavedPlan(
        project=plan.project,
        lock_digest=plan.lock_digest,
        graph_digest=plan.graph_digest,
        summary=summary,
        changes=[
            SavedChange(
                action=c.action, job=c.job_id, kind=c.kind, reasons=list(c.reasons), cached=c.cached
            )
            for c in plan.changes
        ],
        lock_changes=list(plan.lock_changes),
        exports=list(plan.exports),
    )


def plan_json_schema() -> dict[str, Any]:
    schema = SavedPlan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://llmspec.dev/schemas/plan.schema.json"
    return schema


# -- rendering ----------------------------------------------------------------------------


def summary_line(plan: Plan) -> str:
    c = plan.counts()
    if plan.empty:
        probes = f" {c['read']} live probes to run." if c["read"] else ""
        return f"No changes. {plan.unchanged} jobs up to date.{probes}"
    run = len(plan.to_run)
    parts = [
        f"{run} to run",
        f"{c['create']} new",
        f"{c['update']} changed",
        f"{c['delete']} to remove",
    ]
    if c["restore"]:
        parts.append(f"{c['restore']} to restore")
    if c["read"]:
        parts.append(f"{c['read']} live probes")
    return f"Plan: {', '.join(parts)}, {plan.unchanged} up to date."


def render_text(plan: Plan) -> str:
    lines = [f"llmspec plan: {plan.project}", ""]
    if plan.changes:
        for c in plan.changes:
            cached = "  (cached)" if c.cached else ""
            lines.append(f"  {c.symbol} {c.job_id}{cached}")
            for r in c.reasons:
                lines.append(f"      {r}")
        lines.append("")
    if plan.lock_changes:
        lines.append("Lock entries that change:")
        lines += [f"  ~ {x}" for x in plan.lock_changes]
        lines.append("")
    if plan.exports:
        lines.append("Files written again from stored results (missing):")
        lines += [f"  * {x}" for x in plan.exports]
        lines.append("")
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan) -> str:
    c = plan.counts()
    lines = [f"### llmspec plan: `{plan.project}`", ""]
    if plan.empty:
        lines.append(summary_line(plan))
        return "\n".join(lines) + "\n"
    lines += [
        f"**{len(plan.to_run)} to run** · {c['create']} new · {c['update']} changed · "
        f"{c['delete']} to remove · {plan.unchanged} up to date",
        "",
        "| | job | why |",
        "|---|---|---|",
    ]
    for ch in plan.changes:
        why = "; ".join(ch.reasons).replace("|", "\\|")
        cached = " (cached)" if ch.cached else ""
        lines.append(f"| `{ch.symbol}` | `{ch.job_id}`{cached} | {why} |")
    if plan.exports:
        lines += ["", "Files written again from stored results (missing): "
                  + ", ".join(f"`{x}`" for x in plan.exports)]  # fmt: skip
    if plan.lock_changes:
        lines += ["", "<details><summary>Lock entries that change</summary>", ""]
        lines += [f"- {x}" for x in plan.lock_changes]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
