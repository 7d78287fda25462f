"""The text report: per suite a table of variants x metrics (means with 95% intervals), its
gates, its A/B comparisons, agreement between repeats and its row errors grouped by cause.
This is what `llmspec apply` prints at the end."""

from __future__ import annotations

from typing import Any

from llmspec.report import comparison_line, gate_groups, gate_line, number, table, with_interval

MAX_AB = 12


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
        # metrics down, variants across: suites grow metrics faster than variants
        header = ["", *(v.name for v in s.variants)]
        rows = [
            ["rows", *(str(v.rows) for v in s.variants)],
            ["errors", *(str(v.errors) for v in s.variants)],
            ["truncated", *(str(v.truncated) for v in s.variants)],
            ["closed early", *(str(v.closed_early) for v in s.variants)],
        ]
        rows += [[m, *(with_interval(v.metrics.get(m), m) for v in s.variants)] for m in s.metrics]
        lines += table(header, rows)
    for gate, v, checks in gate_groups(s.gates):
        lines.append(f"  {gate_line(gate, v, checks)}")
    if s.comparisons:
        holm = len(s.variants) > 2
        shown = [c for c in s.comparisons if (c.significant_holm if holm else c.significant)]
        note = "Holm-corrected across pairs, " if holm else ""
        lines.append(
            f"  A/B: {len(shown)} of {len(s.comparisons)} paired differences significant "
            f"({note}95% bootstrap){':' if shown else ''}"
        )
        lines += [f"    {comparison_line(c, holm)}" for c in shown[:MAX_AB]]
        if len(shown) > MAX_AB:
            lines.append(f"    ... {len(shown) - MAX_AB} more in `llmspec report --format json`")
    for v in s.variants:
        for metric, a in v.repeats.items():
            flips = f", {number(a.flip_rate)} flip" if a.flip_rate is not None else ""
            lines.append(
                f"  {v.name}: repeats agree on {number(a.agreement)} of {a.rows} rows for "
                f"{metric}{flips}"
            )
    for v in s.variants:
        for cause, n in v.causes.items():
            lines.append(f"  {v.name}: {n} row{'s' if n != 1 else ''} failed: {cause}")
    return lines
