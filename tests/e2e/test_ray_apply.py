"""The example project on Ray with the tiny local model: constrained outputs, determinism,
and a worker killed in the middle of a job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray for the module: 2 CPUs, no dashboard, a small object store."""
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=128 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


def _apply(project: Path, runner=None):
    from llmspec.apply import apply_plan
    from llmspec.compile import compile_project
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan
    from llmspec.project import load_project
    from llmspec.runner.ray import RayRunner
    from llmspec.store import Store

    graph = compile_project(load_project(project))
    store = Store(project)
    plan = make_plan(graph, read_lock(project), store.keys(), lock_digest(project))
    runner = runner or RayRunner()
    try:
        report = apply_plan(plan, graph, store, runner)
    finally:
        runner.close()
    return graph, store, report


def _rows(store, graph, prefix: str) -> list[dict]:
    rows = []
    for job in graph.jobs.values():
        if job.id.startswith(prefix):
            rows += store.get(job.key).output["rows"]
    return rows


def test_example_project_on_ray(ray_cluster, example_project: Path, tmp_path: Path) -> None:
    from llmspec.constraints import check_output

    graph, store, report = _apply(example_project)
    assert report.ok and not report.failed, report
    assert set(report.done) == set(graph.jobs)
    schema = graph.facts["schemas"]["answer"]
    for prefix, constraint in (
        ("generate.quality.base/qa.", {"json_schema": schema}),
        ("generate.routing.base.", {"choice": ["billing", "shipping", "account", "other"]}),
    ):
        rows = _rows(store, graph, prefix)
        assert len(rows) == 6
        for r in rows:
            assert r["guarantee"] == "token" and r["valid"] is True, r
            assert check_output(constraint, r["output"]) is None
    lock = (example_project / "llmspec.lock").read_bytes()
    assert json.loads(lock)["suites"]["quality"]["passed"] is True

    # same lock, same outputs, whatever the runner: a second copy applied in-process from an
    # empty store (one torch thread in a Ray worker, two here: float noise must not show)
    from llmspec.runner.inline import InlineRunner

    again = tmp_path / "again"
    shutil.copytree(
        example_project, again, ignore=shutil.ignore_patterns(".llmspec", "llmspec.lock")
    )
    _apply(again, InlineRunner())
    assert (again / "llmspec.lock").read_bytes() == lock


def test_constraint_does_the_work(example_project: Path) -> None:
    """The same model on the same rows without the constraint: most outputs are invalid."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.constraints import check_output
    from llmspec.project import load_project
    from llmspec.providers.transformers.decode import generate_batch

    rp = load_project(example_project)
    path = example_project / "models" / "tiny"
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path)
    prompts = [
        f"Question: {r}\nJSON:"
        for r in ("refunds?", "shipping?", "password?", "invoice?", "abroad?", "close account?")
    ]
    constraint = {"json_schema": rp.schemas["answer"]}
    free = generate_batch(model, tok, prompts, [None] * 6, max_tokens=128)
    # 128 tokens hold the longest valid answer (80 + 20 characters) even at 1 byte a token
    bound = generate_batch(model, tok, prompts, [constraint] * 6, max_tokens=128)
    assert sum(check_output(constraint, g.text) is None for g in free) <= 1
    assert all(check_output(constraint, g.text) is None for g in bound)


KILL_SPEC = """\
version: 1
name: crashy
models:
  tiny:
    provider: transformers
    path: models/tiny
    replicas: 1
    params: {max_tokens: 40, temperature: 0.8, seed: 3}
prompts:
  free: {template: "Q{{ i }}: {{ question }}"}
datasets:
  rows: {path: rows.jsonl, shard_rows: 8}
suites:
  s: {prompt: free, models: [tiny], dataset: rows, metrics: [json_valid]}
"""


def _worker_pids() -> list[int]:
    """Workers of this test's own Ray (descendants of this process) busy with a job; never
    another user's."""
    import psutil

    out = []
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "ray::_Worker.run" in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.Error:
            continue
    return out


def test_killed_worker_is_retried_without_duplicate_rows(
    ray_cluster, tmp_path: Path, tiny_model_dir: Path
) -> None:
    from llmspec.runner.profile import RunnerProfile
    from llmspec.runner.ray import RayRunner

    project = tmp_path / "crashy"
    project.mkdir()
    (project / "llmspec.yaml").write_text(KILL_SPEC)
    (project / "rows.jsonl").write_text(
        "".join(json.dumps({"i": i, "question": f"where is parcel {i}?"}) + "\n" for i in range(32))
    )
    shutil.copytree(tiny_model_dir, project / "models" / "tiny")

    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            pids = _worker_pids()
            if pids:
                time.sleep(0.3)  # let it get into the shard
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    graph, store, report = _apply(project, RayRunner(RunnerProfile(max_retries=3)))
    t.join(timeout=1)
    assert killed, "no worker was seen running a job"
    assert not report.failed, report.failed
    rows = _rows(store, graph, "generate.s.tiny")
    assert sorted(r["row"] for r in rows) == list(range(32))  # each row once
    events = [
        json.loads(line)
        for f in (project / ".llmspec" / "runs").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    done = [e["job"] for e in events if e.get("event") == "done"]
    assert len(done) == len(set(done))


def test_ctrl_c_on_ray_keeps_finished_shards_and_resumes(tmp_path: Path, tiny_model_dir: Path):
    """SIGINT to `llmspec apply` on the embedded Ray: exit 130, finished shards in the lock,
    the next apply runs only the rest."""
    import subprocess
    import sys

    project = tmp_path / "interrupted"
    project.mkdir()
    (project / "llmspec.yaml").write_text(KILL_SPEC.replace("shard_rows: 8", "shard_rows: 4"))
    (project / "rows.jsonl").write_text(
        "".join(json.dumps({"i": i, "question": f"where is parcel {i}?"}) + "\n" for i in range(48))
    )
    shutil.copytree(tiny_model_dir, project / "models" / "tiny")
    env = dict(os.environ, LLMSPEC_RUNNER="local")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmspec.cli", "apply", str(project), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    runs = project / ".llmspec" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = (
            [
                line
                for f in runs.glob("*.jsonl")
                for line in f.read_text().splitlines()
                if '"event": "done"' in line
            ]
            if runs.is_dir()
            else []
        )
        if len(done) >= 2:
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.1)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Interrupted" in out
    lock = json.loads((project / "llmspec.lock").read_text())
    finished = {j for j in lock["jobs"] if j.startswith("generate.")}
    assert 2 <= len(finished) < 12

    resumed = subprocess.run(
        [sys.executable, "-m", "llmspec.cli", "apply", str(project), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    events = [json.loads(line) for f in runs.glob("*.jsonl") for line in f.read_text().splitlines()]
    done = [e["job"] for e in events if e.get("event") == "done"]
    assert len(done) == len(set(done))  # nothing that finished ran again
    # 12 shards: a generate and a score job each, then the summary and the gate
    assert len(json.loads((project / "llmspec.lock").read_text())["jobs"]) == 26


def test_finetune_on_ray_train(ray_cluster, tiny_model_dir: Path, tmp_path: Path) -> None:
    """A fine-tune on Ray Train (one worker, on the module's 2-CPU Ray with a model pool and
    the general workers alive) gives the same weights, hence the same lock, as the loop run
    in-process; its progress reaches the driver while it trains."""
    from llmspec.apply import apply_plan
    from llmspec.compile import compile_project
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan
    from llmspec.project import load_project
    from llmspec.runner.inline import InlineRunner
    from llmspec.runner.ray import RayRunner
    from llmspec.store import Store
    from tests.e2e.test_finetune import SPEC, make_project

    spec = SPEC.split("  lora:\n")[0] + "  full-int8:" + SPEC.split("  full-int8:")[1]
    spec = spec.replace("[base, lora, full, full-int8]", "[base, full, full-int8]")
    roots = []
    for name in ("ray", "inline"):
        root = make_project(tmp_path / name, tiny_model_dir)
        (root / "llmspec.yaml").write_text(spec)
        roots.append(root)
    events: list[tuple[str, str, object]] = []
    for root, runner in zip(roots, (RayRunner(), InlineRunner()), strict=True):
        graph = compile_project(load_project(root))
        store = Store(root)
        plan = make_plan(graph, read_lock(root), store.keys(), lock_digest(root))
        try:
            report = apply_plan(plan, graph, store, runner, lambda *e: events.append(e))
        finally:
            runner.close()
        assert report.ok and "finetune.full" in report.done, report
        if isinstance(runner, RayRunner):
            meta = store.get(graph.jobs["finetune.full"].key).meta
            assert meta["trainer"] == "ray-train", meta
            assert meta["resources_per_worker"]["CPU"] > 0
            ray_points = [e for e in events if e[0] == "progress" and e[1] == "finetune.full"]
            assert ray_points and ray_points[-1][2]["epoch"] == 30, events[-5:]
    assert (roots[0] / "llmspec.lock").read_bytes() == (roots[1] / "llmspec.lock").read_bytes()


def test_ray_train_does_not_wait_for_cpus_that_never_come_free(
    ray_cluster, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Every CPU held by an actor (model pools can take them all with `reserve_cpus: 0`): the
    trainer's worker asks for memory only, and trains, instead of waiting forever."""
    from llmspec.providers.transformers import train

    @ray.remote(num_cpus=2)
    class Hog:
        def ping(self) -> int:
            return 1

    hog = Hog.remote()
    ray.get(hog.ping.remote(), timeout=120)
    try:
        assert ray.available_resources().get("CPU", 0.0) < 0.01
        base = str(tiny_model_dir)
        examples, pad = train.encode_examples(base, [(None, "Q: hi\nA:")] * 2, [" hello"] * 2)
        settings = {"method": "full", "epochs": 1, "learning_rate": 0.01, "batch_size": 2}
        settings |= {"seed": 0, "workers": 1, "threads": 1, "device": "cpu"}
        cfg = {"base": base, "examples": examples, "pad": pad, "settings": settings, "job": "t"}
        (tmp_path / "out").mkdir()
        meta = train.train_on_ray(cfg, tmp_path / "out", tmp_path / "scratch", {"cpus": 1.0})
    finally:
        ray.kill(hog)
    assert meta["resources_per_worker"] == {"memory": train.NO_CPU_MEMORY}
    assert (tmp_path / "out" / "model.safetensors").is_file() and len(meta["curve"]) == 1


def test_the_ray_of_a_killed_apply_is_stopped_by_the_next(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Killed (SIGKILL) while its embedded Ray runs, an apply leaves Ray's processes behind;
    the next apply's runner stops them before it starts its own."""
    import subprocess
    import sys

    import psutil

    from llmspec.runner.ray import PIDS_FILE, reap_processes

    project = tmp_path / "killed"
    project.mkdir()
    (project / "llmspec.yaml").write_text(KILL_SPEC.replace("shard_rows: 8", "shard_rows: 1"))
    (project / "rows.jsonl").write_text(
        "".join(json.dumps({"i": i, "question": f"q{i}"}) + "\n" for i in range(64))
    )
    shutil.copytree(tiny_model_dir, project / "models" / "tiny")
    env = dict(os.environ, LLMSPEC_RUNNER="local")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmspec", "apply", str(project), "--quiet"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids_file = project / ".llmspec" / "tmp" / PIDS_FILE
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not pids_file.exists():
        time.sleep(0.2)
    assert pids_file.exists(), "the apply never started its Ray"
    proc.kill()
    proc.wait(timeout=30)
    session = json.loads(pids_file.read_text())["session"]

    def left() -> list[int]:
        out = []
        for p in psutil.process_iter(["cmdline", "status"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if session in cmd and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        return out

    # Whatever of that Ray outlives its driver names the session's folder; stand in for a
    # survivor (how long Ray's agents outlive a killed driver varies) with one that does too.
    survivor = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "ray-agent", session]
    )
    assert survivor.pid in left()
    stopped = reap_processes(pids_file.parent)
    assert survivor.pid in stopped
    survivor.wait(timeout=30)
    assert set(left()) <= set(stopped)
    deadline = time.time() + 30
    while time.time() < deadline and any(psutil.pid_exists(p) for p in stopped):
        time.sleep(0.2)
    while time.time() < deadline and left():
        time.sleep(0.2)
    assert left() == [] and not pids_file.exists()
