"""What apply on Ray costs over calling the provider directly, once the model is loaded.

One project: the tiny random Llama (4 layers x 256 wide, `transformers` provider, batch_size 16)
over --rows support tickets in shards of --shard-rows, the prompt's output constrained by a JSON
Schema (bounded sizes), temperature 0.7 with per-row seeds, replicas 1. The same model file
and the same requests on every side:

- **direct, plain process**: `TransformersProvider.generate(requests)` per shard in a loop,
  in a separate Python process that never imports Ray, with its own copy of the model (torch
  1 thread), timed inside it. The requests are the ones the generate job builds (recorded once
  from `run_job`), so only decoding is timed. This is the baseline.
- **direct, this process**: the same loop in this (driver) process, where Ray is initialised.
- **direct, Ray actor**: the same loop in a plain Ray actor of this script's own (0.5 CPU, so
  that with the runner's replica the actors never claim both CPUs; torch 1 thread), timed
  inside the actor: is decoding slower in a Ray worker process (it runs at Ray's worker
  niceness, beside Ray's own processes), with no llmspec code around it?
- **apply, inline runner**: `apply_plan` on a fresh store (and no lock) with `InlineRunner`
  reusing the same loaded provider: adds the score job, the store, the run log and the lock.
- **apply, Ray runner**: `apply_plan` on a fresh store with one `RayRunner` kept for the whole
  run, so its actor and the model in it stay loaded (the first, cold apply is reported apart).
  Ray is started once, here, with 2 CPUs; the runner reuses it. Default profile
  (`reserve_cpus: 1`): the replica gets 1 CPU and torch 1 thread, so the driver's torch is set
  to 1 thread too.

Cases are interleaved (each once per round, the order rotating), medians over rounds. The
breakdown splits the Ray apply by job timestamps (driver) and the actor's own timings.

    .venv/bin/python bench/ray_orchestration.py [--quick | --smoke] [--rows 128] [--rounds 4]

`--smoke` (16 rows in 2 shards of 8, 24 tokens, 1 round) checks that the benchmark runs; its
figures mean little. To save time it loads the plain process's and its own actor's models
while Ray starts and the cold apply runs, so its one-off costs are not apart either, and it
runs Ray's workers at niceness 0 (unless --worker-niceness says otherwise), so that a busy
machine does not starve them.

Goal: the Ray apply adds under 5% over direct once the model is loaded.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _tiny  # noqa: F401  (sets HF_HUB_OFFLINE and sys.path)
from _tiny import (
    build_model,
    compile_graph,
    fresh_apply,
    generate_jobs,
    load_avg,
    med,
    model_settings,
    rng,
    rounds,
    start_ray,
    stored_rows,
    tree_cpu,
    write_ticket_project,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="64 rows, 3 rounds")
    size.add_argument("--smoke", action="store_true", help="16 rows, 24 tokens, 1 round")
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--shard-rows", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument(
        "--worker-niceness",
        type=int,
        default=None,
        help="RAY_worker_niceness for the Ray workers (Ray's default: 15)",
    )
    args = ap.parse_args()
    if args.quick:
        args.rows, args.rounds = 64, 3
    if args.smoke:
        args.rows, args.shard_rows, args.rounds, args.max_tokens = 16, 8, 1, 24
        if args.worker_niceness is None:  # not starved by the rest of a busy machine
            args.worker_niceness = 0
    t_all = time.perf_counter()
    if args.worker_niceness is not None:
        import os

        os.environ["RAY_worker_niceness"] = str(args.worker_niceness)
    print(f"load average at start: {load_avg()}", flush=True)

    import torch

    from llmspec.jobs import Deps, JobContext, run_job
    from llmspec.runner.inline import InlineRunner
    from llmspec.runner.profile import RunnerProfile

    torch.set_num_threads(1)  # what the Ray replica gets (1 CPU -> 1 thread)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, build_s = build_model(tmp / "model")
        project = write_ticket_project(
            tmp / "p", model, args.rows, args.shard_rows, max_tokens=args.max_tokens
        )
        graph = compile_graph(project)
        gen_jobs = generate_jobs(graph)
        settings = model_settings(gen_jobs[0])
        n_rows = args.rows

        # -- this process: load the model, record the requests, warm up -------------------
        ctx = JobContext()
        t0 = time.perf_counter()
        provider = ctx.provider(settings)  # the instance run_job finds for these settings
        load_s = time.perf_counter() - t0
        recorded: list[list] = []
        real_generate = provider.generate

        def recording(requests):
            recorded.append(list(requests))
            return real_generate(requests)

        provider.generate = recording
        t0 = time.perf_counter()
        for job in gen_jobs:
            run_job(job, Deps.of({}), ctx)
        first_pass_s = time.perf_counter() - t0
        provider.generate = real_generate

        # -- a plain process (no Ray in it) with its own model, serving the same loop ------
        with open(tmp / "requests.pickle", "wb") as fh:
            pickle.dump((settings, recorded), fh)
        plain = subprocess.Popen(
            [sys.executable, "-c", PLAIN, str(tmp / "requests.pickle")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

        def plain_ready() -> None:
            assert plain.stdout.readline().strip() == "ready"  # loaded and warmed up

        # `--smoke` lets the plain process and our own actor load their models while Ray
        # starts and the cold apply runs (it has no figures to keep apart, only a time limit)
        if not args.smoke:
            plain_ready()

        # -- Ray: start once, then a cold apply (actor start, model load) -----------------
        t0 = time.perf_counter()
        import ray  # noqa: F401

        from llmspec.runner.ray import RayRunner

        import_ray_s = time.perf_counter() - t0
        ray_init_s = start_ray(2)
        ray_runner = RayRunner(RunnerProfile())
        # the same decoding loop in a plain Ray actor of our own (not llmspec's worker): how
        # much a Ray worker process decodes slower than this one, with no llmspec around it
        direct_actor = ray.remote(num_cpus=0.5)(DirectActor)
        actor = direct_actor.remote(settings, recorded) if args.smoke else None
        cold = fresh_apply(project, graph, ray_runner)
        worker = ray_runner.pools["model:tiny"][0]
        worker_pid = ray.get(worker.pid.remote())
        restarts = []
        first_gen = min(cold.generate_ids(), key=lambda j: cold.starts[j])
        cold_first_job = cold.ends[first_gen] - cold.starts[first_gen]
        cold_first_exec = cold.outcomes[first_gen].seconds

        actor = actor or direct_actor.remote(settings, recorded)
        ray.get(actor.run.remote())  # warm-up: model, llg tokenizer, grammars
        if args.smoke:
            plain_ready()
        cpu: dict[str, list[float]] = {"direct": [], "direct in actor": [], "plain": []}

        inline_runner = InlineRunner()
        inline_runner.ctx = ctx  # the same loaded provider as the direct side

        direct_texts: dict[int, str] = {}
        ray_applied: list = []
        inline_applied: list = []

        def direct() -> float:
            t, c = time.perf_counter(), time.process_time()
            outs = [provider.generate(reqs) for reqs in recorded]
            dt = time.perf_counter() - t
            cpu["direct"].append(time.process_time() - c)  # with Ray's threads in this process
            for job, res in zip(gen_jobs, outs, strict=True):
                for i, r in enumerate(res):
                    direct_texts[job.inputs["rows"]["range"][0] + i] = r.text
            return dt

        def direct_in_actor() -> float:
            wall, c = ray.get(actor.run.remote())
            cpu["direct in actor"].append(c)
            return wall

        def direct_plain() -> float:
            plain.stdin.write("go\n")
            plain.stdin.flush()
            wall, c = map(float, plain.stdout.readline().split())
            cpu["plain"].append(c)
            return wall

        def apply_inline() -> float:
            a = fresh_apply(project, graph, inline_runner)
            inline_applied.append(a)
            return a.wall

        def apply_ray() -> float:
            nonlocal worker_pid
            a = fresh_apply(project, graph, ray_runner)
            ray_applied.append(a)
            pid = ray.get(worker.pid.remote())
            if pid != worker_pid:  # killed and restarted by Ray: this round is not warm
                restarts.append(len(ray_applied))
                worker_pid = pid
            return a.wall

        cases = {
            "direct, plain process": direct_plain,
            "direct, this process": direct,
            "direct, Ray actor": direct_in_actor,
            "apply inline": apply_inline,
            "apply ray": apply_ray,
        }
        print(
            f"model {_tiny.ARCH} {_tiny.LAYERS}x{_tiny.HIDDEN}, {n_rows} rows in "
            f"{len(gen_jobs)} shards of {args.shard_rows}, max_tokens {args.max_tokens}, "
            f"torch threads 1; {args.rounds} rounds",
            flush=True,
        )
        tree: dict[str, list[float]] = {k: [] for k in cases}

        def with_cpu(name, fn):
            def timed() -> float:
                c = tree_cpu()
                wall = fn()
                tree[name].append(tree_cpu() - c)
                return wall

            return timed

        cases = {k: with_cpu(k, fn) for k, fn in cases.items()}
        times = rounds(cases, args.rounds, log=lambda s: print(s, flush=True))
        same = sum(
            direct_texts[r] == row["output"] for r, row in stored_rows(project, graph).items()
        )
        valid = sum(bool(row["valid"]) for row in stored_rows(project, graph).values())
        nice = _nice(worker_pid)
        plain.stdin.close()
        plain.wait()
        ray.kill(actor)
        ray_runner.close()
        ray.shutdown()

    # -- report -----------------------------------------------------------------------------
    base_name = "direct, plain process"
    base = med(times[base_name])
    print()
    base_cpu = med(tree[base_name])
    print(
        f"{'case':24} {'median s':>9} {'min-max s':>11} {'rows/s':>7} {'/ baseline':>10} "
        f"{'CPU s':>6} {'/ baseline':>10}"
    )
    for name, xs in times.items():
        m, c = med(xs), med(tree[name])
        print(
            f"{name:24} {m:9.3f} {rng(xs):>11} {n_rows / m:7.1f} {m / base:9.3f}x "
            f"{c:6.2f} {c / base_cpu:9.3f}x"
        )
    print(
        "CPU s: CPU seconds of this process and everything it started (Ray's processes, the "
        "workers, the plain process) during the case"
    )
    print(
        f"CPU seconds of the decoding process alone, median: plain process "
        f"{med(cpu['plain']):.3f}, this process {med(cpu['direct']):.3f} (with Ray's threads), "
        f"Ray actor {med(cpu['direct in actor']):.3f}"
    )
    print(
        f"Ray worker niceness: {nice}; Ray apply rounds with a restarted worker: "
        f"{restarts or 'none'}"
    )
    ray_m, inline_m = med(times["apply ray"]), med(times["apply inline"])
    print(
        f"\nRay apply over direct in a plain process: {100 * (ray_m / base - 1):+.1f}% (goal < +5%)"
        f"\nRay apply over direct in this process: "
        f"{100 * (ray_m / med(times['direct, this process']) - 1):+.1f}%; over direct in a Ray "
        f"actor: {100 * (ray_m / med(times['direct, Ray actor']) - 1):+.1f}%; over the inline "
        f"apply: {100 * (ray_m / inline_m - 1):+.1f}%"
    )
    # paired ratio per round: both measured within seconds of each other
    paired = [r / d for r, d in zip(times["apply ray"], times[base_name], strict=True)]
    print(
        f"CPU of the Ray apply over the plain process's case: "
        f"{100 * (med(tree['apply ray']) / base_cpu - 1):+.1f}% (whole process tree; Ray's "
        "idle processes count in every case)"
    )
    print(
        f"per-round ratio apply ray / plain process: {' '.join(f'{x:.3f}' for x in paired)} "
        f"(median {statistics.median(paired):.3f})"
    )

    gen_s = statistics.median(
        sum(a.outcomes[j].meta["provider_seconds"] for j in a.generate_ids()) for a in ray_applied
    )
    print(
        f"Ray apply wall over the decoding inside its own jobs: {100 * (ray_m / gen_s - 1):+.1f}%"
        " (everything apply and Ray add, without the decoding noise between cases)"
    )
    print("\nWhere the Ray apply's time goes (median over warm rounds, seconds per apply):")
    rows = breakdown(ray_applied)
    irows = breakdown(inline_applied)
    print(f"  {'part':58} {'ray':>7} {'inline':>7}")
    for (label, v), (_, iv) in zip(rows, irows, strict=True):
        print(f"  {label:58} {v:7.3f} {iv:7.3f}")

    print("\nOne-off costs (not in the figures above):")
    print(f"  build the tiny model                        {build_s:6.2f} s")
    print(f"  load the model in this process              {load_s:6.2f} s")
    print(f"  first run_job pass (decoding + llg tokenizer, grammars) {first_pass_s:6.2f} s")
    print(f"  import ray                                  {import_ray_s:6.2f} s")
    print(f"  ray.init (2 CPUs, no dashboard)             {ray_init_s:6.2f} s")
    print(f"  cold Ray apply (actor start + model load + warm-up) {cold.wall:6.2f} s")
    print(f"    of which its first shard, submit to result {cold_first_job:6.2f} s")
    print(f"      inside the job (model load, llg tokenizer, decoding) {cold_first_exec:6.2f} s")
    print(f"    over a warm Ray apply                     {cold.wall - ray_m:+6.2f} s")
    print(f"\nRay outputs identical to direct: {same}/{n_rows} rows; valid: {valid}/{n_rows}")
    print(f"load average at end: {load_avg()}; total {time.perf_counter() - t_all:.0f} s")


# The baseline: provider.generate in a loop in a process that never imports Ray.
PLAIN = """
import os, pickle, sys, time
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import torch
torch.set_num_threads(1)
from llmspec.providers import load_provider
settings, recorded = pickle.load(open(sys.argv[1], "rb"))
provider = load_provider(settings)
for reqs in recorded:
    provider.generate(reqs)
assert "ray" not in sys.modules
print("ready", flush=True)
for _ in sys.stdin:
    t, c = time.perf_counter(), time.process_time()
    for reqs in recorded:
        provider.generate(reqs)
    print(time.perf_counter() - t, time.process_time() - c, flush=True)
"""


def _nice(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16]
    except (OSError, IndexError):
        return "?"


class DirectActor:
    """provider.generate over the recorded requests, timed inside a Ray worker process."""

    def __init__(self, settings: dict, recorded: list) -> None:
        import torch

        from llmspec.providers import load_provider

        torch.set_num_threads(1)
        self.provider = load_provider(settings)
        self.recorded = recorded

    def run(self) -> tuple[float, float]:
        t, c = time.perf_counter(), time.process_time()
        for reqs in self.recorded:
            self.provider.generate(reqs)
        return time.perf_counter() - t, time.process_time() - c


def breakdown(applied: list) -> list[tuple[str, float]]:
    """Split each apply by the driver's job timestamps and the job's own timings."""
    parts: dict[str, list[float]] = {}

    def add(label: str, v: float) -> None:
        parts.setdefault(label, []).append(v)

    for a in applied:
        gens = a.generate_ids()
        provider = sum(a.outcomes[j].meta["provider_seconds"] for j in gens)
        execute = sum(a.outcomes[j].seconds for j in gens)
        trip = sum(a.ends[j] - a.starts[j] for j in gens)
        ordered = sorted(a.starts, key=a.starts.get)
        gaps = sum(
            a.starts[nxt] - a.ends[prev]
            for prev, nxt in zip(ordered, ordered[1:], strict=False)
            if prev in a.ends
        )
        others = [j for j in a.outcomes if not j.startswith("generate.")]
        other = sum(a.ends[j] - a.starts[j] for j in others if j in a.starts)
        first = min(a.starts.values()) - a.t0
        last = a.t0 + a.wall - max(a.ends.values())
        add("provider.generate, inside the job (decoding)", provider)
        add("rest of the generate job (templating, re-validation)", execute - provider)
        add("generate: start -> outcome, less the job (trip + store.put)", trip - execute)
        add("outcome of one job -> start of the next (driver loop)", gaps)
        add("the other jobs (score, summary, gate), start -> outcome", other)
        add("apply start -> first job (store pre-pass, pools)", first)
        add("last outcome -> apply end (lock)", last)
        add("apply wall", a.wall)
    return [(k, statistics.median(v)) for k, v in parts.items()]


if __name__ == "__main__":
    main()
