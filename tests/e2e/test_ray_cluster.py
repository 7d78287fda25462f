"""The example project applied to a real, separate Ray head process on 127.0.0.1 (as a team's
cluster would be reached through RAY_ADDRESS): the work runs there, and the lock equals an
in-process run's."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_example

pytestmark = pytest.mark.slow
pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` on loopback, in a temp dir of its own; stopped by its pid."""
    ray_bin = Path(sys.executable).parent / "ray"
    temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths
    port = _free_port()
    # Loopback only (Ray binds every interface of a node that may join a cluster); token
    # authentication on, as on a real cluster; no drain wait when stopped.
    env = dict(
        os.environ,
        RAY_USAGE_STATS_ENABLED="0",
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_AUTH_MODE="token",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
        PYTHONPATH=str(REPO),  # the cluster's workers import this llmspec, as its nodes would
    )
    proc = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
         "--temp-dir", str(temp), "--disable-usage-stats", "--block"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ok = subprocess.run(
            [str(ray_bin), "status", "--address", address], env=env, capture_output=True
        )
        if ok.returncode == 0:
            break
        if proc.poll() is not None:
            pytest.fail(f"ray start exited: {proc.stdout.read()}")
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail("the Ray head did not come up within 90 s")
    yield address, temp, env
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    left = subprocess.run(["pgrep", "-f", str(temp)], capture_output=True, text=True).stdout
    for pid in left.split():  # anything of that head still alive: stop it by its pid
        os.kill(int(pid), signal.SIGKILL)
    shutil.rmtree(temp, ignore_errors=True)


def _copy(dest: Path, models: dict[str, Path]) -> Path:
    copy_example(dest, models)
    (dest / "llmspec.lock").unlink(missing_ok=True)
    return dest


def _apply(root: Path, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO)) | env
    return subprocess.run(
        [sys.executable, "-m", "llmspec", "apply", "-q", str(root)],
        env=full, capture_output=True, text=True, timeout=300, cwd=root,
    )  # fmt: skip


def test_apply_on_an_existing_cluster(ray_head, tmp_path: Path, example_models) -> None:
    address, temp, head_env = ray_head
    before = {p.name for p in temp.rglob("worker-*.out")}
    on_cluster = _copy(tmp_path / "cluster", example_models)
    r = _apply(on_cluster, RAY_ADDRESS=address, LLMSPEC_RUNNER="local",
               RAY_AUTH_MODE=head_env["RAY_AUTH_MODE"])  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr

    # the jobs ran in the cluster's worker processes (their logs are in its temp dir)
    logs = [p for p in temp.rglob("worker-*.out") if p.name not in before]
    text = "".join(p.read_text(errors="replace") for p in logs)
    assert logs and "_Worker" in text, sorted(p.name for p in temp.rglob("*"))[:50]

    inline = _copy(tmp_path / "inline", example_models)
    r = _apply(inline, LLMSPEC_RUNNER="inline")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (on_cluster / "llmspec.lock").read_bytes() == (inline / "llmspec.lock").read_bytes()
