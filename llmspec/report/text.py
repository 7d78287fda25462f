"""The text report: per suite a table of variants x metrics, its gates and its row errors
grouped by cause. This is what `llmspec apply` prints at the end."""

from __future__ import annotations

from typing import Any

from llmspec.report import number, table, verdict


def render(results: Any) -> str:
    out: list[str] = []
    for s in results.suites:
        out += suite_lines(s)
        out.append("")
    return "\n".join(out).rstrip() + "\n" if out else "No suites.\n"


def suite_lines(s: Any) -> list[str]:
    head = f"Suite {s.name}: {s.status}" + (" (from the lock)" if s.from_lock else "")
    lines = [head + (f" - {s.description}" if s.description else "")]
    if s.variants:
        header = ["variant", "rows", "errors", "truncated", "closed early", *s.metrics]
        rows = []
        for v in s.variants:
            rows.append(
                [v.name, str(v.rows), str(v.errors), str(v.truncated), str(v.closed_early)]
                + [number(v.metrics[m].mean if m in v.metrics else None, m) for m in s.metrics]
            )
        lines += table(header, rows)
    for g in s.gates:
        who = f" [{g.variant}]" if g.variant else ""
        value = f" = {number(g.value)}" if g.value is not None else ""
        why = f" ({g.reason})" if g.reason else ""
        lines.append(f"  {verdict(g.passed):4}  {g.gate}{who}{value}{why}")
    for v in s.variants:
        for cause, n in v.causes.items():
            lines.append(f"  {v.name}: {n} row{'s' if n != 1 else ''} failed: {cause}")
    return lines
