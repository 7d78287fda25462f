"""The Markdown report: short enough for a pull-request comment."""

from __future__ import annotations

from typing import Any

from llmspec.report import (
    comparison_line,
    gate_groups,
    gate_line,
    kind_table,
    model_line,
    testset_line,
    verdict,
    with_interval,
)

MAX_AB = 12  # significant differences listed per suite, as in the text report


def render(results: Any) -> str:
    lines = [f"### llmspec results: `{results.project}`", ""]
    if results.models:
        lines += [f"- model {model_line(m)}" for m in results.models] + [""]
    for t in results.testsets:
        lines += [f"- {testset_line(t)}", ""]
    if not results.suites:
        return "\n".join(lines + ["No suites."]) + "\n"
    for s in results.suites:
        mark = {"passed": "✅", "failed": "❌"}.get(s.status, "⏸")
        lines.append(f"#### {mark} `{s.name}`: {s.status}")
        if s.description:
            lines.append(f"_{s.description}_")
        lines.append("")
        if s.variants:
            blamed = any(v.failures for v in s.variants)
            extra = ["wrong answers by component"] if blamed else []
            lines.append(
                "| variant | rows | errors | truncated | closed early | "
                + " | ".join(s.metrics + extra)
                + " |"
            )
            lines.append("|---" * (5 + len(s.metrics) + len(extra)) + "|")
            for v in s.variants:
                vals = [with_interval(v.metrics.get(m), m) for m in s.metrics]
                if blamed:
                    vals.append(", ".join(f"{c} {n}" for c, n in v.failures.items()) or "-")
                lines.append(
                    f"| `{v.name}` | {v.rows} | {v.errors} | {v.truncated} | {v.closed_early} | "
                    + " | ".join(vals)
                    + " |"
                )
            lines.append("")
        for v in s.variants:
            if v.by_kind:
                header, rows = kind_table(v, s.metrics)
                lines.append(f"<details><summary>`{v.name}` by question kind</summary>")
                lines += ["", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
                lines += ["| " + " | ".join(r) + " |" for r in rows]
                lines += ["", "</details>", ""]
        if s.gates:
            for gate, v, checks in gate_groups(s.gates):
                detail = gate_line(gate, v, checks).split(": ", 1)[1]
                lines.append(f"- **{verdict(v)}** `{gate}`: {detail}")
            lines.append("")
        if s.redteam is not None:
            from llmspec.report.redteam import markdown_lines

            lines += markdown_lines(s)
        if s.comparisons:
            holm = len(s.variants) > 2
            significant = [
                c for c in s.comparisons if (c.significant_holm if holm else c.significant)
            ]
            note = ", Holm-corrected" if holm else ""
            lines.append(
                f"<details><summary>A/B: {len(significant)} of {len(s.comparisons)} paired "
                f"differences significant (95% bootstrap{note})</summary>"
            )
            lines.append("")
            lines += [f"- {comparison_line(c, holm)}" for c in significant[:MAX_AB]]
            if len(significant) > MAX_AB:
                lines.append(
                    f"- ... {len(significant) - MAX_AB} more in `llmspec report --format json`"
                )
            lines += ["", "</details>", ""]
        causes = [(v.name, c, n) for v in s.variants for c, n in v.causes.items()]
        if causes:
            lines.append("<details><summary>Row errors</summary>")
            lines.append("")
            lines += [f"- `{v}`: {n} rows: {c}" for v, c, n in causes]
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"
