"""What a lock can prove about itself, and what a store can prove about a lock.

`llmspec.lock` is committed, so it can be edited in a pull request like any file. Without the
store (a fresh CI checkout) llmspec checks that the lock is consistent with itself:

- every result-section entry (a suite's verdicts and metrics, a deployment) has the digest its
  job recorded for it, so an edited metric or verdict no longer matches its job's `entry`;
- every gate verdict follows from its recorded value and threshold, and a suite passes exactly
  when none of its gates failed;
- a gate's recorded value agrees with the metric statistic the lock records for that variant.

This catches hand edits and merge mistakes, not a forger who recomputes digests: a lock cannot
prove its values are true. With the store (the `.llmspec/` of the machine that applied, or a
CI cache of it), every output the lock records is checked against the stored result, and every
result-section entry is recomputed from it: that is proof of what ran, on that machine.
"""

from __future__ import annotations

from typing import Any

from llmspec.errors import Diagnostic, Loc

LOCKED_STATS = ("mean", "lcb95", "ucb95")


def verify_lock(lock: Any, where: str, graph: Any = None, store: Any = None) -> list[Diagnostic]:
    """Every inconsistency found in `lock` (read from `where`), as E086 diagnostics."""
    from llmspec.hashing import digest

    problems: list[str] = []
    recorded = {}  # (section, name) -> the job that recorded it
    if graph is not None:
        from llmspec.jobs import kind as record

        for job in graph.jobs.values():
            rec = record(job.kind)
            if rec.lock_section and rec.lock_name:
                recorded[(rec.lock_section, rec.lock_name(job))] = job.id
    for section, entries in lock.sections.items():
        for name, value in entries.items():
            job_id = recorded.get((section, name)) or _job_of(lock, section, name)
            locked = lock.jobs.get(job_id) if job_id else None
            if locked is None or locked.entry is None:
                continue
            if digest(value) != locked.entry:
                problems.append(
                    f"`{section}.{name}` does not match the digest its job `{job_id}` recorded: "
                    "it was edited after llmspec wrote it"
                )
    for suite, entry in lock.suites.items():
        problems += _suite_problems(suite, entry)
    if store is not None and graph is not None:
        problems += _against_store(lock, graph, store)
    return [
        Diagnostic(
            "E086",
            f"llmspec.lock is inconsistent: {p}",
            Loc(where),
            "restore it from version control and run `llmspec apply`; never edit it by hand",
        )
        for p in problems
    ]


def _suite_problems(suite: str, entry: dict[str, Any]) -> list[str]:
    from llmspec.gates import OPS, GateError, bind, parse_gate
    from llmspec.lock import rounded

    out = []
    recorded = entry.get("metrics") or {}
    metrics = tuple(sorted({m for ms in recorded.values() for m in ms}))
    variants = tuple(recorded)
    failed = False
    for g in entry.get("gates", []):
        value, threshold, passed = g.get("value"), g.get("threshold"), g.get("passed")
        who = f" [{g['variant']}]" if g.get("variant") else ""
        label = f"suite `{suite}` gate `{g.get('gate')}`{who}"
        failed |= passed is False
        try:
            gate = bind(parse_gate(str(g.get("gate"))), metrics, variants)
        except GateError:
            continue  # a gate on a metric the lock does not record (latency): nothing to check
        if value is not None and threshold is not None and passed is not None:
            if bool(OPS[gate.op](value, threshold)) != passed:
                out.append(
                    f"{label} says {'passed' if passed else 'failed'}, but its value {value:g} "
                    f"against {threshold:g} says otherwise"
                )
        variant = gate.left.variant or g.get("variant")
        if gate.right is None and gate.left.stat in LOCKED_STATS and value is not None and variant:
            ms = recorded.get(variant, {}).get(gate.left.metric)
            stat = ms.get(gate.left.stat) if isinstance(ms, dict) else None
            if stat is not None and rounded(stat) != rounded(value):
                out.append(
                    f"{label} has value {value:g}, but the lock records "
                    f"{gate.left.metric}.{gate.left.stat} = {stat:g} for {variant}"
                )
    if entry.get("gates") and entry.get("passed") is failed:
        out.append(
            f"suite `{suite}` is recorded as {'passed' if entry['passed'] else 'failed'}, but "
            f"its gates say {'failed' if failed else 'passed'}"
        )
    return out


def _job_of(lock: Any, section: str, name: str) -> str | None:
    """The job that wrote a section entry, by the kinds' naming (gate.S, deploy.D)."""
    prefix = {"suites": "gate", "deployments": "deploy"}.get(section)
    return f"{prefix}.{name}" if prefix else None


def _against_store(lock: Any, graph: Any, store: Any) -> list[str]:
    from llmspec.hashing import digest
    from llmspec.jobs import kind as record

    out = []
    for job in graph.jobs.values():
        locked = lock.jobs.get(job.id)
        if locked is None or locked.key != job.key:
            continue
        stored = store.get(job.key)
        if stored is None:
            continue
        if stored.digest != locked.output:
            out.append(f"`{job.id}`'s output digest is not the stored result's")
            continue
        rec = record(job.kind)
        if rec.lock_section and rec.lock_name and rec.lock_entry:
            value = lock.section(rec.lock_section).get(rec.lock_name(job))
            if value is not None and digest(value) != digest(rec.lock_entry(job, stored.output)):
                out.append(
                    f"`{rec.lock_section}.{rec.lock_name(job)}` is not what `{job.id}`'s stored "
                    "result says"
                )
    return out
