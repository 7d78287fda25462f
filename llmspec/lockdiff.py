"""`llmspec lock diff`: what changed between two locks, in words an auditor can read.

Every section is compared the same way (`llmspec.diffs.describe`): tool chain versions, the
facts about inputs (models, prompts, schemas, datasets, knowledge), the jobs' outputs, and each
job kind's result section (suites, deployments, ...).
"""

from __future__ import annotations

from typing import Any

from llmspec.diffs import describe
from llmspec.lock import FACT_SECTIONS, Lock

TITLES = {
    "models": "Models",
    "prompts": "Prompts",
    "schemas": "Schemas",
    "datasets": "Datasets",
    "knowledge": "Knowledge",
}


def diff_locks(old: Lock, new: Lock) -> list[tuple[str, list[str]]]:
    """Sections of change lines; an empty list when the locks say the same."""
    sections: list[tuple[str, list[str]]] = []

    def section(title: str, lines: list[str]) -> None:
        if lines:
            sections.append((title, lines))

    section("Tool chain", _flat(old.toolchain, new.toolchain))
    for name in FACT_SECTIONS:
        section(TITLES[name], _entities(getattr(old, name), getattr(new, name)))
    section("Results", _jobs(old, new))
    for name in sorted(set(old.sections) | set(new.sections)):
        section(name.capitalize(), _entities(old.section(name), new.section(name)))
    return sections


def render_diff(old: Lock, new: Lock, old_name: str, new_name: str) -> str:
    sections = diff_locks(old, new)
    head = f"llmspec lock diff: {old_name} -> {new_name}"
    if not sections:
        return f"{head}\n\nNo differences.\n"
    out = [head, ""]
    for title, lines in sections:
        out.append(f"{title}:")
        out += [f"  {line}" for line in lines]
        out.append("")
    return "\n".join(out)


def _flat(old: dict[str, str], new: dict[str, str]) -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {k} {b}")
        elif b is None:
            out.append(f"- {k} {a}")
        else:
            out.append(f"~ {k} {a} -> {b}")
    return out


def _entities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {name}")
        elif b is None:
            out.append(f"- {name}")
        else:
            out += [f"~ {name}: {phrase}" for phrase in describe(a, b)]
    return out


def _jobs(old: Lock, new: Lock) -> list[str]:
    out, same_output = [], 0
    for jid in sorted(set(old.jobs) | set(new.jobs)):
        a, b = old.jobs.get(jid), new.jobs.get(jid)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {jid}")
        elif b is None:
            out.append(f"- {jid}")
        elif a.output != b.output:
            moved = sorted(
                k for k in set(a.inputs) | set(b.inputs) if a.inputs.get(k) != b.inputs.get(k)
            )
            why = f" (inputs: {', '.join(moved)})" if moved else ""
            out.append(f"~ {jid}: output changed{why}")
        else:
            same_output += 1
    if same_output:
        out.append(
            f"= {same_output} job{'s' if same_output != 1 else ''} re-ran with inputs "
            "changed and the same output"
        )
    return out
