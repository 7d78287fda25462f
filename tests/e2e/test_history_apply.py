"""Interrupted applies in the run history: Ctrl-C completes the run as `interrupted` with what
finished; a killed apply's run is marked `interrupted` by the next apply. Echo provider, real
processes (the helpers of test_apply_robustness)."""

from __future__ import annotations

import signal
import subprocess
import sys

from llmspec.hub import history, queries
from tests.e2e.test_apply_robustness import cli, kill_when, subprocess_env, write_project


def start_apply(root):
    return subprocess.Popen(
        [sys.executable, "-m", "llmspec.cli", "apply", "-q", "."],
        cwd=root, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_interrupted_and_killed_applies_are_recorded(tmp_path) -> None:
    root = write_project(tmp_path / "p", rows=300)
    proc = start_apply(root)
    kill_when(proc, root, set(), 20, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    conn = history.connect(root, readonly=True)
    [run] = queries.list_runs(conn)
    detail = queries.get_run(conn, run["id"])
    assert run["status"] == "interrupted" and run["summary"]["ran"] >= 20
    assert len([j for j in detail["jobs"] if j["status"] == "done"]) == run["summary"]["ran"]
    assert run["lock_digest"] is not None and detail["results"]["suites"][0]["name"] == "quality"
    conn.close()

    logs = set((root / ".llmspec" / "runs").glob("*.jsonl"))
    proc = start_apply(root)
    kill_when(proc, root, logs, 10, signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    conn = history.connect(root, readonly=True)
    assert [r["status"] for r in queries.list_runs(conn)] == ["interrupted", "running"]
    conn.close()

    done = cli(root, "apply", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    conn = history.connect(root, readonly=True)
    runs = queries.list_runs(conn)
    assert [r["status"] for r in runs] == ["interrupted", "interrupted", "done"]
    assert runs[2]["suites"] == [{"name": "quality", "status": "passed"}]
    assert queries.rows_page(conn, runs[2]["id"], "quality")["total"] == 300
