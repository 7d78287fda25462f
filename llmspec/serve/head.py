"""The records of what runs on Ray Serve for a project, and the Ray head llmspec keeps.

A deployment outlives `llmspec apply` only if the Ray node it runs on does, so llmspec starts
a Ray head as a process of its own (a new session: `ray start --head --block`), one per HTTP
port (Serve listens on one port per Ray), records it and reuses it across applies, and stops
it when nothing runs on it any more. The head:

- listens on 127.0.0.1 only (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`, which tells Ray the node
  is one machine), except the Serve HTTP proxy, which listens on the target's `host`;
- requires Ray token authentication (`RAY_AUTH_MODE=token`) with a token of the project's own
  (`.llmspec/serve/ray_token`, mode 0600), so nothing depends on `~/.ray`;
- keeps its session files in a short temporary folder of its own (Ray's socket paths are
  limited in length), removed when it stops;
- is stopped by SIGTERM to its pid (no drain wait), then SIGKILL to what is left of its
  session, each by pid: never `ray stop`, which stops every Ray on the machine.

`.llmspec/serve/state.json` holds `heads` (by port: pid, address, temp folder, host) and
`deployments` (by name: the deploy job's key, URL, route, lock digest, where it runs). It is
written under the project's run lock (apply and destroy hold it) and read without it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from llmspec.jobs import JobError

STATE_NAME = "state.json"
READY = "block forever"  # what `ray start --block` logs once the head is up
HEAD_START_S = 300.0  # a loaded machine took 26 s; allow for much worse
STOP_WAIT_S = 30.0
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # Ray's default is 30% of memory; Serve needs little


def serve_dir(root: Path) -> Path:
    return Path(root) / ".llmspec" / "serve"


def read_state(root: Path) -> dict[str, Any]:
    try:
        data = json.loads((serve_dir(root) / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    data.setdefault("heads", {})
    data.setdefault("deployments", {})
    return data


def write_state(root: Path, state: dict[str, Any]) -> None:
    from llmspec.fsutil import write_atomic

    path = serve_dir(root) / STATE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(state, indent=2, sort_keys=True) + "\n").encode())


def token_file(root: Path) -> Path:
    """The project's Ray token (made once, readable by its owner only)."""
    path = serve_dir(root) / "ray_token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path


# -- processes --------------------------------------------------------------------------------


def alive(head: dict[str, Any] | None) -> bool:
    """Whether a recorded head still runs (its pid, running Ray with its own temp folder: a
    reused pid does not count)."""
    if not head:
        return False
    try:
        cmdline = Path(f"/proc/{int(head['pid'])}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError):
        return False
    return head.get("temp_dir", "").encode() in cmdline and b"ray" in cmdline


def session_pids(sid: int) -> list[int]:
    """The processes of a session (a head and everything Ray started under it)."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and fields[3] == str(sid):  # state ppid pgrp session
            out.append(int(p.name))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at host:port."""
    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    try:
        with socket.create_connection((target, port), timeout=timeout):
            return True
    except OSError:
        return False


def head_env(root: Path) -> dict[str, str]:
    """The environment of the head and of every client of it."""
    import llmspec

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
    package_root = str(Path(llmspec.__file__).resolve().parent.parent)
    paths = [package_root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env.update(
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN_PATH=str(token_file(root)),
        RAY_USAGE_STATS_ENABLED="0",
        # Ray starts workers at niceness 15; a replica answering requests must not yield its
        # CPU to every other process on the machine (measured: 13x slower on a busy one).
        RAY_worker_niceness="0",
        PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)),
    )
    return env


def start_head(root: Path, port: int, host: str) -> dict[str, Any]:
    """Start a Ray head for Serve on `port` and wait until it is up; its record."""
    folder = serve_dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    temp = tempfile.mkdtemp(prefix="llmspec-ray-", dir="/tmp")
    gcs = free_port()
    cmd = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        "--port",
        str(gcs),
        "--ray-client-server-port",
        str(free_port()),
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--include-dashboard=false",
        "--num-cpus",
        str(os.cpu_count() or 1),
        "--object-store-memory",
        str(OBJECT_STORE_BYTES),
        "--disable-usage-stats",
        "--temp-dir",
        temp,
    ]
    log = folder / f"head-{port}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd,
            env=head_env(root),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=folder,
        )
    head = {
        "pid": proc.pid,
        "address": f"127.0.0.1:{gcs}",
        "temp_dir": temp,
        "host": host,
        "port": port,
        "log": str(log),
    }
    deadline = time.monotonic() + HEAD_START_S
    while time.monotonic() < deadline:
        if READY in log.read_text(errors="replace"):
            return head
        if proc.poll() is not None:
            shutil.rmtree(temp, ignore_errors=True)
            raise JobError(f"the Ray head exited while starting: {_tail(log)}")
        time.sleep(0.25)
    stop_head(head)
    raise JobError(f"the Ray head did not start within {HEAD_START_S:.0f} s: {_tail(log)}")


def stop_head(head: dict[str, Any], wait: float = STOP_WAIT_S) -> list[int]:
    """Stop a head llmspec started and everything in its session; the pids that needed
    SIGKILL. Removes its temp folder."""
    pid = int(head["pid"])
    killed: list[int] = []
    if alive(head):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while session_pids(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.2)
        for left in session_pids(pid):
            try:
                os.kill(left, signal.SIGKILL)
                killed.append(left)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while session_pids(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
    _reap(pid)
    shutil.rmtree(head.get("temp_dir") or "/nonexistent", ignore_errors=True)
    return killed


def _reap(pid: int) -> None:
    """Collect the head's exit status when this process started it (no zombie is left)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _tail(log: Path, lines: int = 6) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"


# -- the control process ---------------------------------------------------------------------


def run_ctl(op: str, req: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run `python -m llmspec.serve.ctl OP` with `req`; its answer. Killed (its whole
    session, by pid) if it takes longer than `timeout`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmspec.serve.ctl", op],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(json.dumps(req), timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in session_pids(proc.pid) or [proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.communicate()
        raise JobError(f"Ray Serve did not answer within {timeout:.0f} s ({op})") from None
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = " | ".join(err.strip().splitlines()[-4:])
        raise JobError(f"the Serve control process failed ({op}): {tail}") from None
    if not answer.get("ok"):
        raise JobError(f"Ray Serve: {answer.get('error')}")
    return answer
