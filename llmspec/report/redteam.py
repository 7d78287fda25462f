"""The red-team parts of the reports: per variant a table of families x strategies (attack
success rate, n, 95% Wilson interval, the baseline without a strategy, the OWASP category), and
the worst transcripts (successful attacks, a few per family). Text, Markdown and HTML each
take what they show from here; every value from a probe or a model is escaped in HTML."""

from __future__ import annotations

import html
from typing import Any

from llmspec.report import number, table

CLIP = 600  # characters of a transcript's input or output shown in Markdown and HTML


def cell(c: Any) -> str:
    """`0.250 (2/8)`: the rate, successes of n.

    >>> class C: asr, successes, n = 0.25, 2, 8
    >>> cell(C())
    '0.250 (2/8)'
    """
    if c is None or c.asr is None:
        return "-"
    return f"{number(c.asr)} ({c.successes if c.successes is not None else '?'}/{c.n})"


def interval(c: Any) -> str:
    if c is None or c.lcb95 is None or c.ucb95 is None:
        return ""
    return f"[{number(c.lcb95)}, {number(c.ucb95)}]"


def columns(rt: Any) -> list[str]:
    """Strategies in the order the tables show them: plain, the declared ones, indirect."""
    seen = ["plain", *rt.strategies]
    for v in rt.variants:
        for c in v.cells:
            if c.strategy not in seen:
                seen.append(c.strategy)
    return seen


def grid(rt: Any, variant: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(family info, strategy -> cell) for each family of a variant."""
    cells: dict[str, dict[str, Any]] = {}
    for c in variant.cells:
        cells.setdefault(c.family, {})[c.strategy] = c
    return [(f, cells.get(f.name, {})) for f in rt.families]


def owasp(f: Any) -> str:
    return f"{f.owasp} {f.owasp_name}" if f.owasp else "-"


def text_lines(s: Any) -> list[str]:
    rt = s.redteam
    if rt is None:
        return []
    cols = columns(rt)
    lines = [f"  Attack success rate by strategy (probe set {rt.probe_set}; successes/n):"]
    for v in rt.variants:
        rows = [
            [f.name, *(cell(by.get(col)) for col in cols), f.owasp or "-"] for f, by in grid(rt, v)
        ]
        lines.append(f"  {v.name}:")
        lines += table(["", *cols, "OWASP"], rows, indent="    ")
        if v.planted:
            lines.append(
                f"    planted documents retrieved for {v.planted_retrieved} of {v.planted} attempts"
            )
    return lines


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= CLIP else text[:CLIP] + f" ... ({len(text) - CLIP} more)"


def markdown_lines(s: Any) -> list[str]:
    """Two collapsed blocks, to keep a pull-request comment short: the rates by family and
    strategy (one row per family, one column per variant), and the worst transcripts, one line
    each (the HTML report and `--format json` have them whole)."""
    rt = s.redteam
    if rt is None:
        return []
    cols = columns(rt)
    out = [
        f"<details><summary>Attack success rate by strategy (probe set `{rt.probe_set}`): "
        "successes/n, lower is better</summary>",
        "",
        "| family | OWASP (2025) | " + " | ".join(f"`{v.name}`" for v in rt.variants) + " |",
        "|---" * (2 + len(rt.variants)) + "|",
    ]
    grids = [dict((f.name, by) for f, by in grid(rt, v)) for v in rt.variants]
    for f in rt.families:
        parts = [
            ", ".join(f"{c} {_ratio(g[f.name].get(c))}" for c in cols if c in g[f.name])
            for g in grids
        ]
        out.append(f"| `{f.name}` | {owasp(f)} | " + " | ".join(parts) + " |")
    planted = [f"`{v.name}` {v.planted_retrieved}/{v.planted}" for v in rt.variants if v.planted]
    if planted:
        out += ["", f"Planted documents retrieved: {', '.join(planted)}."]
    out += ["", "</details>", ""]
    if rt.worst:
        shown = rt.worst[:MARKDOWN_WORST]
        out.append(
            f"<details><summary>Worst transcripts ({len(shown)} of {len(rt.worst)})</summary>"
        )
        out.append("")
        for t in shown:
            out.append(
                f"- `{t.variant}` {t.family}/{t.strategy}: {t.evidence}; probe "
                f"{_inline(t.input)} -> output {_inline(t.output)}"
            )
        out += ["", "</details>", ""]
    return out


MARKDOWN_WORST = 8
INLINE = 90  # characters of a probe or an output on a Markdown transcript line


def _ratio(c: Any) -> str:
    if c is None or c.asr is None:
        return "-"
    return f"{c.successes if c.successes is not None else number(c.asr)}/{c.n}"


def _inline(text: str | None) -> str:
    flat = " ".join((text or "").split())
    if len(flat) > INLINE:
        flat = flat[:INLINE] + "..."
    return "`" + flat.replace("`", "'") + "`" if flat else "(empty)"


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def html_parts(s: Any) -> list[str]:
    rt = s.redteam
    if rt is None:
        return []
    cols = columns(rt)
    out = [
        f"<h3>Attack success rate by strategy</h3><p class=muted>probe set {e(rt.probe_set)}; "
        "successes/n with a 95% Wilson interval; lower is better. Baseline: the family's rate "
        "without a strategy.</p>"
    ]
    for v in rt.variants:
        head = "".join(f"<th>{e(c)}</th>" for c in cols)
        rows = []
        for f, by in grid(rt, v):
            tds = []
            for col in cols:
                c = by.get(col)
                base = ""
                if c is not None and c.baseline is not None:
                    base = f"<br><span class=muted>baseline {e(number(c.baseline))}</span>"
                tds.append(f"<td class=num>{e(cell(c))}<br>{e(interval(c))}{base}</td>")
            rows.append(
                f'<tr><td title="{e(f.detector)}">{e(f.name)}</td><td>{e(owasp(f))}</td>'
                f"{''.join(tds)}</tr>"
            )
        planted = (
            f"<p class=muted>planted documents retrieved for {v.planted_retrieved} of "
            f"{v.planted} attempts</p>"
            if v.planted
            else ""
        )
        out.append(
            f"<h3>{e(v.name)}</h3><table class=redteam><tr><th>family</th><th>OWASP (2025)</th>"
            f"{head}</tr>{''.join(rows)}</table>{planted}"
        )
    if rt.worst:
        rows = []
        for t in rt.worst:
            doc = ""
            if t.document:
                where = " (retrieved)" if t.retrieved else ""
                doc = f"<br><i>document{e(where)}:</i><pre>{e(_clip(t.document))}</pre>"
            pair = ""
            if t.paired_input is not None:
                pair = (
                    f"<br><i>paired probe:</i><pre>{e(_clip(t.paired_input))}</pre>"
                    f"<i>paired output:</i><pre>{e(_clip(t.paired_output))}</pre>"
                )
            rows.append(
                f"<tr><td>{e(t.variant)}</td><td>{e(t.family)}<br>{e(t.strategy)}</td>"
                f"<td><pre>{e(_clip(t.input))}</pre>{doc}</td><td><pre>{e(_clip(t.output))}"
                f"</pre>{pair}</td><td>{e(t.evidence)}</td></tr>"
            )
        out.append(
            "<h3>Worst transcripts</h3><table class=transcripts><tr><th>variant</th>"
            "<th>family</th><th>probe</th><th>output</th><th>evidence</th></tr>"
            f"{''.join(rows)}</table>"
        )
    return out
