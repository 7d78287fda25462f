"""Reporters: the `Results` value rendered for people and machines.

`text` (the apply summary), `markdown` (short enough for a pull-request comment), `json` (the
results document itself), `junit` (one test case per gate, for CI) and `html` (one
self-contained page with charts). Each is a function
`render(results) -> str` in its own module, loaded by name.
"""

from __future__ import annotations

import importlib
from typing import Any

REPORTERS = {
    "text": "llmspec.report.text:render",
    "markdown": "llmspec.report.markdown:render",
    "json": "llmspec.report.jsonfmt:render",
    "junit": "llmspec.report.junit:render",
    "html": "llmspec.report.html:render",
}


def render(results: Any, fmt: str) -> str:
    module, _, attr = REPORTERS[fmt].partition(":")
    return getattr(importlib.import_module(module), attr)(results)


def number(x: float | None, metric: str = "") -> str:
    """A metric value as a report shows it.

    >>> number(0.12345), number(None), number(1.5, "latency")
    ('0.123', '-', '1.50s')
    """
    if x is None:
        return "-"
    if metric in ("latency", "ttft"):
        return f"{x:.2f}s"
    if metric in ("cost",):
        return f"${x:.4f}"
    if metric in ("tokens_in", "tokens_out"):
        return f"{x:.1f}"
    return f"{x:.3f}"


def with_interval(m: Any, metric: str = "") -> str:
    """A metric's value with its 95% interval when it has one.

    >>> class M: mean, lcb95, ucb95, n = 0.4125, 0.35, 0.47, 20
    >>> with_interval(M())
    '0.412 [0.350, 0.470]'
    """
    if m is None or m.mean is None:
        return "-"
    text = number(m.mean, metric)
    if m.lcb95 is not None and m.ucb95 is not None and m.n > 1:
        lo, hi = number(m.lcb95, metric), number(m.ucb95, metric)
        if lo != hi:
            text += f" [{lo}, {hi}]"
    return text


def signed(x: float | None) -> str:
    """A difference with its sign.

    >>> signed(0.0312), signed(-0.00004), signed(21.48)
    ('+0.0312', '-4e-05', '+21.48')
    """
    if x is None:
        return "-"
    return f"{x:+.3g}" if x and abs(x) < 1e-3 else f"{x:+.4g}"


def comparison_line(c: Any, holm: bool) -> str:
    """`a - b: metric +0.030 [-0.010, +0.070] (p 0.12)`, starred when significant."""
    significant = c.significant_holm if holm else c.significant
    star = " *" if significant else ""
    p = f"p {c.p:.3f}" if c.p is not None else "p -"
    return (
        f"{c.a} - {c.b}: {c.metric} {signed(c.mean)} [{signed(c.lcb95)}, {signed(c.ucb95)}] "
        f"({p}, n {c.n}){star}"
    )


def gate_groups(gates: Any) -> list[tuple[str, bool | None, list[Any]]]:
    """A suite's gate checks grouped by gate: (gate, its verdict, its checks). A gate fails
    when any variant fails it, and is skipped only when every check is.

    >>> class C:
    ...     def __init__(self, gate, passed): self.gate, self.passed = gate, passed
    >>> [(g, v, len(cs)) for g, v, cs in gate_groups([C("a", True), C("a", False), C("b", None)])]
    [('a', False, 2), ('b', None, 1)]
    """
    order: dict[str, list[Any]] = {}
    for g in gates:
        order.setdefault(g.gate, []).append(g)
    out = []
    for gate, checks in order.items():
        verdicts = [c.passed for c in checks]
        v = False if False in verdicts else None if all(x is None for x in verdicts) else True
        out.append((gate, v, checks))
    return out


def gate_line(gate: str, v: bool | None, checks: list[Any]) -> str:
    """`pass  schema_valid == 1: base/qa 1.000, small/qa 1.000`, with reasons for skips."""
    parts = []
    for c in checks:
        value = number(c.value) if c.value is not None else "-"
        # a part is marked only where it differs from the verdict of the whole line
        mark = " FAIL" if c.passed is False else ""
        mark = " (skipped)" if c.passed is None and v is not None else mark
        parts.append(f"{c.variant} {value}{mark}" if c.variant else f"{value}{mark}")
    why = {c.reason for c in checks if c.reason}
    tail = f" ({'; '.join(sorted(why))})" if why else ""
    return f"{verdict(v):4}  {gate}: {', '.join(parts)}{tail}"


def verdict(passed: bool | None) -> str:
    return "pass" if passed else "skip" if passed is None else "FAIL"


def table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    """Plain aligned columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        rest = zip(cells[1:], widths[1:], strict=True)
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        return (indent + "  ".join(parts)).rstrip()

    return [line(header)] + [line(r) for r in rows]
