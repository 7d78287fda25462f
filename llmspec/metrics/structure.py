"""Metrics about the form of outputs rather than their content."""

from __future__ import annotations

import json
from typing import Any

Rows = list[dict[str, Any]]


def schema_valid(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    """1 when the output satisfied the prompt's constraint (re-checked after generation);
    errors and truncated outputs count as 0. Without a constraint there is nothing to check."""
    return [None if r.get("valid") is None else float(bool(r["valid"])) for r in rows]


def json_valid(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    out: list[float | None] = []
    for r in rows:
        text = r.get("output")
        if text is None:
            out.append(0.0)
            continue
        try:
            json.loads(text)
            out.append(1.0)
        except ValueError:
            out.append(0.0)
    return out
