"""The run history: schema versions and migrations, recording (also interrupted runs), reading
back every field as it was stored, pages and filters of rows, comparisons of two runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.errors import LlmspecError
from llmspec.hub import compare, history, queries
from llmspec.stats import paired_difference
from tests.hubdata import fake_results, record_fake_runs


def test_a_new_history_has_the_current_schema_version(tmp_path: Path) -> None:
    conn = history.connect(tmp_path)
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(version) == history.SCHEMA_VERSION == len(history.MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"meta", "runs", "jobs", "rows", "contents"} <= tables
    assert history.connect(tmp_path / "elsewhere", create=False) is None


def test_an_older_history_is_migrated_and_keeps_its_runs(tmp_path: Path, monkeypatch) -> None:
    [run] = record_fake_runs(tmp_path, 1, rows=3)
    step = "ALTER TABLE runs ADD COLUMN note TEXT; UPDATE runs SET note = 'migrated'"
    monkeypatch.setattr(history, "MIGRATIONS", (*history.MIGRATIONS, step))
    monkeypatch.setattr(history, "SCHEMA_VERSION", history.SCHEMA_VERSION + 1)
    conn = history.connect(tmp_path, readonly=True)  # the hub migrates once, then reads
    assert conn.execute("SELECT note FROM runs WHERE id = ?", (run,)).fetchone()[0] == "migrated"
    assert queries.run_results(conn, run)["suites"][0]["rows"][2]["row"] == 2
    meta = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert int(meta) == history.SCHEMA_VERSION


def test_a_newer_or_damaged_history_is_refused_not_rewritten(tmp_path: Path) -> None:
    history.connect(tmp_path).close()
    path = history.history_path(tmp_path)
    with sqlite3.connect(path) as c:
        c.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(LlmspecError) as e:
        history.connect(tmp_path)
    assert e.value.diagnostics[0].code == "E121" and "newer llmspec" in str(e.value)
    other = tmp_path / "damaged"
    history.history_path(other).parent.mkdir(parents=True)
    history.history_path(other).write_bytes(b"not a database at all" * 100)
    with pytest.raises(LlmspecError) as e:
        history.connect(other)
    assert e.value.diagnostics[0].code == "E121"
    assert history.history_path(other).read_bytes().startswith(b"not a database")


def test_a_history_that_cannot_be_written_warns_and_the_run_goes_on(tmp_path: Path) -> None:
    history.history_path(tmp_path).mkdir(parents=True)  # a folder where the database goes
    said: list[str] = []
    rec = history.Recorder.start(
        tmp_path, project="p", plan=None, runner="inline", spec_files={}, warn=said.append
    )
    rec.job("a", "generate", "done", 1.0)
    rec.finish("done", lock_text=None)
    assert len(said) == 1 and said[0].startswith("warning: this run is not recorded")


def test_the_results_document_comes_back_as_it_was_stored(tmp_path: Path) -> None:
    doc = fake_results(0, rows=5)
    doc["suites"][0]["ab"] = {"base - alt": {"mean": 0.1}}  # fields a later version adds
    doc["suites"][0]["rows"][1]["judge_reasons"] = {"faithfulness": "cites the refund page"}
    rec = history.Recorder.start(
        tmp_path,
        project="support-bot",
        plan=None,
        runner="inline",
        spec_files={"a.yaml": "x"},
        warn=print,
    )
    rec.finish("done", lock_text=None, results=doc)
    conn = history.connect(tmp_path, readonly=True)
    assert queries.run_results(conn, rec.id) == doc
    run = queries.get_run(conn, rec.id)
    assert "rows" not in run["results"]["suites"][0] and run["results"]["suites"][0]["ab"]
    assert run["row_counts"] == {
        "quality": {"base": {"rows": 5, "failed": run["row_counts"]["quality"]["base"]["failed"]}}
    }


def test_rows_come_a_page_at_a_time_filtered_to_failed_or_changed(tmp_path: Path) -> None:
    a, b = record_fake_runs(tmp_path, 2, rows=120, change=0.25)
    conn = history.connect(tmp_path, readonly=True)
    docs = {r: queries.run_results(conn, r)["suites"][0]["rows"] for r in (a, b)}
    first = queries.rows_page(conn, b, "quality", size=50)
    last = queries.rows_page(conn, b, "quality", size=50, page=3)
    assert (first["total"], first["pages"], len(first["rows"]), len(last["rows"])) == (
        120,
        3,
        50,
        20,
    )
    assert [r["row"] for r in last["rows"]] == list(range(100, 120))
    assert first["base"] == a  # `changed` compares with the previous run by default

    failed = queries.rows_page(conn, b, "quality", filter="failed", size=500)
    assert {r["row"] for r in failed["rows"]} == {
        r["row"] for r in docs[b] if r["error"] or r["valid"] is False
    } and failed["total"] > 0

    changed = queries.rows_page(conn, b, "quality", filter="changed", size=500, with_base=True)
    expected = {
        x["row"]
        for x, y in zip(docs[a], docs[b], strict=True)
        if x["output"] != y["output"]
        or {k: v for k, v in x["metrics"].items() if k != "latency"}
        != {k: v for k, v in y["metrics"].items() if k != "latency"}
    }
    assert expected and {r["row"] for r in changed["rows"]} == expected  # latency aside
    one = changed["rows"][0]
    assert one["base_row"] == next(r for r in docs[a] if r["row"] == one["row"])
    with pytest.raises(ValueError):
        queries.rows_page(conn, b, "quality", filter="nonsense")
    with pytest.raises(LlmspecError) as e:
        queries.rows_page(conn, 999, "quality")
    assert e.value.diagnostics[0].code == "E120"


def test_compare_pairs_rows_and_diffs_the_spec_and_the_lock(tmp_path: Path) -> None:
    a, b = record_fake_runs(tmp_path, 2, rows=60, change=0.5, shift=0.3)
    conn = history.connect(tmp_path, readonly=True)
    out = compare.compare_runs(conn, a, b)
    assert (out["a"]["id"], out["b"]["id"]) == (a, b)
    [suite] = out["suites"]
    rouge = next(m for m in suite["variants"][0]["metrics"] if m["metric"] == "rouge_l")
    ra, rb = (queries.run_results(conn, r)["suites"][0]["rows"] for r in (a, b))
    expected = paired_difference(
        [r["metrics"]["rouge_l"] for r in rb], [r["metrics"]["rouge_l"] for r in ra]
    )
    assert rouge["paired"] == expected and rouge["paired"]["mean"] > 0
    assert rouge["delta"] == pytest.approx(rouge["b"]["mean"] - rouge["a"]["mean"], abs=1e-6)
    assert (
        suite["changed_rows"]
        == queries.rows_page(conn, b, "quality", filter="changed", base=a)["total"]
        > 0
    )
    [spec] = out["spec"]
    assert spec["file"] == "prompts.yaml" and "+    system: v1" in spec["diff"]
    titles = {s["title"]: s["lines"] for s in out["lock"]["sections"]}
    assert any("qa: system" in line for line in titles["Prompts"])
    same = compare.compare_runs(conn, b, b)
    assert same["spec"] == [] and same["lock"]["note"] == "both runs produced the same lock"


def test_a_run_left_running_is_marked_interrupted_by_the_next(tmp_path: Path) -> None:
    first = history.Recorder.start(
        tmp_path, project="p", plan=None, runner="inline", spec_files={}, warn=print
    )
    first.conn.close()  # killed: it never finishes
    second = history.Recorder.start(
        tmp_path, project="p", plan=None, runner="inline", spec_files={}, warn=print
    )
    second.finish("done", lock_text=None)
    statuses = [r["status"] for r in queries.list_runs(history.connect(tmp_path))]
    assert statuses == ["interrupted", "done"]


def test_ctrl_c_outside_the_runner_completes_the_run_as_interrupted(tmp_path: Path) -> None:
    (tmp_path / "llmspec.lock").write_text('{"lock_version": 2, "project": "p"}\n')
    with pytest.raises(KeyboardInterrupt):
        with history.recording(
            tmp_path, project="p", plan=None, runner="inline", spec_files={}, warn=print
        ) as rec:
            rec.job("generate.a", "generate", "done", 0.5)
            raise KeyboardInterrupt
    conn = history.connect(tmp_path)
    [run] = queries.list_runs(conn)
    assert run["status"] == "interrupted" and run["lock_digest"].startswith("sha256:")
    assert queries.get_run(conn, run["id"])["jobs"][0]["job"] == "generate.a"


def test_git_commit_and_dirty_state(tmp_path: Path) -> None:
    assert history.git_state(tmp_path) == (None, None)
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.yaml").write_text("a: 1\n")
    git("add", "a.yaml")
    git("commit", "-qm", "one")
    assert history.git_state(tmp_path) == (git("rev-parse", "HEAD"), False)
    (tmp_path / "a.yaml").write_text("a: 2\n")
    assert history.git_state(tmp_path)[1] is True


def test_runs_and_report_run_on_the_command_line(tmp_path: Path) -> None:
    cli = CliRunner()
    empty = cli.invoke(main, ["runs", str(tmp_path)])
    assert empty.exit_code == 0 and "No runs recorded yet" in empty.stdout
    missing = cli.invoke(main, ["report", str(tmp_path), "--run", "1"])
    assert missing.exit_code == 1 and "error[E120]" in missing.stderr

    a, b = record_fake_runs(tmp_path, 2, rows=4)
    table = cli.invoke(main, ["runs", str(tmp_path)])
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "started", "(UTC)"] and len(lines) == 3
    assert "quality" in lines[1] and " done " in lines[2]
    listed = json.loads(cli.invoke(main, ["runs", str(tmp_path), "--format", "json"]).stdout)
    assert [r["id"] for r in listed] == [a, b] and listed[0]["suites"][0]["name"] == "quality"

    md = cli.invoke(main, ["report", str(tmp_path), "--run", str(a), "--format", "markdown"])
    assert md.exit_code == 0, md.output
    assert md.stdout.startswith("### llmspec results: `support-bot`") and "`quality`" in md.stdout
    js = json.loads(
        cli.invoke(main, ["report", str(tmp_path), "--run", str(b), "--format", "json"]).stdout
    )
    assert len(js["suites"][0]["rows"]) == 4

    conn = history.connect(tmp_path)
    with conn:
        conn.execute(
            "UPDATE runs SET results = ? WHERE id = ?",
            (json.dumps({"results_version": 9, "project": "p"}), a),
        )
    newer = cli.invoke(main, ["report", str(tmp_path), "--run", str(a)])
    assert newer.exit_code == 1 and "error[E122]" in newer.stderr and "version 9" in newer.stderr
