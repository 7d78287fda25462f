"""Rows per second with 2 Ray replicas of a model vs 1, on this machine (2 cores).

The project of bench/ray_orchestration.py (tiny random Llama 4x256, JSON-Schema-constrained
prompt, batch_size 16, temperature 0.7 with per-row seeds) over --rows tickets in shards of 16,
so every replica has several shards to do. Ray is started once with 2 CPUs. Cases (the
`replicas` and `cpus` of the model's spec, the profile's `reserve_cpus` and `threads`):

- **1 replica, 1 thread**: replicas 1, cpus 1, reserve_cpus 0, threads 1.
- **2 replicas, 1 thread each**: replicas 2, cpus 1, reserve_cpus 0, threads 1: each replica
  1 CPU.
- **1 replica, 2 threads**: replicas 1, cpus 2, reserve_cpus 0, threads 2: torch uses both
  cores.
- **2 replicas, 2 threads each**: replicas 2, cpus 1, threads 2: 4 threads on 2 cores, what a
  replica got before threads had their own setting (torch's own default: a thread per core).
- **2 replicas, default profile**: replicas 2, cpus 1, reserve_cpus 1 and threads unset (the
  defaults): the model pool shares 1 CPU, so Ray gives each replica 0.5 CPU, and each gets 1
  thread (the default, or OMP_NUM_THREADS), so both replicas still run at once.

Model replicas cannot stay up across cases (together they would claim more than the 2 CPUs),
so each visit of a case starts its actors, warms every replica with one shard and runs the
other jobs once over empty shards, so that whatever they need is up and imported (untimed),
applies --applies times on a fresh store (timed), and kills them. The cases take turns, the
order rotating each round; medians over all applies of a case.

    .venv/bin/python bench/ray_scaleout.py [--quick | --smoke] [--rows 160] [--rounds 2]
        [--applies 2]

`--smoke` (16 rows in 2 shards of 8, 24 tokens, 1 round of 1 apply, and only the cases the
report compares: 1 replica, 1 thread; 2 replicas, 1 thread each; 2 replicas, 2 threads each)
checks that the benchmark runs; its figures mean little, and most of its time is Ray starting
actors. It runs Ray's workers at niceness 0 (unless --worker-niceness says otherwise), so that
a busy machine does not starve them.

Goals: 2 replicas >= 1.8x the rows per second of 1 replica on a quiet machine; 1 thread per
replica no slower than 2 when the replicas fill the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import _tiny  # noqa: F401  (sets HF_HUB_OFFLINE and sys.path)
from _tiny import (
    build_model,
    compile_graph,
    fresh_apply,
    generate_jobs,
    load_avg,
    med,
    rng,
    start_ray,
    write_ticket_project,
)


@dataclass
class Case:
    name: str
    replicas: int
    cpus: float
    reserve: float
    threads: int | None = None  # the profile's `threads`; None: the default (1)
    walls: list[float] = field(default_factory=list)  # apply_plan
    spans: list[float] = field(default_factory=list)  # first generate start -> last outcome
    shard_s: list[float] = field(default_factory=list)  # decoding per shard, in the actor
    busy: list[float] = field(default_factory=list)  # replica-seconds in jobs / (n x span)
    cpu_share: list[float] = field(default_factory=list)  # replica CPU s / (n x apply wall)
    start_s: list[float] = field(default_factory=list)  # actors up + one shard each
    tail: list[float] = field(default_factory=list)  # apply wall outside the generate span
    score: list[float] = field(default_factory=list)  # score job, start -> outcome
    shape: tuple = ()
    restarts: int = 0
    nice: str = "?"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (0 if it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nice_of(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[16]
    except (OSError, IndexError):
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="128 rows (8 shards), 1 round")
    size.add_argument(
        "--smoke", action="store_true", help="16 rows (2 shards), 24 tokens, 1 apply, 3 cases"
    )
    ap.add_argument(
        "--cases",
        default=None,
        help="numbers of the cases to run, comma-separated (1-5, in the docstring's order; "
        "1 and 2 always run: the report compares with them)",
    )
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--shard-rows", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--applies", type=int, default=2, help="timed applies per visit of a case")
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument(
        "--skip-two-threads", action="store_true", help="leave out '1 replica, 2 threads'"
    )
    ap.add_argument(
        "--worker-niceness",
        type=int,
        default=None,
        help="RAY_worker_niceness for the Ray workers (Ray's default: 15)",
    )
    args = ap.parse_args()
    if args.quick:
        args.rows, args.rounds = 128, 1
    if args.smoke:
        args.rows, args.shard_rows, args.rounds, args.applies, args.max_tokens = 16, 8, 1, 1, 24
        if args.worker_niceness is None:  # not starved by the rest of a busy machine
            args.worker_niceness = 0
    if args.worker_niceness is not None:
        os.environ["RAY_worker_niceness"] = str(args.worker_niceness)
    t_all = time.perf_counter()
    print(f"load average at start: {load_avg()}", flush=True)

    import ray

    from llmspec.runner.profile import RunnerProfile
    from llmspec.runner.ray import RayRunner

    cases = [
        Case("1 replica, 1 thread", 1, 1, 0, 1),
        Case("2 replicas, 1 thread each", 2, 1, 0, 1),
        Case("1 replica, 2 threads", 1, 2, 0, 2),
        Case("2 replicas, 2 threads each", 2, 1, 0, 2),
        Case("2 replicas, default profile", 2, 1, 1, None),
    ]
    if args.skip_two_threads:
        cases = [c for c in cases if c.name != "1 replica, 2 threads"]
    if args.cases:
        keep = {1, 2} | {int(x) for x in args.cases.split(",")}
        cases = [c for i, c in enumerate(cases, 1) if i in keep]
    if args.smoke:  # the comparisons the report is about, and no more
        cases = [c for c in cases if c.replicas == 2 and c.reserve == 0 or c.threads == 1]
        cases = [c for c in cases if c.name != "1 replica, 2 threads"]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, _ = build_model(tmp / "model")
        graphs, projects = {}, {}
        for i, c in enumerate(cases):
            projects[c.name] = write_ticket_project(
                tmp / f"p{i}",
                model,
                args.rows,
                args.shard_rows,
                replicas=c.replicas,
                cpus=c.cpus,
                max_tokens=args.max_tokens,
            )
            graphs[c.name] = compile_graph(projects[c.name])
        ray_init_s = start_ray(2)
        n_shards = -(-args.rows // args.shard_rows)
        print(
            f"model {_tiny.ARCH} {_tiny.LAYERS}x{_tiny.HIDDEN}, {args.rows} rows in {n_shards} "
            f"shards of {args.shard_rows}, max_tokens {args.max_tokens}; Ray 2 CPUs "
            f"(ray.init {ray_init_s:.1f} s); {args.rounds} rounds x {args.applies} applies",
            flush=True,
        )

        def visit(c: Case) -> None:
            graph, project = graphs[c.name], projects[c.name]
            runner = RayRunner(RunnerProfile(reserve_cpus=c.reserve, threads=c.threads))
            gens = generate_jobs(graph)
            warm: list = []
            t0 = time.perf_counter()
            # one shard per replica: every actor up, its model loaded, its grammar compiled
            runner.run(graph, gens[: c.replicas], _no_deps, lambda _id: None, warm.append)
            c.start_s.append(time.perf_counter() - t0)
            assert all(o.status == "done" for o in warm), warm
            # and the other jobs once over empty shards, wherever they run (the driver, or a
            # worker of their own that must not start inside a timed apply); outcomes unused
            rest = [j for j in graph.jobs.values() if j.kind != "generate"]
            runner.run(graph, rest, _empty, lambda _id: None, lambda _o: None)
            c.shape = runner.shapes["model:tiny"]
            for _ in range(args.applies):
                measure(c, graph, project, runner)
            runner.close()

        def measure(c: Case, graph, project: Path, runner: RayRunner) -> None:
            actors = runner.pools["model:tiny"]
            pids = ray.get([a.pid.remote() for a in actors])
            cpu0 = [cpu_seconds(p) for p in pids]
            a = fresh_apply(project, graph, runner)
            cpu1 = [cpu_seconds(p) for p in pids]
            if ray.get([x.pid.remote() for x in actors]) != pids:
                c.restarts += 1  # a worker was killed and restarted: not warm
            c.nice = nice_of(pids[0])
            ids = a.generate_ids()
            span = a.generate_span()
            c.walls.append(a.wall)
            c.tail.append(a.wall - span)
            c.score += [a.ends[j] - a.starts[j] for j in a.outcomes if j.startswith("score.")]
            c.spans.append(span)
            c.shard_s += [a.outcomes[j].meta["provider_seconds"] for j in ids]
            c.busy.append(sum(a.outcomes[j].seconds for j in ids) / (c.replicas * span))
            c.cpu_share.append(sum(y - x for x, y in zip(cpu0, cpu1, strict=True)) / a.wall)
            print(
                f"    {c.name:28} apply {a.wall:6.2f} s  {args.rows / a.wall:5.1f} rows/s  "
                f"(load {load_avg().split()[0]})",
                flush=True,
            )

        for r in range(args.rounds):
            print(f"  round {r + 1}/{args.rounds}", flush=True)
            k = r % len(cases)
            for c in cases[k:] + cases[:k]:
                visit(c)
        ray.shutdown()

    # -- report -----------------------------------------------------------------------------
    base = cases[0]
    base_rate = args.rows / med(base.walls)
    base_gen = args.rows / med(base.spans)
    print()
    print(
        f"{'case':28} {'cpus/replica':>12} {'threads':>7} {'apply s':>8} {'min-max':>11} "
        f"{'rows/s':>7} {'ratio':>6} {'gen rows/s':>10} {'ratio':>6} {'s/shard':>7} "
        f"{'busy':>5} {'CPU':>5}"
    )
    for c in cases:
        rate = args.rows / med(c.walls)
        gen = args.rows / med(c.spans)
        cpus = c.shape[1] if c.shape else c.cpus
        threads = c.threads or 1
        print(
            f"{c.name:28} {cpus:12g} {threads:7d} {med(c.walls):8.2f} {rng(c.walls):>11} "
            f"{rate:7.1f} {rate / base_rate:5.2f}x {gen:10.1f} {gen / base_gen:5.2f}x "
            f"{statistics.median(c.shard_s):7.2f} {med(c.busy):5.2f} {med(c.cpu_share):5.2f}"
        )
    print(
        "\nrows/s: rows / apply_plan wall (with the score job and the lock); gen rows/s: rows /"
        " (first generate start -> last generate outcome)."
        f"\ns/shard: median decoding time of one {args.shard_rows}-row shard inside a replica. "
        "busy: share of "
        "the generate span each replica spent in a job. CPU: CPU seconds of all replicas / "
        "apply wall (2.0 = both cores)."
    )
    two = next(c for c in cases if c.name == "2 replicas, 1 thread each")
    print(
        f"\n2 replicas / 1 replica, rows/s: {med(base.walls) / med(two.walls):.2f}x "
        f"(goal >= 1.8x on a quiet machine); per sample: "
        + " ".join(f"{b / t:.2f}" for b, t in zip(base.walls, two.walls, strict=True))
    )
    named = {c.name: c for c in cases}
    over = named.get("2 replicas, 2 threads each")
    if over is not None:
        print(
            f"2 replicas, 1 thread each / 2 threads each, rows/s: "
            f"{med(over.walls) / med(two.walls):.2f}x"
        )
    if "1 replica, 2 threads" in named:
        wide = named["1 replica, 2 threads"]
        print(f"1 replica, 2 threads / 1 thread, rows/s: {med(base.walls) / med(wide.walls):.2f}x")
    print(
        f"per-shard decoding, 2 replicas vs 1: "
        f"{statistics.median(two.shard_s) / statistics.median(base.shard_s):.2f}x slower each"
    )
    print(
        "apply wall outside the generate span, median: "
        + ", ".join(f"{c.name} {med(c.tail):.2f} s" for c in cases)
        + f"; of which the score job: {med([x for c in cases for x in c.score]):.2f} s"
    )
    print(
        "actors up + one warm-up shard per replica (untimed), median: "
        + ", ".join(f"{c.name} {med(c.start_s):.1f} s" for c in cases)
    )
    print(
        f"Ray worker niceness: {cases[0].nice}; applies with a restarted worker: "
        + (", ".join(f"{c.name} {c.restarts}" for c in cases if c.restarts) or "none")
    )
    print(f"load average at end: {load_avg()}; total {time.perf_counter() - t_all:.0f} s")


def _no_deps(job_id: str):
    raise AssertionError(f"generate jobs have no dependencies ({job_id})")


def _empty(job_id: str) -> tuple[dict, dict]:
    """A stand-in output for any dependency: a shard without rows."""
    return {"rows": []}, {}


if __name__ == "__main__":
    main()
