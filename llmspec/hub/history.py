"""The run history: every apply, recorded in `.llmspec/history.sqlite`, never in the lock.

A run is recorded when apply starts (status `running`, with its plan, the spec files, the git
commit) and completed when it ends: `done`, `failed` (a job failed), `gates-failed` or
`interrupted`, with the lock it produced (its text, so two runs' locks can be diffed), per job
timings, a summary and the results document. A run still `running` when the next apply starts
was killed: it is marked `interrupted` then. Recording never fails an apply: a history that
cannot be written is reported as a warning and apply goes on.

The database's schema is versioned (`meta.schema_version`); `MIGRATIONS[i]` takes a database
from version i to i + 1, and `connect` applies the missing ones. A database written by a newer
llmspec is refused (E121), never rewritten.

Rows of the results are stored apart from the document, one database row each, so that the hub
pages through them: what is the same from run to run (input, context, output, reference, ...)
once per content digest, what varies (metric values, seconds) per run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmspec.errors import LlmspecError, Loc

HISTORY_NAME = "history.sqlite"
SCHEMA_VERSION = 1

# Each entry takes the database from version i to i + 1; append, never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        project TEXT NOT NULL,
        status TEXT NOT NULL,
        started TEXT NOT NULL,
        finished TEXT,
        seconds REAL,
        git_commit TEXT,
        git_dirty INTEGER,
        host TEXT,
        pid INTEGER,
        runner TEXT,
        llmspec_version TEXT,
        run_log TEXT,
        plan TEXT,
        spec TEXT,
        summary TEXT,
        lock_digest TEXT,
        lock TEXT,
        results_version INTEGER,
        results TEXT
    );
    CREATE TABLE jobs (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        job TEXT NOT NULL,
        kind TEXT,
        status TEXT NOT NULL,
        seconds REAL,
        error TEXT,
        PRIMARY KEY (run_id, job)
    );
    CREATE TABLE contents (digest BLOB PRIMARY KEY, data TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE rows (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        suite TEXT NOT NULL,
        idx INTEGER NOT NULL,
        variant TEXT NOT NULL,
        row_no INTEGER,
        rep INTEGER,
        failed INTEGER NOT NULL,
        content BLOB NOT NULL REFERENCES contents(digest),
        scores BLOB NOT NULL,
        varying TEXT NOT NULL,
        PRIMARY KEY (run_id, suite, idx)
    ) WITHOUT ROWID;
    CREATE INDEX rows_by_key ON rows (run_id, suite, variant, row_no, rep);
    """,
)

VARYING = ("metrics", "seconds")  # row fields that differ run to run with the same output
FLUSH_SECONDS = 1.0  # job timings are written at most this often (and at the end)


def history_path(root: str | Path) -> Path:
    return Path(root) / ".llmspec" / HISTORY_NAME


def connect(root: str | Path, *, create: bool = True, readonly: bool = False) -> Any:
    """The project's history database, migrated to `SCHEMA_VERSION`; None when there is none
    and `create` is false. `readonly` opens it read-only (a database that still needs a
    migration is then opened once for writing to migrate it)."""
    path = history_path(root)
    if not path.exists() and (readonly or not create):
        return None
    try:
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = _open(path, readonly)
        version = _version(conn)
        if version < SCHEMA_VERSION:
            if readonly:
                conn.close()
                writer = _open(path, False)
                try:
                    _migrate(writer, path)
                finally:
                    writer.close()
                conn = _open(path, True)
            else:
                _migrate(conn, path, version)
        elif version > SCHEMA_VERSION:
            conn.close()
            raise LlmspecError.one(
                "E121",
                f"the run history was written by a newer llmspec (schema version {version}; "
                f"this one reads {SCHEMA_VERSION})",
                Loc(str(path)),
                "upgrade llmspec to read it",
            )
        return conn
    except sqlite3.DatabaseError as e:
        raise LlmspecError.one(
            "E121",
            f"the run history cannot be read: {e}",
            Loc(str(path)),
            f"move {path.name} away: the next apply starts a new history",
        ) from None


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10, check_same_thread=False
        )
    else:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.row_factory = sqlite3.Row
    return conn


def _version(conn: sqlite3.Connection) -> int:
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def _migrate(conn: sqlite3.Connection, path: Path, version: int | None = None) -> None:
    """Apply the migrations a database lacks, each in one transaction with its version bump."""
    version = _version(conn) if version is None else version
    with conn:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if _version(conn) >= target:  # another process migrated it meanwhile
                conn.execute("ROLLBACK")
                continue
            for statement in MIGRATIONS[target - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(target),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def git_state(root: str | Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git work tree holding `root`, or (None, None) outside one."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "--verify", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return commit.strip(), (bool(status.strip()) if status is not None else None)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Recorder:
    """One apply in the history. Every method swallows the history's own failures (reported
    once through `warn`): a broken history never breaks an apply."""

    def __init__(
        self, conn: sqlite3.Connection | None, run_id: int | None, warn: Callable[[str], None]
    ):
        self.conn, self.id, self.warn = conn, run_id, warn
        self.started = time.monotonic()
        self._jobs: list[tuple[Any, ...]] = []
        self._flushed = time.monotonic()

    @classmethod
    def start(
        cls,
        root: str | Path,
        *,
        project: str,
        plan: dict[str, Any] | None,
        runner: str,
        spec_files: dict[str, str],
        warn: Callable[[str], None],
    ) -> Recorder:
        """Record a run as `running`. Call under the project's run lock: a run left `running`
        by a killed apply is marked `interrupted` here."""
        from llmspec import __version__

        try:
            conn = connect(root)
            commit, dirty = git_state(root)
            with conn:
                conn.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
                cur = conn.execute(
                    "INSERT INTO runs (project, status, started, git_commit, git_dirty, host, pid,"
                    " runner, llmspec_version, plan, spec) VALUES (?, 'running', ?, ?, ?, ?, ?, ?,"
                    " ?, ?, ?)",
                    (
                        project,
                        now(),
                        commit,
                        None if dirty is None else int(dirty),
                        socket.gethostname(),
                        os.getpid(),
                        runner,
                        __version__,
                        json.dumps(plan) if plan is not None else None,
                        json.dumps(spec_files, sort_keys=True),
                    ),
                )
            return cls(conn, cur.lastrowid, warn)
        except (LlmspecError, sqlite3.Error, OSError) as e:
            cls._warn_once(warn, e)
            return cls(None, None, warn)

    @staticmethod
    def _warn_once(warn: Callable[[str], None], e: BaseException) -> None:
        why = e.diagnostics[0].message if isinstance(e, LlmspecError) else str(e)
        warn(f"warning: this run is not recorded in the history: {why}")

    def _guard(self, fn: Callable[[], None]) -> None:
        if self.conn is None:
            return
        try:
            fn()
        except (sqlite3.Error, OSError, ValueError, TypeError) as e:
            self._warn_once(self.warn, e)
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None

    def job(
        self, job_id: str, kind: str, status: str, seconds: float | None, error: str | None = None
    ) -> None:
        """A job's outcome; written in batches (at most every FLUSH_SECONDS) and at the end."""
        self._jobs.append((self.id, job_id, kind, status, seconds, error))
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self._guard(self._flush)

    def listen(self, graph: Any, inner: Callable[[str, str, Any], None]) -> Callable:
        """An `apply_plan` event callback that records each job's outcome, then calls `inner`."""

        def on_event(kind: str, job_id: str, outcome: Any) -> None:
            if kind != "start":
                job = graph.jobs.get(job_id)
                self.job(
                    job_id,
                    job.kind if job is not None else "?",
                    kind,
                    outcome.seconds if outcome is not None else None,
                    outcome.error if outcome is not None else None,
                )
            inner(kind, job_id, outcome)

        return on_event

    def finish_apply(self, report: Any, results: Any, failing: list[str], root: Path) -> None:
        """Complete the run from an `ApplyReport` and its `Results`."""

        status = (
            "interrupted"
            if report.interrupted
            else "failed"
            if not report.ok
            else "gates-failed"
            if failing
            else "done"
        )
        summary = {
            "ran": len(report.done),
            "reused": len(report.reused),
            "failed": dict(report.failed),
            "skipped": dict(report.skipped),
            "blocked": dict(report.blocked),
            "gates_failed": sorted(failing),
            "lock_written": report.lock_written,
        }
        log = getattr(report, "log_path", None)
        self.finish(
            status,
            lock_text=_lock_on_disk(root),  # the lock as this run left it (a smoke run: as it was)
            summary=summary,
            results=results.model_dump(mode="json") if results is not None else None,
            run_log=None if not log else _relative(Path(log), root),
        )

    def _flush(self) -> None:
        assert self.conn is not None
        if self._jobs:
            with self.conn:
                self.conn.executemany(
                    "INSERT OR REPLACE INTO jobs (run_id, job, kind, status, seconds, error)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    self._jobs,
                )
            self._jobs = []
        self._flushed = time.monotonic()

    def finish(
        self,
        status: str,
        *,
        lock_text: str | None,
        summary: dict[str, Any] | None = None,
        results: dict[str, Any] | None = None,
        run_log: str | None = None,
    ) -> None:
        """Complete the run: its status, the lock it produced, timings and results."""

        def write() -> None:
            assert self.conn is not None
            self._flush()
            doc, rows = split_results(results) if results is not None else (None, [])
            with self.conn:
                self.conn.execute(
                    "UPDATE runs SET status = ?, finished = ?, seconds = ?, summary = ?,"
                    " lock_digest = ?, lock = ?, results_version = ?, results = ?, run_log = ?"
                    " WHERE id = ?",
                    (
                        status,
                        now(),
                        round(time.monotonic() - self.started, 4),
                        json.dumps(summary) if summary is not None else None,
                        lock_digest_of(lock_text),
                        lock_text,
                        doc.get("results_version") if doc else None,
                        json.dumps(doc) if doc is not None else None,
                        run_log,
                        self.id,
                    ),
                )
                insert_rows(self.conn, self.id, rows)
            self.conn.close()
            self.conn = None

        self._guard(write)


def spec_snapshot(files: Any, root: Path) -> dict[str, str]:
    """The spec files' texts by their path inside the project, whatever the working folder."""
    base = Path(root).resolve()
    out = {}
    for f in files:
        p = Path(f.path)
        try:
            name = p.resolve().relative_to(base).as_posix()
        except (ValueError, OSError):
            name = p.as_posix()
        out[name] = f.text
    return out


def lock_digest_of(text: str | None) -> str | None:
    from llmspec.hashing import file_digest

    return file_digest(text.encode()) if text is not None else None


def split_results(results: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, dict]]]:
    """The results document without its rows, and the rows as (suite, row) pairs; every other
    field stays in the document as it is, whatever the results version."""
    doc = dict(results)
    doc["suites"] = []
    rows: list[tuple[str, dict]] = []
    for suite in results.get("suites") or []:
        doc["suites"].append({k: v for k, v in suite.items() if k != "rows"})
        rows += [(suite.get("name", "?"), r) for r in suite.get("rows") or []]
    return doc, rows


# the same text for the same value (sorted keys); results are JSON already, so no fallbacks
_canonical = functools.partial(json.dumps, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False)  # fmt: skip


def row_digest(text: str) -> bytes:
    """128 bits of sha256: enough to tell rows apart within one history, in 16 bytes."""
    return hashlib.sha256(text.encode()).digest()[:16]


def insert_rows(conn: sqlite3.Connection, run_id: int | None, rows: list[tuple[str, dict]]) -> None:
    from llmspec.metrics import METRICS

    def stable(metrics: dict[str, Any]) -> dict[str, Any]:
        # metrics that vary from run to run with the same output (latency) are not a change
        return {k: v for k, v in metrics.items() if k not in METRICS or METRICS[k].deterministic}

    contents: dict[bytes, str] = {}
    out = []
    idx: dict[str, int] = {}
    for suite, row in rows:
        content = {k: v for k, v in row.items() if k not in VARYING}
        varying = {k: row[k] for k in VARYING if k in row}
        text = _canonical(content)
        d = row_digest(text)
        contents[d] = text
        i = idx[suite] = idx.get(suite, -1) + 1
        failed = bool(row.get("error")) or row.get("valid") is False or bool(row.get("violation"))
        out.append(
            (
                run_id,
                suite,
                i,
                str(row.get("variant", "")),
                row.get("row"),
                row.get("repeat"),
                int(failed),
                d,
                row_digest(_canonical(stable(row.get("metrics") or {}))),
                _canonical(varying),
            )
        )
    conn.executemany(
        "INSERT OR IGNORE INTO contents (digest, data) VALUES (?, ?)", list(contents.items())
    )
    conn.executemany(
        "INSERT INTO rows (run_id, suite, idx, variant, row_no, rep, failed, content, scores,"
        " varying) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        out,
    )


@contextlib.contextmanager
def recording(root: str | Path, **start: Any) -> Iterator[Recorder]:
    """`Recorder.start(root, **start)`; a run that ends by an exception is completed as
    `interrupted` (Ctrl-C) or `failed`, with the lock found on disk."""
    rec = Recorder.start(root, **start)
    try:
        yield rec
    except BaseException as e:
        if rec.conn is not None:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            rec.finish(
                status, lock_text=_lock_on_disk(root), summary={"error": f"{type(e).__name__}: {e}"}
            )
        raise


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _lock_on_disk(root: str | Path) -> str | None:
    from llmspec.lock import lock_path

    try:
        return lock_path(Path(root)).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
