"""Ray as apply starts it: on a thread while the plan prints, with the threads the profile
asks for, and workers that import this llmspec whatever folder apply runs from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.unit.test_runners import echo_project

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


def test_workers_import_this_llmspec_not_a_checkout_in_the_working_folder(
    tmp_path: Path,
) -> None:
    """`llmspec apply` run from a folder that holds another `llmspec/` (a checkout): Ray puts
    the working folder first on every worker's sys.path, so workers imported that one."""
    root = echo_project(tmp_path / "p", rows=2)
    here = tmp_path / "work"
    (here / "llmspec").mkdir(parents=True)
    (here / "llmspec" / "__init__.py").write_text("# another checkout, without __version__\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LLMSPEC_RUNNER", None)
    # -P: the driver itself does not put the working folder on its path (as the `llmspec`
    # script does not); Ray still hands that folder to the workers
    r = subprocess.run(
        [sys.executable, "-P", "-m", "llmspec.cli", "apply", str(root), "--runner", "local"],
        cwd=here,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # generate, score, summary and gate, on Ray
    assert "Apply: 4 ran" in r.stdout and "running inline" not in r.stderr


def test_ray_starts_on_a_thread_and_replicas_get_their_threads(tmp_path: Path, monkeypatch) -> None:
    from llmspec.apply import apply_plan, jobs_to_run
    from llmspec.compile import compile_project
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan
    from llmspec.project import load_project
    from llmspec.runner.profile import RunnerProfile
    from llmspec.runner.ray import RayRunner
    from llmspec.store import Store

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    root = echo_project(tmp_path / "p", rows=4, shard=2)
    graph = compile_project(load_project(root))
    store = Store(root)
    plan = make_plan(graph, read_lock(root), store.keys(), lock_digest(root))
    jobs, _ = jobs_to_run(plan, graph, store.keys())
    runner = RayRunner(RunnerProfile(threads=2, num_cpus=2, reserve_cpus=0))
    other = RayRunner(RunnerProfile())  # the default: 1 thread, whatever the CPUs
    try:
        runner.prepare(jobs)
        assert runner._starter is not None and runner._starter.thread.is_alive()
        report = apply_plan(plan, graph, store, runner)
        assert report.ok and len(report.done) == len(graph.jobs), report
        # Ray still answers after the starting thread's work is over (it stays parked)
        [actor] = runner.pools["model:echo"]
        seen = ray.get(actor.threads_in_use.remote(True), timeout=120)
        assert (seen["omp"], seen["torch"]) == ("2", 2)
        assert Path(seen["llmspec"]).resolve().parent.parent == REPO
        [lone] = other._pool("model:x", (1, 1.0, 0.0))
        seen = ray.get(lone.threads_in_use.remote(True), timeout=120)
        assert (seen["omp"], seen["torch"]) == ("1", 1)
    finally:
        other.close()
        runner.close()
    assert not ray.is_initialized()
