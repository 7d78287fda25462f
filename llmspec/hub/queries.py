"""Reading the run history: runs, one run, its rows a page at a time, metric series, locks.

Everything returned is plain JSON-able data, the same for `llmspec runs --format json` and the
hub's `/api/`. Results documents are passed on as they were stored, whatever fields they have;
only the few fields a view needs are read (suite and variant names, metric statistics, gates).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from llmspec.errors import LlmspecError, Loc

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
FILTERS = ("all", "failed", "changed")

_RUN_COLUMNS = (
    "id, project, status, started, finished, seconds, git_commit, git_dirty, runner, "
    "llmspec_version, lock_digest, summary, results_version"
)

_HEAD = frozenset(c.strip() for c in _RUN_COLUMNS.split(",")) - {"summary", "git_dirty"}


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def _run_head(r: sqlite3.Row) -> dict[str, Any]:
    out = {k: r[k] for k in r.keys() if k in _HEAD}
    out["git_dirty"] = None if r["git_dirty"] is None else bool(r["git_dirty"])
    out["summary"] = _json(r["summary"])
    return out


def list_runs(conn: sqlite3.Connection | None) -> list[dict[str, Any]]:
    """Every run, oldest first, with each suite's status."""
    if conn is None:
        return []
    out = []
    for r in conn.execute(f"SELECT {_RUN_COLUMNS}, results FROM runs ORDER BY id"):
        head = _run_head(r)
        doc = _json(r["results"]) or {}
        head["suites"] = [
            {"name": s.get("name"), "status": s.get("status")} for s in doc.get("suites") or []
        ]
        out.append(head)
    return out


def _row(conn: sqlite3.Connection, run_id: int, columns: str) -> sqlite3.Row:
    r = conn.execute(f"SELECT {columns} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if r is None:
        raise LlmspecError.one(
            "E120",
            f"no run {run_id} in the history",
            hint="`llmspec runs` lists the recorded runs",
        )
    return r


def no_history(where: str) -> LlmspecError:
    return LlmspecError.one(
        "E120",
        "no run history here yet",
        Loc(where),
        "`llmspec apply` records each run in .llmspec/history.sqlite",
    )


def get_run(conn: sqlite3.Connection, run_id: int) -> dict[str, Any]:
    """One run: its head, plan, results document (without rows), jobs, row counts, spec files."""
    r = _row(conn, run_id, f"{_RUN_COLUMNS}, run_log, plan, spec, results")
    out = _run_head(r)
    out["run_log"] = r["run_log"]
    out["plan"] = _json(r["plan"])
    out["spec_files"] = sorted((_json(r["spec"]) or {}).keys())
    out["results"] = _json(r["results"])
    out["jobs"] = [
        dict(j)
        for j in conn.execute(
            "SELECT job, kind, status, seconds, error FROM jobs WHERE run_id = ? ORDER BY job",
            (run_id,),
        )
    ]
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for c in conn.execute(
        "SELECT suite, variant, count(*) AS n, sum(failed) AS failed FROM rows WHERE run_id = ?"
        " GROUP BY suite, variant",
        (run_id,),
    ):
        counts.setdefault(c["suite"], {})[c["variant"]] = {"rows": c["n"], "failed": c["failed"]}
    out["row_counts"] = counts
    out["previous"] = previous_run(conn, run_id)
    return out


def previous_run(conn: sqlite3.Connection, run_id: int) -> int | None:
    """The latest earlier run that has results: what `changed` compares with by default."""
    r = conn.execute(
        "SELECT id FROM runs WHERE id < ? AND results IS NOT NULL ORDER BY id DESC LIMIT 1",
        (run_id,),
    ).fetchone()
    return r[0] if r else None


def lock_text(conn: sqlite3.Connection, run_id: int) -> str | None:
    return _row(conn, run_id, "lock")["lock"]


def spec_files(conn: sqlite3.Connection, run_id: int) -> dict[str, str]:
    return _json(_row(conn, run_id, "spec")["spec"]) or {}


def run_results(conn: sqlite3.Connection, run_id: int) -> dict[str, Any] | None:
    """The whole results document of a run, its rows put back in each suite."""
    doc = _json(_row(conn, run_id, "results")["results"])
    if doc is None:
        return None
    by_suite: dict[str, list[dict]] = {}
    for r in conn.execute(
        "SELECT r.suite, c.data, r.varying FROM rows r JOIN contents c ON c.digest = r.content"
        " WHERE r.run_id = ? ORDER BY r.suite, r.idx",
        (run_id,),
    ):
        by_suite.setdefault(r["suite"], []).append(json.loads(r["data"]) | json.loads(r["varying"]))
    for suite in doc.get("suites") or []:
        suite["rows"] = by_suite.get(suite.get("name"), [])
    return doc


def rows_page(
    conn: sqlite3.Connection,
    run_id: int,
    suite: str,
    *,
    variant: str | None = None,
    page: int = 1,
    size: int = PAGE_SIZE,
    filter: str = "all",
    base: int | None = None,
    with_base: bool = False,
) -> dict[str, Any]:
    """One page of a suite's rows, optionally only those that `failed` (an error, an invalid
    output, a violation) or `changed` against run `base` (by default the previous run): a
    different output or other content, different metric values (latency aside), or no such
    row in `base`. `with_base` adds the base run's row to each (`base_row`)."""
    if filter not in FILTERS:
        raise ValueError(f"filter must be one of {', '.join(FILTERS)}")
    _row(conn, run_id, "id")
    size = max(1, min(int(size), MAX_PAGE_SIZE))
    page = max(1, int(page))
    if base is None:
        base = previous_run(conn, run_id)
    else:
        _row(conn, base, "id")
    # named: without statistics the planner would search the base run by its primary key
    join = (
        "LEFT JOIN rows b INDEXED BY rows_by_key ON b.run_id = :base AND b.suite = r.suite"
        " AND b.variant = r.variant AND b.row_no IS r.row_no AND b.rep IS r.rep"
    )
    where = ["r.run_id = :run", "r.suite = :suite"]
    if variant:
        where.append("r.variant = :variant")
    if filter == "failed":
        where.append("r.failed = 1")
    changed = "(b.run_id IS NULL OR b.content != r.content OR b.scores != r.scores)"
    if filter == "changed":
        where.append(changed)
    args = {"run": run_id, "suite": suite, "variant": variant, "base": base}
    cond = " AND ".join(where)
    total = conn.execute(f"SELECT count(*) FROM rows r {join} WHERE {cond}", args).fetchone()[0]
    pages = max(1, -(-total // size))
    window = {"limit": size, "offset": (page - 1) * size, "lo": (page - 1) * size}
    if len(where) == 2:  # every row of the suite: idx runs 0..n-1, so a page is a key range
        cond += " AND r.idx >= :lo"
        window["offset"] = 0
    cur = conn.execute(
        f"SELECT r.idx, r.failed, {changed} AS changed, c.data, r.varying, b.content AS bc,"
        f" b.varying AS bv FROM rows r {join} JOIN contents c ON c.digest = r.content"
        f" WHERE {cond} ORDER BY r.idx LIMIT :limit OFFSET :offset",
        args | window,
    )
    rows = []
    base_contents: list[bytes] = []
    for r in cur.fetchall():
        row = json.loads(r["data"]) | json.loads(r["varying"])
        row["_index"] = r["idx"]
        row["_failed"] = bool(r["failed"])
        row["_changed"] = bool(r["changed"]) if base is not None else None
        if with_base and r["bc"] is not None:
            row["_base"] = (r["bc"], r["bv"])
            base_contents.append(r["bc"])
        rows.append(row)
    if base_contents:
        marks = ",".join("?" * len(set(base_contents)))
        data = dict(
            conn.execute(
                f"SELECT digest, data FROM contents WHERE digest IN ({marks})",
                sorted(set(base_contents)),
            ).fetchall()
        )
    for row in rows:
        if "_base" in row:
            bc, bv = row.pop("_base")
            row["base_row"] = json.loads(data[bc]) | json.loads(bv)
    return {
        "run": run_id,
        "suite": suite,
        "variant": variant,
        "filter": filter,
        "base": base,
        "page": page,
        "pages": pages,
        "size": size,
        "total": total,
        "rows": rows,
    }


def metric_values(
    conn: sqlite3.Connection, run_id: int, suite: str, variant: str
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """(row, repeat) -> metric values, for paired comparisons."""
    out = {}
    for r in conn.execute(
        "SELECT row_no, rep, varying FROM rows WHERE run_id = ? AND suite = ? AND variant = ?",
        (run_id, suite, variant),
    ):
        out[(r["row_no"], r["rep"])] = json.loads(r["varying"]).get("metrics") or {}
    return out


def series(conn: sqlite3.Connection | None) -> list[dict[str, Any]]:
    """Per suite and metric, each variant's statistics run after run (for the charts)."""
    if conn is None:
        return []
    charts: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for r in conn.execute(
        "SELECT id, started, git_commit, results FROM runs WHERE results IS NOT NULL ORDER BY id"
    ):
        doc = _json(r["results"]) or {}
        for s in doc.get("suites") or []:
            for v in s.get("variants") or []:
                for metric, stats in (v.get("metrics") or {}).items():
                    if not isinstance(stats, dict) or stats.get("mean") is None:
                        continue
                    point = {"run": r["id"], "started": r["started"], "commit": r["git_commit"]}
                    point |= {k: stats.get(k) for k in ("mean", "lcb95", "ucb95", "n")}
                    key = (str(s.get("name")), str(metric))
                    charts.setdefault(key, {}).setdefault(str(v.get("name")), []).append(point)
    return [
        {"suite": suite, "metric": metric, "variants": variants}
        for (suite, metric), variants in charts.items()
    ]


def locks(conn: sqlite3.Connection | None) -> list[dict[str, Any]]:
    """The lock versions the history holds: each with the runs that produced it."""
    if conn is None:
        return []
    out: dict[str, dict[str, Any]] = {}
    for r in conn.execute(
        "SELECT id, started, git_commit, lock_digest FROM runs WHERE lock_digest IS NOT NULL"
        " ORDER BY id"
    ):
        new = {"digest": r["lock_digest"], "runs": [], "commits": [], "first": r["started"]}
        entry = out.setdefault(r["lock_digest"], new)
        entry["runs"].append(r["id"])
        if r["git_commit"] and r["git_commit"] not in entry["commits"]:
            entry["commits"].append(r["git_commit"])
        entry["last"] = r["started"]
    return list(out.values())
