"""The Markdown report: short enough for a pull-request comment."""

from __future__ import annotations

from typing import Any

from llmspec.report import number, verdict


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
                vals = [number(v.metrics[m].mean if m in v.metrics else None, m) for m in s.metrics]
                lines.append(
                    f"| `{v.name}` | {v.rows} | {v.errors} | {v.truncated} | {v.closed_early} | "
                    + " | ".join(vals)
                    + " |"
                )
            lines.append("")
        if s.gates:
            for g in s.gates:
                who = f" `{g.variant}`" if g.variant else ""
                value = f" = {number(g.value)}" if g.value is not None else ""
                lines.append(f"- **{verdict(g.passed)}** `{g.gate}`{who}{value}")
            lines.append("")
        causes = [(v.name, c, n) for v in s.variants for c, n in v.causes.items()]
        if causes:
            lines.append("<details><summary>Row errors</summary>")
            lines.append("")
            lines += [f"- `{v}`: {n} rows: {c}" for v, c, n in causes]
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"
