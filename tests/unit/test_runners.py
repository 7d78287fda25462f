"""Choosing a runner and how it runs: small plans inline, threads per replica, no Ray for a
plan with nothing to run, the generate job's own timings kept beside the job's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llmspec import jobs
from llmspec.cli import main
from llmspec.compile import Job
from llmspec.jobs import JobKind
from llmspec.runner import SMALL_PLAN_ROWS, small_plan, threads_for
from llmspec.runner.inline import InlineRunner
from llmspec.runner.profile import RunnerProfile
from tests.conftest import REPO

ECHO = """\
version: 1
name: echo-{rows}
models:
  echo: {{provider: echo, params: {{max_tokens: 8}}}}
prompts:
  p: {{template: "Q: {{{{ question }}}}"}}
datasets:
  rows: {{path: rows.jsonl, expected: answer, shard_rows: {shard}}}
suites:
  s: {{prompt: p, models: [echo], dataset: rows, metrics: [exact_match]}}
"""


def echo_project(root: Path, rows: int, shard: int = 256) -> Path:
    root.mkdir(parents=True)
    (root / "llmspec.yaml").write_text(ECHO.format(rows=rows, shard=shard))
    with (root / "rows.jsonl").open("w") as fh:
        for i in range(rows):
            fh.write(json.dumps({"question": f"q{i}", "answer": f"Q: q{i}"}) + "\n")
    return root


def _job(kind: str, pool: str = "driver", rows: int = 0, replicas: int = 1) -> Job:
    inputs = {"rows": {"range": [0, rows]}, "repeats": 1} if kind == "generate" else {}
    resources = {"replicas": float(replicas), "cpus": 1.0, "gpus": 0.0} if pool != "driver" else {}
    return Job(f"{kind}.{pool}", kind, inputs, {}, f"sha256:{kind}{pool}", pool=pool,
               resources=resources)  # fmt: skip


# -- small plans run inline -------------------------------------------------------------------


def test_what_counts_as_a_small_plan() -> None:
    one = [_job("generate", "model:a", rows=10), _job("score"), _job("gate")]
    assert small_plan(one) == "10 generations, one model replica"
    assert small_plan([_job("score")]) == "0 generations, no model"
    assert small_plan([_job("generate", "model:a", rows=SMALL_PLAN_ROWS)]) is not None
    assert small_plan([_job("generate", "model:a", rows=SMALL_PLAN_ROWS + 1)]) is None
    assert small_plan([_job("generate", "model:a", rows=1, replicas=2)]) is None
    two_models = [_job("generate", "model:a", rows=1), _job("generate", "model:b", rows=1)]
    assert small_plan(two_models) is None


def _apply(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, ["apply", str(root), *args], env=env)


def test_a_small_plan_runs_inline_unless_a_runner_is_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LLMSPEC_RUNNER", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    root = echo_project(tmp_path / "p", rows=1)
    r = _apply(root)
    assert r.exit_code == 0, r.output
    assert "note: running inline: small plan (1 generation, one model replica)" in r.stderr
    assert "`--runner local` runs it on Ray" in r.stderr
    # nothing to run: no note, no runner started
    again = _apply(root)
    assert again.exit_code == 0 and "running inline" not in again.stderr


def test_a_large_plan_or_a_cluster_is_not_made_inline(tmp_path: Path, monkeypatch) -> None:
    from llmspec.cli.run_cmds import _runner

    monkeypatch.delenv("LLMSPEC_RUNNER", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)  # no runners/local.yaml around
    small = [_job("generate", "model:a", rows=3), _job("score")]
    large = [_job("generate", "model:a", rows=300)]
    runner, used, line = _runner(None, tmp_path, small)
    assert runner.name == used == "inline" and "small plan" in line
    assert _runner(None, tmp_path, large)[0].name == "ray"
    assert _runner("local", tmp_path, small)[0].name == "ray"  # named: as asked
    assert _runner("inline", tmp_path, large)[0].name == "inline"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # a cluster is never second-guessed
    runner, used, line = _runner(None, tmp_path, small)
    assert runner.name == "ray" and used == "local" and "small plan" not in line


def test_no_op_apply_imports_no_ray_and_renders_no_lock(tmp_path: Path) -> None:
    root = echo_project(tmp_path / "p", rows=3)
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLMSPEC_RUNNER": "inline"}
    first = subprocess.run([sys.executable, "-m", "llmspec.cli", "apply", "-q", str(root)],
                           env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert first.returncode == 0, first.stderr
    code = (
        "import sys\n"
        "import llmspec.lock\n"
        "def render(lock):\n"
        "    raise AssertionError('a no-op apply rendered the lock')\n"
        "llmspec.lock.render_lock = render  # the same lock as before: never rendered\n"
        "from llmspec.cli import main\n"
        "try:\n"
        f"    main(['apply', {str(root)!r}, '--runner', 'local'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('RAY', 'ray' in sys.modules, 'torch' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Apply: 0 ran" in r.stdout and "RAY False False" in r.stdout


# -- threads ----------------------------------------------------------------------------------


def _threads_run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    import torch

    return {"torch": torch.get_num_threads(), "omp": os.environ.get("OMP_NUM_THREADS")}, {}


THREADS_KIND = JobKind(
    name="threads", version=1, names=lambda spec: (), build=lambda cx, n: None,
    run=_threads_run, pool="driver",
)  # fmt: skip


@pytest.fixture
def threads_kind():
    jobs.register(THREADS_KIND, "tests.unit.test_runners:THREADS_KIND")
    yield
    jobs.unregister("threads")


def _threads_inline(profile: RunnerProfile | None = None) -> dict:
    out: list = []
    job = Job("threads.x", "threads", {}, {}, "sha256:x")
    InlineRunner(profile).run(None, [job], lambda j: ({}, {}), lambda j: None, out.append)
    assert out[0].status == "done", out[0].error
    return out[0].output


def test_inline_runner_uses_one_thread_by_default_and_restores(threads_kind, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch.set_num_threads(2)
    assert _threads_inline() == {"torch": 1, "omp": "1"}
    assert torch.get_num_threads() == 2 and "OMP_NUM_THREADS" not in os.environ
    assert _threads_inline(RunnerProfile(threads=2)) == {"torch": 2, "omp": "2"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # honoured when the profile says nothing
    assert _threads_inline() == {"torch": 3, "omp": "3"}
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_threads_setting(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads_for(None) == 1 and threads_for(4) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads_for(None) == 2 and threads_for(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert threads_for(None) == 1
    with pytest.raises(ValueError):
        RunnerProfile(threads=0)


# -- what the store keeps of a generate job ---------------------------------------------------


def test_generate_keeps_its_provider_time_and_the_job_time(tmp_path: Path) -> None:
    from llmspec.store import Store

    root = echo_project(tmp_path / "p", rows=4)
    assert _apply(root, "-q", "--runner", "inline").exit_code == 0
    [gen] = [s for s in Store(root).records() if s.kind == "generate"]
    assert {"provider_seconds", "seconds", "latency"} <= set(gen.meta)
    assert 0 <= gen.meta["provider_seconds"] <= gen.meta["seconds"]


# -- workers import this llmspec --------------------------------------------------------------


def test_a_folder_holding_another_llmspec_is_kept_off_the_workers_path(tmp_path: Path) -> None:
    from llmspec.runner.ray import _DriverPaths, shadows_llmspec

    (tmp_path / "checkout" / "llmspec").mkdir(parents=True)
    (tmp_path / "checkout" / "llmspec" / "__init__.py").write_text("")
    (tmp_path / "plain").mkdir()
    import llmspec

    ours = str(Path(llmspec.__file__).resolve().parent.parent)
    assert shadows_llmspec(str(tmp_path / "checkout"))
    assert not shadows_llmspec(str(tmp_path / "plain")) and not shadows_llmspec(ours)
    paths = _DriverPaths()
    paths.extend([str(tmp_path / "checkout"), str(tmp_path / "plain"), ours])
    assert paths == [str(tmp_path / "plain"), ours]
