"""What `apply` costs beyond the work of the jobs themselves.

    .venv/bin/python bench/apply_overhead.py [--quick | --smoke] [--jobs N] [--reps N]

Part 1 (per-job orchestration overhead, in-process runner, through the Python API): one echo
model over a JSONL dataset of N rows in one-row shards (N generate jobs, then the jobs that
score them with `exact_match`, sum the scores up and check the gate: one score job per shard at
the time of writing, so 2N + 2 jobs); N = 10,000 (`--quick`: 1,000). Each repetition
starts from an empty .llmspec/ and no lock, then runs load_project -> compile_project ->
make_plan -> apply_plan(InlineRunner, Store). `work` is the time spent inside
llmspec.jobs.run_job (wrapped), less the dependency outputs it reads from the store while it
runs (a job reads them when it asks: that is orchestration, not work); overhead per job =
(apply wall - work) / jobs. Then the same project is planned and applied again with nothing to
run ("no-op"). One more, instrumented, repetition splits the overhead by where it goes (store
writes, store reads, run log, lock...).

Part 2 (`llmspec apply` with nothing to run, whole process): after a first apply, time
`llmspec apply` next to `python -c pass`, `llmspec --help` and `llmspec plan` on the same project,
in interleaved rounds: an echo-only version of the example project and the 10 x 10 x 10 grid
of bench/plan_speed.py (1,000 generate jobs; `--quick`: 5 x 5 x 4). The first apply runs in-process
(`--runner inline`); the timed ones use the default runner, which starts nothing when there is
nothing to run.

Part 3 (the store's writes): Store.put, which appends to one pack file and its index, next to
one file per result as the store wrote before the pack (a temp file and a rename each) and a
leaner variant of that (a temp name of its own, the 256 folders made once), 2,000 results each
(`--quick`: 1,000; `--smoke`: 100).

`--smoke` (50 jobs, a 2 x 2 x 2 grid, 100 records, 1 round each) runs in seconds: it checks that
the benchmark runs, its figures mean little.

Targets (from the issue): overhead under 1 ms per job; no-op `llmspec apply` under 1 s.
Projects live in a temporary folder; the repository is not touched.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _projects as P  # noqa: E402

import llmspec.apply as apply_mod  # noqa: E402
from llmspec.compile import compile_project  # noqa: E402
from llmspec.hashing import HashCache  # noqa: E402
from llmspec.lock import lock_digest, read_lock  # noqa: E402
from llmspec.plan import make_plan  # noqa: E402
from llmspec.project import load_project  # noqa: E402
from llmspec.runner.inline import InlineRunner  # noqa: E402
from llmspec.store import Store  # noqa: E402

WORK = ["llmspec.store:Store.get", "llmspec.jobs:run_job"]
BREAKDOWN = [  # dependencies first, so that from-imports pick up the wrapped functions
    "llmspec.store:Store.put",
    "llmspec.store:Store.get",
    "llmspec.store:Store.keys",
    "llmspec.lock:read_lock",
    "llmspec.lock:render_lock",
    "llmspec.lock:write_lock",
    "llmspec.apply:RunLog.write",
    "llmspec.apply:update_lock",
    "llmspec.runner.inline:InlineRunner.run",
    "llmspec.jobs:run_job",
    "llmspec.apply:apply_plan",
]
WHAT = {
    "Store.put": "store write: canonical JSON + digest + append to the pack and its index",
    "Store.get (in run_job)": "read dependency outputs back from the store, as a job asks",
    "Store.get (in update_lock)": "update_lock re-reads every stored result",
    "Store.keys": "list the store (read the index, one byte of the pack per entry)",
    "RunLog.write": "run log: json.dumps + write + flush, 2 per job",
    "render_lock": "render_lock: model_dump + indented json.dumps",
    "write_lock": "write_lock: compare bytes, temp file, fsync, rename",
    "read_lock": "read_lock: parse + validate the lock (pydantic)",
    "update_lock": "update_lock itself: LockedJob models, facts",
    "InlineRunner.run": "runner loop: blocked_by, Deps, execute, Outcome, callbacks",
    "apply_plan": "apply_plan itself: pre-pass loop, RunLog open, report",
}


def work_of(t: P.Timers) -> float:
    """Seconds inside run_job, less the store reads it made for its dependencies."""
    inside = sum(s for k, s in t.seconds.items() if k.startswith("run_job"))
    return inside - t.seconds.get("Store.get (in run_job)", 0.0)


def exclusive(t: P.Timers) -> dict[str, float]:
    """Seconds spent in each wrapped function minus the wrapped functions it called."""
    out = {}
    for key, sec in t.seconds.items():
        name = key.split(" (in ")[0]
        children = sum(s for k, s in t.seconds.items() if k.endswith(f" (in {name})"))
        out[key] = sec - children
    return out


def one_apply(project: Path, breakdown: bool) -> dict:
    """Fresh state, then load, compile, plan and apply in this process; then a no-op round."""
    P.reset_state(project)
    t = P.Timers()
    t.wrap_all(BREAKDOWN if breakdown else WORK)
    try:
        t0 = time.perf_counter()
        rp = load_project(project)
        t1 = time.perf_counter()
        store = Store(rp.root)
        cache = HashCache(store.cache_path("hashes.json"))
        graph = compile_project(rp, cache)
        cache.save()
        t2 = time.perf_counter()
        stored = store.keys()  # listed once for plan and apply, as `llmspec apply` does
        plan = make_plan(graph, read_lock(rp.root), stored, lock_digest(rp.root))
        t3 = time.perf_counter()
        report = apply_mod.apply_plan(plan, graph, store, InlineRunner(), stored=stored)
        t4 = time.perf_counter()
    finally:
        t.restore()
    if not report.ok or len(report.done) != len(graph.jobs):
        raise RuntimeError(f"apply did not finish every job: {report}")
    # nothing to run: plan against the full store and the new lock, apply the empty plan
    t_noop = P.Timers()
    t_noop.wrap_all(BREAKDOWN if breakdown else WORK)
    try:
        n0 = time.perf_counter()
        stored = store.keys()
        plan2 = make_plan(graph, read_lock(rp.root), stored, lock_digest(rp.root))
        n1 = time.perf_counter()
        report2 = apply_mod.apply_plan(plan2, graph, store, InlineRunner(), stored=stored)
        n2 = time.perf_counter()
    finally:
        t_noop.restore()
    if plan2.to_run or report2.done:
        raise RuntimeError("second apply was not a no-op")
    work = work_of(t)
    return {
        "jobs": len(report.done),
        "load": t1 - t0,
        "compile": t2 - t1,
        "plan": t3 - t2,
        "apply": t4 - t3,
        "work": work,
        "noop plan": n1 - n0,
        "noop apply": n2 - n1,
        "timers": t,
        "timers noop": t_noop,
    }


def breakdown_table(t: P.Timers, jobs: int, total: float) -> str:
    ex = exclusive(t)
    rows = []
    for key, sec in sorted(ex.items(), key=lambda kv: -kv[1]):
        if key.startswith("run_job"):
            continue  # the work itself
        name = key.split(" (in ")[0]
        what = WHAT.get(key) or WHAT.get(name) or key
        rows.append(
            [
                what,
                key,
                f"{t.calls[key]:,}",
                f"{sec:.3f}",
                f"{sec / jobs * 1000:.3f}",
                f"{sec / total:.0%}" if total > 0 else "",
            ]
        )
    return P.table(["where", "function (caller)", "calls", "s", "ms/job", "share"], rows)


def part1(tmp: Path, n: int, reps: int) -> None:
    project = P.write_shard_project(tmp / f"shards-{n}", n)
    print(f"Part 1: {n:,} one-row shards, in-process runner, median of {reps} applies\n")
    runs = [one_apply(project, breakdown=False) for _ in range(reps)]
    jobs = int(runs[0]["jobs"])

    def fig(key: str) -> list[float]:
        return [r[key] for r in runs]

    over = [(r["apply"] - r["work"]) / r["jobs"] for r in runs]
    ok = "ok" if P.med(over) < 1e-3 else "MISSED"
    rows = [
        ["jobs (all kinds)", f"{jobs:,}", "", ""],
        ["load_project", f"{P.med(fig('load')):.3f} s", P.spread(fig("load")), ""],
        [
            "compile_project",
            f"{P.med(fig('compile')):.3f} s",
            P.spread(fig("compile")),
            f"{P.med(fig('compile')) / jobs * 1e6:.0f} us/job",
        ],
        [
            "make_plan (empty store, no lock)",
            f"{P.med(fig('plan')):.3f} s",
            P.spread(fig("plan")),
            "",
        ],
        ["apply_plan wall", f"{P.med(fig('apply')):.2f} s", P.spread(fig("apply")), ""],
        [
            "  work inside run_job",
            f"{P.med(fig('work')):.2f} s",
            P.spread(fig("work")),
            f"{P.med(fig('work')) / P.med(fig('apply')):.0%} of apply",
        ],
        ["  work per job", f"{P.med(fig('work')) / jobs * 1000:.3f} ms", "", ""],
        [
            "overhead per job = (apply - work) / jobs",
            f"{P.med(over) * 1000:.3f} ms",
            f"{min(over) * 1000:.3f}-{max(over) * 1000:.3f}",
            f"target < 1 ms: {ok}",
        ],
        [
            "overhead / work",
            f"{P.med([o * jobs / r['work'] for o, r in zip(over, runs, strict=True)]):.1f}x",
            "",
            "",
        ],
        [
            "no-op make_plan (full store + lock)",
            f"{P.med(fig('noop plan')):.3f} s",
            P.spread(fig("noop plan")),
            "",
        ],
        [
            "no-op apply_plan (nothing to run)",
            f"{P.med(fig('noop apply')):.3f} s",
            P.spread(fig("noop apply")),
            f"{P.med(fig('noop apply')) / jobs * 1e6:.0f} us/job",
        ],
    ]
    print(P.table(["figure", "median", "min-max (ms)", "note"], rows))

    b = one_apply(project, breakdown=True)
    t = b["timers"]
    total = b["apply"] - b["work"]
    print(
        f"\nWhere the overhead goes: one more apply, every part wrapped "
        f"(overhead {total / jobs * 1000:.3f} ms/job; exclusive times)\n"
    )
    print(breakdown_table(t, jobs, total))
    print(f"\nThe no-op apply_plan of that run ({b['noop apply']:.3f} s):\n")
    print(breakdown_table(b["timers noop"], jobs, b["noop apply"]))


def part2(tmp: Path, reps: int, grid_shape: tuple[int, int, int]) -> None:
    echo = P.write_echo_example(tmp / "echo-example")
    grid = P.write_grid_project(tmp / "grid", *grid_shape)
    n_grid = grid_shape[0] * grid_shape[1] * grid_shape[2]
    for proj in (echo, grid):  # the first apply: runs everything, in this process's way
        P.reset_state(proj)
        P.run_cmd([P.LLMSPEC, "apply", str(proj), "-q", "--runner", "inline"], cwd=tmp)
    for proj in (echo, grid):  # now it really has nothing to do
        p = P.subprocess.run([P.LLMSPEC, "apply", str(proj)], capture_output=True, text=True)
        if "Apply: 0 ran, 0 reused" not in p.stdout:
            raise RuntimeError(f"apply of {proj.name} was not a no-op:\n{p.stdout[-500:]}")
    cases = {
        "python -c pass": lambda: P.run_cmd([P.PYTHON, "-c", "pass"], cwd=tmp),
        "llmspec --help": lambda: P.run_cmd([P.LLMSPEC, "--help"], cwd=tmp),
        "plan echo-example (no changes)": lambda: P.run_cmd(
            [P.LLMSPEC, "plan", str(echo)], cwd=tmp
        ),
        "apply echo-example (nothing to run)": lambda: P.run_cmd(
            [P.LLMSPEC, "apply", str(echo)], cwd=tmp
        ),
        f"plan grid {n_grid} (no changes)": lambda: P.run_cmd(
            [P.LLMSPEC, "plan", str(grid)], cwd=tmp
        ),
        f"apply grid {n_grid} (nothing to run)": lambda: P.run_cmd(
            [P.LLMSPEC, "apply", str(grid)], cwd=tmp
        ),
    }
    print(
        "\nPart 2: `llmspec apply` with nothing to run, whole process, "
        f"median of {reps} interleaved rounds\n"
    )
    res = P.interleaved(cases, reps, {})
    base = P.med(res["python -c pass"])
    help_ = P.med(res["llmspec --help"])
    rows = []
    for name, xs in res.items():
        target = "< 1000" if name.startswith("apply") else ""
        verdict = ("ok" if P.med(xs) < 1.0 else "MISSED") if target else ""
        rows.append(
            [
                name,
                f"{P.med(xs) * 1000:.0f}",
                P.spread(xs),
                f"{P.med(xs) / base:.1f}x",
                f"{P.med(xs) / help_:.1f}x",
                target,
                verdict,
            ]
        )
    print(P.table(["case", "median ms", "min-max", "/ python", "/ --help", "target", ""], rows))
    for label, a, p in (
        ("echo-example", "apply echo-example (nothing to run)", "plan echo-example (no changes)"),
        (
            f"grid {n_grid}",
            f"apply grid {n_grid} (nothing to run)",
            f"plan grid {n_grid} (no changes)",
        ),
    ):
        print(f"  apply / plan, {label}: {P.med(res[a]) / P.med(res[p]):.2f}x")

    print(
        f"\nWhere a no-op `llmspec apply` spends its time (fresh interpreter, median of {reps}; "
        "cumulative ms, nested calls marked `(in caller)`)\n"
    )
    probes: dict[str, list[dict]] = {"echo-example": [], f"grid {n_grid}": []}
    for _ in range(reps):
        probes["echo-example"].append(P.cli_probe(["apply", str(echo)], CLI_WRAP, cwd=tmp))
        probes[f"grid {n_grid}"].append(P.cli_probe(["apply", str(grid)], CLI_WRAP, cwd=tmp))
    keys: list[str] = []
    for runs in probes.values():
        for r in runs:
            keys += [k for k in r["seconds"] if k not in keys]
    labels = list(probes)

    def m(label: str, f) -> str:
        return f"{P.med([f(r) for r in probes[label]]) * 1000:.0f}"

    rows = [["process wall"] + [m(lb, lambda r: r["wall"]) for lb in labels]]
    rows.append(
        ["import llmspec.cli"] + [m(lb, lambda r: r["import llmspec.cli"]) for lb in labels]
    )
    rows.append(["main()"] + [m(lb, lambda r: r["main()"]) for lb in labels])
    order = sorted(
        keys, key=lambda k: -P.med([r["seconds"].get(k, 0.0) for r in probes[labels[-1]]])
    )
    for k in order:
        rows.append([f"  {k}"] + [m(lb, lambda r, k=k: r["seconds"].get(k, 0.0)) for lb in labels])

    def rest(r: dict) -> float:
        top = sum(s for k, s in r["seconds"].items() if " (in " not in k)
        return r["main()"] - top

    rows.append(["  rest of main(): lazy imports, click, output"] + [m(lb, rest) for lb in labels])
    print(P.table(["stage"] + labels, rows))
    for lb in labels:
        r = probes[lb][0]
        if r["exit"] not in (0, None) or "0 ran" not in r["out"]:
            raise RuntimeError(f"{lb}: `llmspec apply` exited {r['exit']}: {r['out'][-300:]}")


CLI_WRAP = [  # the stages, and inside them what a no-op apply does
    "llmspec.cli.run_cmds:compile_path",
    "llmspec.project:load_project",
    "llmspec.load:load_files",
    "llmspec.validate:validate_files",
    "llmspec.resolve:resolve_project",
    "llmspec.compile:compile_project",
    "llmspec.store:Store.keys",
    "llmspec.store:Store.get",
    "llmspec.lock:read_lock",
    "llmspec.lock:render_lock",
    "llmspec.lock:write_lock",
    "llmspec.plan:make_plan",
    "llmspec.plan:render_text",
    "llmspec.apply:update_lock",
    "llmspec.apply:apply_plan",
    "llmspec.results:collect_results",
]


def part3(tmp: Path, n: int, reps: int) -> None:
    """Store.put (the pack file) next to one file per result, as the store wrote before."""
    import hashlib
    import os

    from llmspec.fsutil import write_atomic
    from llmspec.hashing import canonical, digest

    out = {"rows": [{"row": 1, "repeat": 0, "expected": "Q: q1", "output": "Q: q1"}]}
    meta = {"seconds": 0.0001, "latency": [0.0], "observed": {}}

    def keys(tag: str) -> list[str]:
        return ["sha256:" + hashlib.sha256(f"{tag}{i}".encode()).hexdigest() for i in range(n)]

    def record(k: str) -> bytes:
        rec = {"job": "generate.s.echo.1", "kind": "generate", "key": k, "output": out}
        return canonical(rec | {"digest": digest(out), "meta": meta}).encode()

    def pack(r: int) -> float:
        store = Store(tmp / f"put-{r}")
        ks = keys(f"a{r}")
        t0 = time.perf_counter()
        for k in ks:
            store.put("generate.s.echo.1", "generate", k, out, meta)
        return (time.perf_counter() - t0) / n

    def file_per_result(r: int) -> float:
        """What Store.put did before the pack: a temp file and a rename per result."""
        base = tmp / f"files-{r}" / ".llmspec" / "store"
        made: set[Path] = set()
        ks = keys(f"b{r}")
        t0 = time.perf_counter()
        for k in ks:
            h = k[7:]
            path = base / h[:2] / f"{h}.json"
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            write_atomic(path, record(k), durable=False, make_dirs=False)
        return (time.perf_counter() - t0) / n

    def plain_tmp(r: int) -> float:
        base = tmp / f"plain-{r}"
        for i in range(256):
            (base / f"{i:02x}").mkdir(parents=True)
        ks = keys(f"c{r}")
        pid = os.getpid()
        t0 = time.perf_counter()
        for k in ks:
            h = k[7:]
            path = f"{base}/{h[:2]}/{h}.json"
            fd = os.open(f"{path}.{pid}.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, record(k))
            os.close(fd)
            os.replace(f"{path}.{pid}.tmp", path)
        return (time.perf_counter() - t0) / n

    cases = {
        "one file per result (Store.put before)": file_per_result,
        "  own tmp name + rename, folders made once": plain_tmp,
        "Store.put: append to the pack + index": pack,
    }
    res: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(reps):
        for name, fn in cases.items():
            res[name].append(fn(r))
    base = P.med(res["one file per result (Store.put before)"])
    print(f"\nPart 3: persisting {n:,} job results, median of {reps} interleaved rounds\n")
    rows = [[k, f"{P.med(v) * 1000:.3f}", f"{P.med(v) / base:.2f}"] for k, v in res.items()]
    print(P.table(["how", "ms per result", "/ file per result"], rows))
    check = Store(tmp / "put-0")
    if len(check.keys()) != n or check.get(keys("a0")[-1]) is None:
        raise RuntimeError("the pack store lost results")
    print(
        "  (the same canonical record and digest in each; nothing fsynced; the pack's results"
        "\n  read back whole: checked)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="1,000 jobs, 5 x 5 x 4 grid")
    size.add_argument("--smoke", action="store_true", help="50 jobs, 2 x 2 x 2 grid, 1 round")
    ap.add_argument("--jobs", type=int, default=None, help="one-row shards (default 10,000)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, smoke 1)")
    ap.add_argument("--dir", default=None, help="where to write the projects (default: a temp dir)")
    args = ap.parse_args()
    if args.smoke:
        n, reps, reps2, grid, records = args.jobs or 50, args.reps or 1, 1, (2, 2, 2), 100
    elif args.quick:
        n, reps, reps2, grid, records = args.jobs or 1000, args.reps or 3, 3, (5, 5, 4), 1000
    else:
        n, reps, reps2, grid, records = args.jobs or 10_000, args.reps or 3, 5, (10, 10, 10), 2000
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmspec-bench-", dir=args.dir) as tmp:
        part1(Path(tmp), n, reps)
        part2(Path(tmp), reps2, grid)
        part3(Path(tmp), records, 1 if args.smoke else 3)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
