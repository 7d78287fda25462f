"""The Markdown report: short enough for a pull-request comment."""

from __future__ import annotations

from typing import Any

from llmspec.report import comparison_line, gate_groups, gate_line, verdict, with_interval


def render(results: Any) -> str:
    lines = [f"### llmspec results: `{results.project}`", ""]
    if not results.suites:
        return "\n".join(lines + ["No suites."]) + "\n"
    for s in results.suites:
        mark = {"passed": "✅", "failed": "❌"}.get(s.status, "⏸")
        lines.append(f"#### {mark} `{s.name}`: {s.status}")
        if s.description:
            lines.append(f"_{s.description}_")
        lines.append("")
        if s.variants:
            lines.append(
                "| variant | rows | errors | truncated | closed early | "
                + " | ".join(s.metrics)
                + " |"
            )
            lines.append("|---" * (5 + len(s.metrics)) + "|")
            for v in s.variants:
                vals = [with_interval(v.metrics.get(m), m) for m in s.metrics]
                lines.append(
                    f"| `{v.name}` | {v.rows} | {v.errors} | {v.truncated} | {v.closed_early} | "
                    + " | ".join(vals)
                    + " |"
                )
            lines.append("")
        if s.gates:
            for gate, v, checks in gate_groups(s.gates):
                detail = gate_line(gate, v, checks).split(": ", 1)[1]
                lines.append(f"- **{verdict(v)}** `{gate}`: {detail}")
            lines.append("")
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
            lines += [f"- {comparison_line(c, holm)}" for c in significant[:20]]
            lines += ["", "</details>", ""]
        causes = [(v.name, c, n) for v in s.variants for c, n in v.causes.items()]
        if causes:
            lines.append("<details><summary>Row errors</summary>")
            lines.append("")
            lines += [f"- `{v}`: {n} rows: {c}" for v, c, n in causes]
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"
