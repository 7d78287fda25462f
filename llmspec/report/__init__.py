"""Reporters: the `Results` value rendered for people and machines.

`text` (the apply summary), `markdown` (short enough for a pull-request comment), `json` (the
results document itself) and `junit` (one test case per gate, for CI). Each is a function
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
