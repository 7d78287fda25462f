"""Two runs side by side: which metrics moved (with paired intervals), which gates flipped,
how many rows changed, and what changed in the spec files and in the lock.

Deltas are `b - a` (b is usually the newer run). The paired difference of a metric pairs the
two runs' rows by (row, repeat) within each suite and variant, and bootstraps the mean
difference (`llmspec.stats.paired_difference`); an interval that excludes 0 is `significant`.
"""

from __future__ import annotations

import difflib
import sqlite3
from typing import Any

from llmspec.hub import queries

MAX_DIFF_LINES = 2000  # per spec file: a diff longer than this is cut, and says so


def compare_runs(conn: sqlite3.Connection, a: int, b: int) -> dict[str, Any]:
    ra, rb = queries.get_run(conn, a), queries.get_run(conn, b)
    out: dict[str, Any] = {
        "a": _head(ra),
        "b": _head(rb),
        "suites": _suites(conn, ra, rb),
        "spec": spec_diff(queries.spec_files(conn, a), queries.spec_files(conn, b)),
        "lock": lock_diff(queries.lock_text(conn, a), queries.lock_text(conn, b), a, b),
    }
    return out


def _head(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in ("results", "jobs", "plan")}


def _by_name(items: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {str(x.get("name")): x for x in items or [] if isinstance(x, dict)}


def _names(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(b) + [k for k in a if k not in b]


def _suites(conn: sqlite3.Connection, ra: dict[str, Any], rb: dict[str, Any]) -> list[dict]:
    sa = _by_name((ra.get("results") or {}).get("suites"))
    sb = _by_name((rb.get("results") or {}).get("suites"))
    out = []
    for name in _names(sa, sb):
        a, b = sa.get(name) or {}, sb.get(name) or {}
        va, vb = _by_name(a.get("variants")), _by_name(b.get("variants"))
        variants = []
        for v in _names(va, vb):
            variants.append(_variant(conn, ra["id"], rb["id"], name, v, va.get(v), vb.get(v)))
        out.append(
            {
                "name": name,
                "a": {"status": a.get("status")} if a else None,
                "b": {"status": b.get("status")} if b else None,
                "variants": variants,
                "gates": _gates(a.get("gates") or [], b.get("gates") or []),
                "changed_rows": _changed_rows(conn, ra["id"], rb["id"], name),
            }
        )
    return out


def _variant(
    conn: sqlite3.Connection,
    a: int,
    b: int,
    suite: str,
    name: str,
    va: dict | None,
    vb: dict | None,
) -> dict[str, Any]:
    from llmspec.stats import paired_difference

    ma, mb = (va or {}).get("metrics") or {}, (vb or {}).get("metrics") or {}
    rows_a = queries.metric_values(conn, a, suite, name) if va and vb else {}
    rows_b = queries.metric_values(conn, b, suite, name) if va and vb else {}
    common = sorted(
        set(rows_a) & set(rows_b), key=lambda k: tuple(-1 if x is None else x for x in k)
    )
    metrics = []
    for m in _names(ma, mb):
        sa, sb = ma.get(m) or {}, mb.get(m) or {}
        mean_a, mean_b = sa.get("mean"), sb.get("mean")
        delta = (
            round(mean_b - mean_a, 6)
            if isinstance(mean_a, int | float) and isinstance(mean_b, int | float)
            else None
        )
        paired = None
        if common:
            xs = [_num(rows_b[k].get(m)) for k in common]
            ys = [_num(rows_a[k].get(m)) for k in common]
            if any(x is not None for x in xs) and any(y is not None for y in ys):
                paired = paired_difference(xs, ys)
        metrics.append(
            {"metric": m, "a": sa or None, "b": sb or None, "delta": delta, "paired": paired}
        )
    return {
        "name": name,
        "a": {k: (va or {}).get(k) for k in ("model", "prompt", "rows", "errors")} if va else None,
        "b": {k: (vb or {}).get(k) for k in ("model", "prompt", "rows", "errors")} if vb else None,
        "paired_rows": len(common),
        "metrics": metrics,
    }


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _gates(a: list[dict], b: list[dict]) -> list[dict[str, Any]]:
    def key(g: dict) -> tuple[str, str]:
        return str(g.get("gate")), str(g.get("variant"))

    ga, gb = {key(g): g for g in a}, {key(g): g for g in b}
    out = []
    for k in list(gb) + [k for k in ga if k not in gb]:
        x, y = ga.get(k), gb.get(k)
        out.append(
            {
                "gate": k[0],
                "variant": (y or x or {}).get("variant"),
                "a": {"value": x.get("value"), "passed": x.get("passed")} if x else None,
                "b": {"value": y.get("value"), "passed": y.get("passed")} if y else None,
                "flipped": bool(x and y and x.get("passed") != y.get("passed")),
            }
        )
    return out


def _changed_rows(conn: sqlite3.Connection, a: int, b: int, suite: str) -> int:
    return queries.rows_page(conn, b, suite, filter="changed", base=a, size=1)["total"]


def spec_diff(a: dict[str, str], b: dict[str, str]) -> list[dict[str, Any]]:
    """Per spec file that differs: `added`, `removed` or `changed`, with a unified diff."""
    out = []
    for name in sorted(set(a) | set(b)):
        old, new = a.get(name), b.get(name)
        if old == new:
            continue
        status = "added" if old is None else "removed" if new is None else "changed"
        lines = list(
            difflib.unified_diff(
                (old or "").splitlines(),
                (new or "").splitlines(),
                f"a/{name}",
                f"b/{name}",
                lineterm="",
            )
        )
        cut = len(lines) > MAX_DIFF_LINES
        out.append(
            {"file": name, "status": status, "diff": lines[:MAX_DIFF_LINES], "truncated": cut}
        )
    return out


def lock_diff(a: str | None, b: str | None, ia: int, ib: int) -> dict[str, Any]:
    """`llmspec lock diff` between the locks two runs produced, as sections of lines."""
    from llmspec.errors import LlmspecError
    from llmspec.lock import parse_lock
    from llmspec.lockdiff import diff_locks

    if a is None or b is None:
        missing = [str(i) for i, t in ((ia, a), (ib, b)) if t is None]
        return {"sections": [], "note": f"run {' and '.join(missing)} recorded no lock"}
    if a == b:
        return {"sections": [], "note": "both runs produced the same lock"}
    try:
        sections = diff_locks(parse_lock(a, f"run {ia}"), parse_lock(b, f"run {ib}"))
    except LlmspecError as e:
        return {"sections": [], "note": e.diagnostics[0].message}
    return {"sections": [{"title": t, "lines": lines} for t, lines in sections], "note": None}
