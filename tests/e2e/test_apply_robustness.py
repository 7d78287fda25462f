"""`llmspec apply` under stress: re-runs, SIGKILL, determinism, saved plans, the run lock,
failing jobs and `plan --locked`.

Everything runs on the echo provider with fast metrics, so the file stays well under a minute.
Process boundaries that matter (a kill, a lock held by another process, PYTHONHASHSEED) go
through the real CLI in subprocesses; the rest through click's CliRunner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from llmspec.cli import main
from llmspec.lock import parse_lock
from llmspec.store import Store
from tests.conftest import REPO

os.environ["HF_HUB_OFFLINE"] = "1"

SPEC = """\
version: 1
name: echo-demo
models:
  preview: {{provider: echo}}
prompts:
  qa: {{system: Be brief., template: "{template}"}}
datasets:
  golden: {{path: golden.jsonl, shard_rows: {shard_rows}}}
suites:
  quality:
    prompt: qa
    models: [preview]
    dataset: golden
    metrics: [contains, exact_match]
    gates: ["contains >= 0.5"]
deployments:
  prod:
    {{model: preview, prompt: qa, requires: [quality], target: {{kind: export, path: {target}}}}}
"""
TEMPLATE = "Q: {{ question }}"
TMP_FILE = re.compile(r"^\..*\.tmp$")


def write_project(
    root: Path,
    rows: int,
    *,
    shard_rows: int = 1,
    template: str = TEMPLATE,
    target: str = "build/prod.json",
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    spec = SPEC.format(template=template, shard_rows=shard_rows, target=target)
    (root / "llmspec.yaml").write_text(spec, encoding="utf-8")
    write_rows(root, rows)
    return root


def write_rows(root: Path, rows: int) -> None:
    lines = [json.dumps({"question": f"q{i}", "expected": f"q{i}"}) for i in range(rows)]
    (root / "golden.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def invoke(*args: str) -> Result:
    """The CLI in this process (stdout and stderr kept apart)."""
    return CliRunner().invoke(main, list(args))


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", LLMSPEC_RUNNER="inline", PYTHONPATH=str(REPO))
    env.pop("LLMSPEC_DEBUG", None)
    return env | extra


def cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The real CLI in a fresh interpreter, run from inside the project folder."""
    return subprocess.run(
        [sys.executable, "-m", "llmspec.cli", *args],
        cwd=root,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def lock_bytes(root: Path) -> bytes | None:
    try:
        return (root / "llmspec.lock").read_bytes()
    except FileNotFoundError:
        return None


def run_logs(root: Path) -> set[Path]:
    return set((root / ".llmspec" / "runs").glob("*.jsonl"))


def events(logs: set[Path]) -> list[dict]:
    out = []
    for path in sorted(logs):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
    return out


def stored(root: Path) -> dict[str, str]:
    """Key -> job of every readable store entry."""
    return {s.key: s.job for s in Store(root).records()}


def temp_files(root: Path) -> list[Path]:
    """Temp files of atomic writes: in the project folder (beside llmspec.lock) and below."""
    return sorted(p for p in root.rglob("*") if p.is_file() and TMP_FILE.match(p.name))


def summary_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("Apply:"))


# -- 1. terraform acceptance ------------------------------------------------------------------


def test_apply_then_plan_is_empty_and_second_apply_runs_nothing(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", rows=6, shard_rows=2)
    first = invoke("apply", str(root))
    assert first.exit_code == 0, first.output
    # 3 shards: 3 generate, 3 score, then summary, gate, deploy
    assert summary_line(first.stdout).startswith("Apply: 9 ran")
    lock = lock_bytes(root)
    assert lock is not None
    parse_lock(lock.decode(), "llmspec.lock")

    plan = invoke("plan", str(root), "--detailed-exitcode")
    assert plan.exit_code == 0, plan.output
    assert "No changes" in plan.stdout

    starts = [e for e in events(run_logs(root)) if e.get("event") == "start"]
    second = invoke("apply", str(root))
    assert second.exit_code == 0, second.output
    assert "0 ran" in summary_line(second.stdout)
    assert "llmspec.lock unchanged" in second.stdout
    assert lock_bytes(root) == lock
    # (in one process, two applies within a second share a run log: count events, not files)
    assert [e for e in events(run_logs(root)) if e.get("event") == "start"] == starts


# -- 2. SIGKILL mid-run -----------------------------------------------------------------------

BASE_ROWS = 60  # applied before the killed run: the lock that must survive a kill
ROWS = 300  # 1-row shards: 300 generate jobs; the echo provider does a job in about a ms

# A SIGKILL from inside the apply at an exact moment: right after the n-th store write (the
# result is on disk, the run log does not know yet), or while the new lock is written (its
# temp file is complete, the rename has not happened).
KILL_HOOK = """
import os, signal, sys
from pathlib import Path
from llmspec import store

moment, n = sys.argv[1], int(sys.argv[2])
puts = 0
if moment == "after-store-write":
    _put = store.Store.put
    def put(self, *a, **k):
        global puts
        out = _put(self, *a, **k)
        puts += 1
        if puts == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return out
    store.Store.put = put
elif moment == "in-lock-write":
    _replace = os.replace
    def replace(src, dst, *a, **k):
        if Path(dst).name == "llmspec.lock":
            os.kill(os.getpid(), signal.SIGKILL)
        return _replace(src, dst, *a, **k)
    os.replace = replace
from llmspec.cli import main
sys.argv = ["llmspec", "apply", "-q", "."]
main()
"""


def kill_when(
    proc: subprocess.Popen,
    root: Path,
    old_logs: set[Path],
    done: int | str,
    sig: int = signal.SIGKILL,
) -> None:
    """Signal `proc` from outside once its run log shows `done` finished jobs (a number) or
    that job id finished (a string)."""
    deadline = time.monotonic() + 60
    log: Path | None = None
    seen = 0
    buf = ""
    fh = None
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if fh is None:
                new = run_logs(root) - old_logs
                if new:
                    log = new.pop()
                    fh = log.open(encoding="utf-8")
            if fh is not None:
                buf += fh.read()
                *lines, buf = buf.split("\n")
                for line in lines:
                    e = json.loads(line)
                    if e.get("event") != "done":
                        continue
                    seen += 1
                    if seen == done or e["job"] == done:
                        proc.send_signal(sig)
                        return
            time.sleep(0.0002)
    finally:
        if fh is not None:
            fh.close()


@pytest.fixture(scope="module")
def reference_lock(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The lock of an uninterrupted apply of the same project, in another folder."""
    root = write_project(tmp_path_factory.mktemp("reference") / "project", rows=ROWS)
    r = invoke("apply", "-q", str(root))
    assert r.exit_code == 0, r.output
    data = lock_bytes(root)
    assert data is not None
    return data


@pytest.mark.parametrize(
    ("moment", "how", "at"),
    [
        ("early", "outside", 25),
        ("after-store-write", "inside", 120),
        ("after-last-job", "outside", "deploy.prod"),
        ("in-lock-write", "inside", 0),
    ],
)
def test_sigkill_mid_apply_then_resume(
    tmp_path: Path, reference_lock: bytes, moment: str, how: str, at: int | str
) -> None:
    root = write_project(tmp_path / "p", rows=BASE_ROWS)
    base = invoke("apply", "-q", str(root))
    assert base.exit_code == 0, base.output
    previous = lock_bytes(root)
    write_rows(root, ROWS)
    logs_before = run_logs(root)

    if how == "inside":
        argv = [sys.executable, "-c", KILL_HOOK, moment, str(at)]
    else:
        argv = [sys.executable, "-m", "llmspec.cli", "apply", "-q", "."]
    proc = subprocess.Popen(
        argv,
        cwd=root,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if how == "outside":
        kill_when(proc, root, logs_before, at)
    out, err = proc.communicate(timeout=60)
    killed = proc.returncode == -signal.SIGKILL
    if moment != "after-last-job":  # that one may lose the race to a finished apply: still valid
        assert killed, f"the apply was not killed (rc {proc.returncode}): {out}{err}"
    killed_logs = run_logs(root) - logs_before
    store_dir = root / ".llmspec" / "store"
    stored_at_kill = stored(root)

    # The lock is the previous one or a complete, valid new one: never a partial file.
    now = lock_bytes(root)
    assert now is not None
    if now != previous:
        parse_lock(now.decode(), "llmspec.lock")
        assert not killed or moment == "after-last-job", "a killed apply wrote a new lock"
    if moment == "in-lock-write":
        assert now == previous
    # Nothing is ever left beside the lock: the lock's temp file lives in the gitignored
    # .llmspec/tmp/. Killed at the rename, that temp file holds a complete lock.
    assert [p.name for p in temp_files(root) if p.parent == root] == []
    lock_tmp = [p for p in temp_files(root) if p.parent == root / ".llmspec" / "tmp"]
    if moment == "in-lock-write":
        assert len(lock_tmp) == 1
        parse_lock(lock_tmp[0].read_text(encoding="utf-8"), lock_tmp[0].name)

    resumed = cli(root, "apply")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    if killed:
        assert "did not finish; resuming" in resumed.stderr
    resumed_logs = run_logs(root) - logs_before - killed_logs
    assert len(resumed_logs) == 1

    # No job finished twice across the killed run and the resume.
    done = [e["job"] for e in events(killed_logs | resumed_logs) if e.get("event") == "done"]
    twice = sorted({j for j in done if done.count(j) > 1})
    assert not twice, f"jobs ran to completion twice: {twice[:5]}"
    # The resume ran exactly the jobs whose results the killed run had not stored yet.
    rerun = sorted(e["job"] for e in events(resumed_logs) if e.get("event") == "done")
    new = set(stored(root)) - set(stored_at_kill)
    assert rerun == sorted(stored(root)[k] for k in new)
    if moment == "after-store-write":
        # the base apply's results (a generate and a score job per row, then summary, gate,
        # deploy) and the `at` results the killed run stored
        assert len(stored_at_kill) == 2 * BASE_ROWS + 3 + at

    assert lock_bytes(root) == reference_lock
    left = [p for p in temp_files(root) if store_dir not in p.parents]
    assert not left, f"temp files left after the resume: {left}"
    # A kill in the middle of a store write may leave that record cut short in the pack: it is
    # never taken for a result (every key the store lists reads back).
    assert Store(root).keys() == set(stored(root))
    plan = cli(root, "plan", "--detailed-exitcode")
    assert plan.returncode == 0 and "No changes" in plan.stdout, plan.stdout + plan.stderr


def test_ctrl_c_writes_the_lock_for_finished_jobs_then_resumes(
    tmp_path: Path, reference_lock: bytes
) -> None:
    """SIGINT (Ctrl-C) is not SIGKILL: apply stops, and the lock records the finished jobs."""
    root = write_project(tmp_path / "p", rows=ROWS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmspec.cli", "apply", "-q", "."],
        cwd=root,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill_when(proc, root, set(), 30, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Interrupted" in out
    first_logs = run_logs(root)
    finished = {e["job"] for e in events(first_logs) if e.get("event") == "done"}
    assert 30 <= len(finished) < ROWS
    lock = parse_lock((root / "llmspec.lock").read_text(encoding="utf-8"), "llmspec.lock")
    assert finished <= set(lock.jobs)
    # As with SIGKILL, a store write may leave its temp file (Ctrl-C landing inside
    # tempfile.mkstemp, before write_atomic's clean-up can know the name); nothing else.
    store_dir = root / ".llmspec" / "store"
    assert not [p for p in temp_files(root) if store_dir not in p.parents]

    r = cli(root, "apply", "-q")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "previous apply" not in r.stderr  # Ctrl-C released the run lock cleanly
    rerun = {e["job"] for e in events(run_logs(root) - first_logs) if e.get("event") == "done"}
    assert not rerun & set(lock.jobs)
    assert lock_bytes(root) == reference_lock


@pytest.mark.parametrize("then", ["apply", "change-metrics-then-apply"])
def test_damaged_store_entry_runs_again(tmp_path: Path, then: str) -> None:
    """Store entries are not fsynced: after a power cut a record may be zeros, whole or in
    part. The store treats such an entry as missing, so the next apply must run its job again
    (and a job that depends on it must not fail for want of it)."""
    root = write_project(tmp_path / "p", rows=6, shard_rows=2)
    r = invoke("apply", "-q", str(root))
    assert r.exit_code == 0, r.output
    lock = lock_bytes(root)
    folder = root / ".llmspec" / "store"
    spans = {}
    for line in (folder / "records.idx").read_text().splitlines():
        h, offset, length, _crc = line.split(" ")
        spans[stored(root)[f"sha256:{h}"]] = (int(offset), int(length))
    with (folder / "records.pack").open("r+b") as fh:
        offset, length = spans["generate.quality.preview.0"]
        fh.seek(offset)
        fh.write(b"\0" * length)
        offset, length = spans["generate.quality.preview.2"]
        fh.seek(offset + 40)
        fh.write(b"\0" * (length - 40))

    if then == "change-metrics-then-apply":
        spec = (root / "llmspec.yaml").read_text(encoding="utf-8")
        spec = spec.replace("metrics: [contains, exact_match]", "metrics: [contains]")
        (root / "llmspec.yaml").write_text(spec, encoding="utf-8")
    r = invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    assert "generate.quality.preview.0: ok" in r.stdout
    assert "generate.quality.preview.2: ok" in r.stdout
    assert "generate.quality.preview.1: ok" not in r.stdout
    if then == "apply":
        assert summary_line(r.stdout).startswith("Apply: 2 ran")
        assert lock_bytes(root) == lock
    store = Store(root)
    assert all(store.get(k) is not None for k in store.keys())
    assert {"generate.quality.preview.0", "generate.quality.preview.2"} <= set(
        stored(root).values()
    )
    r = invoke("plan", str(root), "--detailed-exitcode")
    assert r.exit_code == 0, r.output


# -- 3. lock determinism ----------------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\d{8}T\d{6}")


def _check_sorted(node: object, where: str = "$") -> None:
    if isinstance(node, list):
        for i, x in enumerate(node):
            _check_sorted(x, f"{where}[{i}]")
    elif isinstance(node, dict):
        keys = list(node)
        assert keys == sorted(keys), f"keys not sorted at {where}: {keys}"
        for k, v in node.items():
            _check_sorted(v, f"{where}.{k}")


def test_lock_is_byte_identical_across_folders_and_hash_seeds(tmp_path: Path) -> None:
    a = write_project(tmp_path / "a", rows=7, shard_rows=2)
    b = write_project(tmp_path / "second" / "copy-b", rows=7, shard_rows=2)
    ra = cli(a, "apply", "-q", PYTHONHASHSEED="1")
    rb = cli(b, "apply", "-q", PYTHONHASHSEED="4242")
    assert ra.returncode == 0, ra.stdout + ra.stderr
    assert rb.returncode == 0, rb.stdout + rb.stderr
    la, lb = lock_bytes(a), lock_bytes(b)
    assert la is not None and la == lb

    text = la.decode()
    _check_sorted(json.loads(text))  # dicts keep the file's key order
    assert not TIMESTAMP.search(text), TIMESTAMP.search(text)
    assert str(tmp_path) not in text  # no machine-specific paths either
    assert text.endswith("\n")


# -- 4. saved plans ---------------------------------------------------------------------------


def _assert_refused(root: Path, plan_file: Path, why: str) -> None:
    lock, before, logs = lock_bytes(root), stored(root), events(run_logs(root))
    r = invoke("apply", str(root), "--plan", str(plan_file))
    assert r.exit_code == 1, r.output
    assert "saved plan is stale" in r.stderr and why in r.stderr, r.stderr
    assert lock_bytes(root) == lock
    assert stored(root) == before
    assert events(run_logs(root)) == logs  # refused before a run started


def test_saved_plan_applies_and_is_refused_once_stale(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", rows=4, shard_rows=2)
    plan_file = tmp_path / "plan.json"
    r = invoke("plan", str(root), "--out", str(plan_file))
    assert r.exit_code == 0, r.output
    r = invoke("apply", str(root), "--plan", str(plan_file))
    assert r.exit_code == 0, r.output
    assert summary_line(r.stdout).startswith("Apply: 7 ran")

    # The project moves after the plan: a template edit, then a new dataset row.
    r = invoke("plan", str(root), "--out", str(plan_file))
    assert r.exit_code == 0, r.output
    spec = (root / "llmspec.yaml").read_text(encoding="utf-8")
    (root / "llmspec.yaml").write_text(spec.replace("Q: ", "Question: "), encoding="utf-8")
    _assert_refused(root, plan_file, "the project changed")
    (root / "llmspec.yaml").write_text(spec, encoding="utf-8")

    with (root / "golden.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"question": "q-new", "expected": "q-new"}) + "\n")
    _assert_refused(root, plan_file, "the project changed")

    # A plan made now is fine, until another apply moves the lock under it.
    r = invoke("plan", str(root), "--out", str(plan_file))
    assert r.exit_code == 0, r.output
    r = invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    _assert_refused(root, plan_file, "llmspec.lock changed")


# -- 5. the run lock --------------------------------------------------------------------------

HOLDER = """
import sys, time
from llmspec.store import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_run_lock_refuses_a_second_apply_and_a_killed_holder_is_stale(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", rows=3, shard_rows=2)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root)],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        r = invoke("apply", str(root))
        elapsed = time.monotonic() - t0
        assert r.exit_code == 1, r.output
        assert "another apply is running" in r.stderr
        assert f"pid {holder.pid} on {socket.gethostname()}" in r.stderr
        assert elapsed < 5, f"refusal took {elapsed:.1f}s"
        assert lock_bytes(root) is None and not stored(root)
    finally:
        holder.kill()
        holder.wait(timeout=10)

    r = invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    assert f"a previous apply (pid {holder.pid} on" in r.stderr
    assert "did not finish" in r.stderr
    assert lock_bytes(root) is not None

    # A clean apply leaves no holder behind: the next one prints no note.
    r = invoke("apply", str(root))
    assert r.exit_code == 0 and "previous apply" not in r.stderr, r.output


# -- 6. a failing job does not lose the others ------------------------------------------------


def test_export_target_outside_the_project_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    root = write_project(tmp_path / "p", rows=4, shard_rows=2, target="../outside/prod.json")
    r = invoke("apply", str(root))
    assert r.exit_code == 1, r.output
    assert "error[E030]" in r.stderr and "outside the project" in r.stderr
    assert not (tmp_path / "outside").exists() and not (root / "llmspec.lock").exists()


def test_failed_job_keeps_finished_ones_and_next_apply_runs_only_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write_project(root, rows=4, shard_rows=2)
    (root / "build").write_text("a file where the export folder should be\n")

    r = invoke("apply", str(root))
    assert r.exit_code == 1, r.output
    assert "deploy.prod: FAILED" in r.stderr
    assert "Error" in r.stderr  # the OS error, named
    assert "error[E091]: job `deploy.prod` failed" in r.stderr  # located at the spec
    assert summary_line(r.stdout).startswith("Apply: 6 ran, 0 reused, 1 failed.")
    lock = parse_lock((root / "llmspec.lock").read_text(encoding="utf-8"), "llmspec.lock")
    assert sorted(lock.jobs) == [
        "gate.quality",
        "generate.quality.preview.0",
        "generate.quality.preview.1",
        "score.quality.preview.0",
        "score.quality.preview.1",
        "summary.quality.preview",
    ]
    assert lock.suites["quality"]["passed"]
    failed = [e for e in events(run_logs(root)) if e.get("event") == "failed"]
    assert [e["job"] for e in failed] == ["deploy.prod"] and failed[0]["error"]

    # plan shows only the failed job; fixing it runs only that job.
    r = invoke("plan", str(root))
    assert r.exit_code == 0, r.output
    assert "Plan: 1 to run" in r.stdout and "deploy.prod" in r.stdout
    (root / "build").unlink()
    r = invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    assert summary_line(r.stdout).startswith("Apply: 1 ran, 0 reused.")
    assert "deploy.prod: ok" in r.stdout
    lock = parse_lock((root / "llmspec.lock").read_text(encoding="utf-8"), "llmspec.lock")
    assert "deploy.prod" in lock.jobs
    assert json.loads((root / "build" / "prod.json").read_text())["deployment"] == "prod"


def test_dataset_edited_during_apply_fails_its_shard_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row edited after the plan was made: that shard fails (its rows no longer match the
    digest the key was made of), the other shard finishes and is kept."""
    import llmspec.apply

    root = write_project(tmp_path / "p", rows=4, shard_rows=2)
    real_apply_plan = llmspec.apply.apply_plan

    def edit_then_apply(*args, **kwargs):
        rows = (root / "golden.jsonl").read_text(encoding="utf-8").splitlines()
        rows[3] = json.dumps({"question": "edited", "expected": "edited"})
        (root / "golden.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
        return real_apply_plan(*args, **kwargs)

    monkeypatch.setattr(llmspec.apply, "apply_plan", edit_then_apply)
    r = invoke("apply", str(root))
    monkeypatch.undo()
    assert r.exit_code == 1, r.output
    assert "generate.quality.preview.1: FAILED" in r.stderr
    assert "changed since the plan was made" in r.stderr
    assert summary_line(r.stdout).startswith("Apply: 2 ran, 0 reused, 1 failed, 4 skipped.")
    lock = parse_lock((root / "llmspec.lock").read_text(encoding="utf-8"), "llmspec.lock")
    assert sorted(lock.jobs) == ["generate.quality.preview.0", "score.quality.preview.0"]

    r = invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    assert summary_line(r.stdout).startswith("Apply: 5 ran, 0 reused.")
    assert "generate.quality.preview.0" not in r.stdout  # kept from the failed apply
    lock = parse_lock((root / "llmspec.lock").read_text(encoding="utf-8"), "llmspec.lock")
    assert len(lock.jobs) == 7


# -- 7. plan --locked ---------------------------------------------------------------------------


def test_plan_locked_fails_until_applied(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", rows=3, shard_rows=2)
    r = invoke("plan", str(root), "--locked")
    assert r.exit_code == 1 and "out of date" in r.stderr, r.output
    assert invoke("apply", "-q", str(root)).exit_code == 0
    r = invoke("plan", str(root), "--locked")
    assert r.exit_code == 0, r.output

    spec = (root / "llmspec.yaml").read_text(encoding="utf-8")
    (root / "llmspec.yaml").write_text(spec.replace("Q: ", "Question: "), encoding="utf-8")
    r = invoke("plan", str(root), "--locked")
    assert r.exit_code == 1 and "out of date" in r.stderr, r.output
    assert invoke("apply", "-q", str(root)).exit_code == 0
    assert invoke("plan", str(root), "--locked").exit_code == 0

    # A store wiped on this machine is not a stale lock: the lock still matches the spec.
    shutil.rmtree(root / ".llmspec" / "store")
    r = invoke("plan", str(root), "--locked")
    assert r.exit_code == 0, r.output


# -- 7. what an apply that ran nothing leaves, and a first Ctrl-C ---------------------------


def test_a_shard_whose_every_row_fails_to_render_is_a_failed_job(tmp_path: Path) -> None:
    root = write_project(
        tmp_path / "p", rows=2, shard_rows=2, template="{{ question.__class__.__name__ }}"
    )
    r = invoke("validate", str(root))
    assert r.exit_code == 1 and "error[E043]" in r.stderr  # caught at validate already
    # past validate (a row value the sandbox refuses at render time): the job fails, loudly
    root = write_project(tmp_path / "q", rows=2, shard_rows=2, template="{{ question | attr(x) }}")
    rows = [{"question": "q", "expected": "e", "x": "__class__"}] * 2
    (root / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke("apply", str(root))
    assert r.exit_code == 1, r.output
    assert "every row of this shard failed to render (2)" in r.stderr


def test_an_apply_refused_before_anything_ran_leaves_the_lock_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    root = write_project(tmp_path / "p", rows=2, shard_rows=2)
    assert invoke("apply", str(root)).exit_code == 0
    before = lock_bytes(root)
    spec = (
        (root / "llmspec.yaml")
        .read_text()
        .replace("{provider: echo}", "{provider: echo, params: {seed: 8}}")
    )
    (root / "llmspec.yaml").write_text(spec)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    r = CliRunner().invoke(main, ["apply", str(root), "--runner", "local"])
    assert r.exit_code == 1 and "error[E073]" in r.stderr, r.output
    assert lock_bytes(root) == before  # no fact of a run that did not happen


SLOW_HOOK = """
import sys, time
from llmspec.providers.echo import EchoProvider
_generate = EchoProvider.generate
def slow(self, requests):
    time.sleep(1.0)
    return _generate(self, requests)
EchoProvider.generate = slow
from llmspec.cli import main
sys.argv = ["llmspec", "apply", "."]
main()
"""


def test_a_first_ctrl_c_lets_the_running_job_finish(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", rows=6, shard_rows=1)
    logs_before = run_logs(root)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_HOOK],
        cwd=root,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    started = None
    while time.monotonic() < deadline and started is None and proc.poll() is None:
        new = run_logs(root) - logs_before
        for e in events(new):
            if e.get("event") == "start":
                started = e["job"]
        time.sleep(0.05)
    assert started, "no job started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "letting the running jobs finish" in err
    log = events(run_logs(root) - logs_before)
    assert any(e.get("event") == "done" and e["job"] == started for e in log)  # it finished
    assert [e["job"] for e in log if e.get("event") == "start"] == [started]  # nothing new
    lock = parse_lock((root / "llmspec.lock").read_text(encoding="utf-8"), "llmspec.lock")
    assert started in lock.jobs
