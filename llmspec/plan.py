"""Stage 5: the plan — which jobs will run and why, as a diff of content keys against the lock.

    +  new: the job is not in the lock
    ~  must re-run: its key changed (each reason names the input that moved)
    -  no longer in the spec: dropped from the lock on apply
    *  the lock is current but this machine's store lacks the result: it runs again here

A plan can be saved (`--out plan.json`) and applied later; `apply` refuses a saved plan when
the project or the lock moved since it was made, as Terraform does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmspec.compile import JobGraph, toolchain
from llmspec.hashing import digest
from llmspec.lock import Lock

PLAN_VERSION = 1
SYMBOLS = {"create": "+", "update": "~", "delete": "-", "restore": "*"}


@dataclass(frozen=True, slots=True)
class Change:
    action: Literal["create", "update", "delete", "restore"]
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

    @property
    def to_run(self) -> tuple[str, ...]:
        return tuple(c.job_id for c in self.changes if c.action != "delete" and not c.cached)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.lock_changes

    def counts(self) -> dict[str, int]:
        out = {"create": 0, "update": 0, "delete": 0, "restore": 0}
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


def make_plan(graph: JobGraph, lock: Lock | None, stored: set[str], lock_digest: str) -> Plan:
    """Diff the graph's keys against the lock and the store."""
    locked = lock.jobs if lock else {}
    changes: list[Change] = []
    unchanged = 0
    changed_ids: set[str] = set()
    for job in graph.jobs.values():  # dependency order, so causes come before effects
        old = locked.get(job.id)
        if old is None:
            changes.append(Change("create", job.id, job.kind, ("new",), job.key in stored))
            changed_ids.add(job.id)
        elif old.key != job.key:
            reasons = explain(job, old.inputs, graph, lock, changed_ids)
            changes.append(Change("update", job.id, job.kind, reasons, job.key in stored))
            changed_ids.add(job.id)
        elif job.key not in stored:
            changes.append(Change("restore", job.id, job.kind, ("result not in .llmspec/",)))
        else:
            unchanged += 1
    for job_id, old in sorted(locked.items()):
        if job_id not in graph.jobs:
            changes.append(Change("delete", job_id, old.kind, ("no longer in the spec",)))
    lock_changes = _fact_changes(graph, lock)
    return Plan(
        graph.project,
        tuple(changes),
        unchanged,
        lock_digest,
        graph_digest(graph),
        tuple(lock_changes),
    )


def _fact_changes(graph: JobGraph, lock: Lock | None) -> list[str]:
    """Lock entries that change although no job does (a new tool version, an unused schema)."""
    if lock is None:
        return []
    out = []
    tc = toolchain()
    for name in sorted(set(tc) | set(lock.toolchain)):
        a, b = lock.toolchain.get(name), tc.get(name)
        if a != b:
            out.append(f"tool chain: {name} {a or 'absent'} -> {b or 'absent'}")
    for section in ("models", "prompts", "schemas", "datasets", "knowledge"):
        old, new = getattr(lock, section), graph.facts.get(section, {})
        for name in sorted(set(old) | set(new)):
            before = old.get(name)
            if isinstance(before, dict) and "observed" in before:
                before = {k: v for k, v in before.items() if k != "observed"}  # set by apply
            if before != new.get(name):
                what = "added" if name not in old else "removed" if name not in new else "changed"
                out.append(
                    f"{section[:-1] if section != 'knowledge' else 'knowledge'} `{name}` {what}"
                )
    return out


# -- reasons ------------------------------------------------------------------------------


def explain(
    job: Any, old: dict[str, str], graph: JobGraph, lock: Lock | None, changed: set[str]
) -> tuple[str, ...]:
    """Say which inputs of a job moved, in words a reviewer can check."""
    p = job.params
    new = job.inputs
    reasons: list[str] = []
    facts = graph.facts
    lf = lock or Lock(project=graph.project)
    for comp in sorted(set(new) | set(old)):
        if new.get(comp) == old.get(comp):
            continue
        r = _reason(comp, job, p, facts, lf)
        if r and r not in reasons:
            reasons.append(r)
    moved = [d for d in job.deps if d in changed]
    if moved and not reasons:
        shown = ", ".join(moved[:3]) + (f" and {len(moved) - 3} more" if len(moved) > 3 else "")
        reasons.append(f"depends on {shown}, which change{'s' if len(moved) == 1 else ''}")
    if not reasons:
        reasons.append("inputs changed")
    return tuple(reasons)


def _reason(comp: str, job: Any, p: dict, facts: dict, lock: Lock) -> str | None:
    model = p.get("model")
    if comp == "model" and model:
        return _model_reason(model, facts["models"].get(model, {}), lock.models.get(model, {}))
    if comp == "params" and model:
        return _params_reason(
            model,
            facts["models"].get(model, {}).get("params", {}),
            lock.models.get(model, {}).get("params", {}),
        )
    if comp == "engine":
        m = facts["models"].get(model, {}) if model else {}
        o = lock.models.get(model, {}) if model else {}
        return f"constraint engine {o.get('engine', '?')} -> {m.get('engine', '?')}"
    if comp == "prompt":
        name = p.get("prompt")
        new, old = facts["prompts"].get(name, {}), lock.prompts.get(name, {})
        parts = [k for k in ("system", "template", "output") if new.get(k) != old.get(k)]
        return f"prompt `{name}` {' and '.join(parts) or 'definition'} changed"
    if comp == "constraint":
        out = facts["prompts"].get(p.get("prompt"), {}).get("output") or {}
        if "schema" in out:
            return f"schema `{out['schema']}` changed"
        return f"output constraint of prompt `{p.get('prompt')}` changed"
    if comp in ("rows", "range", "dataset"):
        name = p.get("dataset")
        if name is None:
            return "source dataset changed"
        new, old = facts["datasets"].get(name, {}), lock.datasets.get(name, {})
        n, o = new.get("rows"), old.get("rows")
        if isinstance(n, int) and isinstance(o, int) and n != o:
            delta = n - o
            noun = "row" if abs(delta) == 1 else "rows"
            return f"dataset `{name}`: {abs(delta)} {noun} {'added' if delta > 0 else 'removed'}"
        return f"dataset `{name}`: rows changed"
    if comp == "repeats":
        return f"repeats changed to {p.get('repeats')}"
    if comp == "expected":
        return "reference column changed"
    if comp == "files":
        name = p.get("knowledge")
        new = facts["knowledge"].get(name, {}).get("files", {})
        old = lock.knowledge.get(name, {}).get("files", {})
        added = sorted(set(new) - set(old))
        removed = sorted(set(old) - set(new))
        edited = sorted(f for f in set(new) & set(old) if new[f] != old[f])
        parts = []
        for label, fs in (("added", added), ("removed", removed), ("changed", edited)):
            if fs:
                parts.append(f"{label} {', '.join(fs[:3])}" + (" ..." if len(fs) > 3 else ""))
        return f"knowledge `{name}`: " + ("; ".join(parts) or "files changed")
    if comp == "chunk":
        return f"knowledge `{p.get('knowledge')}` chunking changed"
    if comp == "embed":
        return f"knowledge `{p.get('knowledge')}` embedding model changed"
    if comp == "metrics":
        return "metrics changed"
    if comp == "gates":
        return "gates changed"
    if comp == "target":
        return "deployment target changed"
    if comp == "spec":
        return f"generate block of dataset `{p.get('dataset')}` changed"
    if comp == "impl":
        return f"llmspec's `{job.kind}` implementation changed"
    return f"{comp} changed"


def _model_reason(name: str, new: dict, old: dict) -> str:
    nf, of = new.get("files"), old.get("files")
    if isinstance(nf, dict) and isinstance(of, dict):
        changed = sorted(f for f in set(nf) | set(of) if nf.get(f) != of.get(f))
        weights = [f for f in changed if f.endswith((".safetensors", ".bin", ".gguf", ".pt"))]
        what = "weights" if weights else "tokenizer/config" if changed else "identity"
        files = ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else "")
        return f"model `{name}` {what} changed" + (f" ({files})" if files else "")
    if new.get("model") != old.get("model"):
        return (
            f"model `{name}`: {old.get('model') or old.get('provider')} -> "
            f"{new.get('model') or new.get('provider')}"
        )
    return f"model `{name}` changed"


def _params_reason(name: str, new: dict, old: dict) -> str:
    parts = [
        f"{k} {json.dumps(old.get(k))} -> {json.dumps(new.get(k))}"
        for k in sorted(set(new) | set(old))
        if new.get(k) != old.get(k)
    ]
    return f"model `{name}` {', '.join(parts) or 'parameters changed'}"


# -- saved plans ----------------------------------------------------------------------------


class SavedChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Literal["create", "update", "delete", "restore"]
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
        return f"No changes. {plan.unchanged} jobs up to date."
    run = len(plan.to_run)
    parts = [
        f"{run} to run",
        f"{c['create']} new",
        f"{c['update']} changed",
        f"{c['delete']} to remove",
    ]
    if c["restore"]:
        parts.append(f"{c['restore']} to restore")
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
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def render_markdown(plan: Plan) -> str:
    c = plan.counts()
    lines = [f"### llmspec plan: `{plan.project}`", ""]
    if plan.empty:
        lines.append(f"No changes. {plan.unchanged} jobs up to date.")
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
    if plan.lock_changes:
        lines += ["", "<details><summary>Lock entries that change</summary>", ""]
        lines += [f"- {x}" for x in plan.lock_changes]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
