"""A load test of a deployment served on Ray Serve, beside the same model called in-process.

One project: the tiny random Llama (4 layers x 256 wide, batch_size 16) answering support
tickets under the bench's ticket JSON Schema (max_tokens 96, temperature 0), deployed with
`target: {kind: ray_serve, concurrency: 32}` on a Ray head llmspec starts (127.0.0.1, a free
port). Three ways to ask it the same questions, each at 1, 8 and 32 concurrent clients:

- **served**: `POST /v1/chat/completions` on Ray Serve (HTTP proxy, replica, the app's
  batcher), each client a thread with its own keep-alive connection;
- **uvicorn**: the same app (`ServedModel.asgi()`) under uvicorn in this process, over HTTP
  on 127.0.0.1: HTTP without Ray;
- **in-process**: `await ServedModel.chat(body)` from asyncio tasks in this process, no HTTP.

Every client sends requests back to back until the level's count is done (or a deadline
passes); per level: requests/s, p50 and p95 latency. Levels and ways are interleaved, rounds
rotate their order, medians over rounds. The deployment is destroyed at the end, also on
failure, and the port is checked closed.

    .venv/bin/python bench/serve_load.py [--smoke] [--rounds 2] [--requests 96]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _tiny  # noqa: F401  (sets HF_HUB_OFFLINE and sys.path)
from _tiny import _ISSUES, TICKET, build_model, load_avg

LEVELS = (1, 8, 32)
DEADLINE_S = 300.0  # per level: a stuck server ends the level, never the machine


def write_project(dest: Path, model: Path, port: int) -> Path:
    import shutil

    (dest / "models").mkdir(parents=True)
    shutil.copytree(model, dest / "models" / "tiny")
    rows = [
        {"question": f"Ticket {i}: {_ISSUES[i % len(_ISSUES)]}.", "answer": "x"} for i in range(4)
    ]
    (dest / "tickets.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (dest / "llmspec.yaml").write_text(f"""version: 1
name: serve-bench
models:
  tiny:
    provider: transformers
    path: models/tiny
    batch_size: 16
    params: {{temperature: 0, max_tokens: 96, seed: 7}}
schemas:
  ticket: {json.dumps(TICKET)}
prompts:
  triage:
    system: Classify the support ticket. Reply in JSON.
    template: "{{{{ question }}}}"
    output: {{schema: ticket}}
datasets:
  tickets: {{path: tickets.jsonl}}
suites:
  triage:
    prompt: triage
    models: [tiny]
    dataset: tickets
    metrics: [schema_valid]
    gates: ["schema_valid == 1"]
deployments:
  api:
    model: tiny
    prompt: triage
    requires: [triage]
    target: {{kind: ray_serve, route: /bench, port: {port}, concurrency: 32, queue: 256}}
""")
    return dest


def llmspec(*args: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    env = dict(__import__("os").environ, PYTHONPATH=str(root), LLMSPEC_RUNNER="inline")
    return subprocess.run(
        [sys.executable, "-m", "llmspec", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=1200,
    )


def body(i: int) -> dict[str, Any]:
    q = f"Ticket {1000 + i}: {_ISSUES[i % len(_ISSUES)]} (order {20000 + 7 * i})."
    return {"model": "api", "messages": [{"role": "user", "content": q}], "temperature": 0}


@dataclass
class Run:
    wall: float
    latencies: list[float]  # per request, as the client saw it
    model: list[float]  # per request, its time in the model (from the start of its batch)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def over_http(host: str, port: int, path: str, clients: int, n: int) -> Run:
    """`n` requests from `clients` threads, each with a keep-alive connection."""
    latencies: list[float] = []
    model: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))
    deadline = time.monotonic() + DEADLINE_S

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                data = json.dumps(body(i)).encode()
                t0 = time.perf_counter()
                conn.request("POST", path, data, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                reply = resp.read()
                dt = time.perf_counter() - t0
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {reply[:200]!r}")
                with lock:
                    latencies.append(dt)
                    model.append(json.loads(reply)["llmspec"]["model_seconds"])
        finally:
            conn.close()

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    return Run(time.perf_counter() - t0, latencies, model)


def in_process(served: Any, loop: asyncio.AbstractEventLoop, clients: int, n: int):
    async def run() -> Run:
        latencies: list[float] = []
        model: list[float] = []
        todo = iter(range(n))

        async def client() -> None:
            for i in todo:
                t0 = time.perf_counter()
                status, reply = await served.chat(body(i))
                if status != 200:
                    raise RuntimeError(f"{status}: {reply}")
                latencies.append(time.perf_counter() - t0)
                model.append(reply["llmspec"]["model_seconds"])

        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), DEADLINE_S)
        return Run(time.perf_counter() - t0, latencies, model)

    return loop.run_until_complete(run())


class Uvicorn:
    def __init__(self, app: Any):
        import socket

        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="one round, a few requests per level")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=96, help="requests at 32 clients")
    args = ap.parse_args()
    rounds = 1 if args.smoke else args.rounds
    counts = (
        {1: 2, 8: 8, 32: 32}
        if args.smoke
        else {1: max(4, args.requests // 6), 8: max(16, args.requests // 2), 32: args.requests}
    )

    from llmspec.serve.head import free_port, listening
    from llmspec.targets import Release
    from llmspec.targets.ray_serve import config_for

    print(f"load average at start: {load_avg()}")
    tmp = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    model, _ = build_model(tmp / "model")
    port = free_port()
    root = write_project(tmp / "project", model, port)
    try:
        t0 = time.perf_counter()
        r = llmspec("apply", str(root), "-q")
        if r.returncode != 0:
            raise SystemExit(f"apply failed:\n{r.stdout}\n{r.stderr}")
        print(f"apply with a new Ray head and the deployment: {time.perf_counter() - t0:.1f} s")

        from llmspec.cli.run_cmds import compile_path
        from llmspec.lock import lock_digest
        from llmspec.serve.app import ServedModel

        _, graph, store = compile_path(str(root))
        job = graph.jobs["deploy.api"]
        s = store.get(job.key)
        config = config_for(
            root, Release("api", job.key, s.output, s.meta, job.local), lock_digest(root)
        )
        served = ServedModel(config)
        loop = asyncio.new_event_loop()
        path = "/bench/v1/chat/completions"
        first = over_http("127.0.0.1", port, path, 1, 1).wall
        print(f"first request to the new deployment: {first * 1000:.0f} ms")
        results: dict[tuple[str, int], list[Run]] = {}
        with Uvicorn(served.asgi()) as uv:
            ways = {
                "served": lambda c, n: over_http("127.0.0.1", port, path, c, n),
                "uvicorn": lambda c, n: over_http(
                    "127.0.0.1", uv.port, "/v1/chat/completions", c, n
                ),
                "in-process": lambda c, n: in_process(served, loop, c, n),
            }
            cases = [(w, c) for c in LEVELS for w in ways]
            # Warm each way at each level once, untimed: a batch size a process has not
            # decoded yet costs several times a warm one (measured: a first batch of 7 in a
            # fresh replica 7 s, the next 0.65 s), and each way is a process of its own or
            # shares this one.
            for way, c in cases:
                ways[way](c, c)
            for k in range(rounds):
                order = cases[k % len(cases) :] + cases[: k % len(cases)]
                for way, c in order:
                    results.setdefault((way, c), []).append(ways[way](c, counts[c]))
                print(f"  round {k + 1}/{rounds} done (load average {load_avg()})")
        print(f"\nrequests per level: {counts}; rounds: {rounds}; medians over rounds\n")
        head = f"{'clients':>7}  {'way':<10} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}"
        print(f"{head} {'model p50 ms':>12}  vs in-process")
        for c in LEVELS:
            base = statistics.median(r.rps for r in results[("in-process", c)])
            for way in ways:
                runs = results[(way, c)]
                rps = statistics.median(r.rps for r in runs)
                p50 = statistics.median(pct(r.latencies, 0.5) for r in runs) * 1000
                p95 = statistics.median(pct(r.latencies, 0.95) for r in runs) * 1000
                model = statistics.median(pct(r.model, 0.5) for r in runs) * 1000
                print(
                    f"{c:>7}  {way:<10} {rps:>7.2f} {p50:>8.0f} {p95:>8.0f} {model:>12.0f}  "
                    f"{rps / base:.2f}x"
                )
        print(f"\nload average at end: {load_avg()}")
    finally:
        r = llmspec("destroy", str(root), "--auto-approve")
        closed = not listening("127.0.0.1", port)
        print(
            f"destroyed: {'ok' if r.returncode == 0 else r.stderr.strip()}; "
            f"port {port} {'closed' if closed else 'STILL OPEN'}"
        )
        if closed:
            shutil.rmtree(tmp, ignore_errors=True)  # kept when something still runs from it
        else:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
