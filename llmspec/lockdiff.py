"""`llmspec lock diff`: what changed between two locks, in words an auditor can read."""

from __future__ import annotations

import json
from typing import Any

from llmspec.lock import Lock


def diff_locks(old: Lock, new: Lock) -> list[tuple[str, list[str]]]:
    """Sections of change lines; an empty list when the locks say the same."""
    sections: list[tuple[str, list[str]]] = []

    def section(title: str, lines: list[str]) -> None:
        if lines:
            sections.append((title, lines))

    section("Tool chain", _flat(old.toolchain, new.toolchain))
    section("Models", _models(old.models, new.models))
    section("Prompts", _named(old.prompts, new.prompts, _prompt_change))
    section("Schemas", _named(old.schemas, new.schemas, lambda a, b: ["changed"]))
    section("Datasets", _named(old.datasets, new.datasets, _dataset_change))
    section("Knowledge", _named(old.knowledge, new.knowledge, _knowledge_change))
    section("Results", _jobs(old, new))
    section("Suites", _suites(old, new))
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


def _named(old: dict, new: dict, describe: Any) -> list[str]:
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
            out += [f"~ {name}: {d}" for d in describe(a, b)]
    return out


def _models(old: dict, new: dict) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {name} ({_model_label(b)})")
            continue
        if b is None:
            out.append(f"- {name} ({_model_label(a)})")
            continue
        if a.get("provider") != b.get("provider"):
            out.append(f"~ {name}: provider {a.get('provider')} -> {b.get('provider')}")
        af, bf = a.get("files") or {}, b.get("files") or {}
        for f in sorted(set(af) | set(bf)):
            if af.get(f) != bf.get(f):
                what = "added" if f not in af else "removed" if f not in bf else "changed"
                out.append(f"~ {name}: file {f} {what}")
        for k in ("model", "revision", "engine", "observed"):
            if a.get(k) != b.get(k):
                out.append(f"~ {name}: {k} {_show(a.get(k))} -> {_show(b.get(k))}")
        ap, bp = a.get("params") or {}, b.get("params") or {}
        for k in sorted(set(ap) | set(bp)):
            if ap.get(k) != bp.get(k):
                out.append(f"~ {name}: {k} {_show(ap.get(k))} -> {_show(bp.get(k))}")
    return out


def _model_label(m: dict) -> str:
    return m.get("provider", "?") + (f" {m['model']}" if m.get("model") else "")


def _show(v: Any) -> str:
    return json.dumps(v, sort_keys=True) if not isinstance(v, str) else v


def _prompt_change(a: dict, b: dict) -> list[str]:
    parts = [k for k in ("system", "template", "output") if a.get(k) != b.get(k)]
    return [f"{' and '.join(parts)} changed"] if parts else ["changed"]


def _dataset_change(a: dict, b: dict) -> list[str]:
    n, o = b.get("rows"), a.get("rows")
    if isinstance(n, int) and isinstance(o, int) and n != o:
        d = n - o
        return [
            f"{abs(d)} row{'s' if abs(d) != 1 else ''} {'added' if d > 0 else 'removed'} "
            f"({o} -> {n})"
        ]
    return ["rows changed"]


def _knowledge_change(a: dict, b: dict) -> list[str]:
    af, bf = a.get("files") or {}, b.get("files") or {}
    out = [
        f"{f} {'added' if f not in af else 'removed' if f not in bf else 'changed'}"
        for f in sorted(set(af) | set(bf))
        if af.get(f) != bf.get(f)
    ]
    return out or ["changed"]


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


def _suites(old: Lock, new: Lock) -> list[str]:
    out = []
    for name in sorted(set(old.suites) | set(new.suites)):
        a, b = old.suites.get(name), new.suites.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"+ {name}: {'passed' if b.passed else 'FAILED'}")
            continue
        if b is None:
            out.append(f"- {name}")
            continue
        if a.passed != b.passed:
            out.append(
                f"~ {name}: {'passed' if a.passed else 'FAILED'} -> "
                f"{'passed' if b.passed else 'FAILED'}"
            )
        for model in sorted(set(a.metrics) | set(b.metrics)):
            am, bm = a.metrics.get(model, {}), b.metrics.get(model, {})
            for metric in sorted(set(am) | set(bm)):
                x, y = am.get(metric), bm.get(metric)
                if x != y:
                    delta = f" ({y - x:+.4f})" if x is not None and y is not None else ""
                    out.append(f"~ {name}: {metric}[{model}] {_num(x)} -> {_num(y)}{delta}")
        ag = {(g.gate, g.model): g.passed for g in a.gates}
        for g in b.gates:
            before = ag.get((g.gate, g.model))
            if before is not None and before != g.passed:
                out.append(
                    f'~ {name}: gate "{g.gate}" [{g.model}] '
                    f"{'pass' if before else 'FAIL'} -> {'pass' if g.passed else 'FAIL'}"
                )
    return out


def _num(x: float | None) -> str:
    return "none" if x is None else f"{x:.4f}"
