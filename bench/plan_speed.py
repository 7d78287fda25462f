"""How fast `llmspec plan` is, as a whole process in a fresh interpreter.

    .venv/bin/python bench/plan_speed.py [--quick | --smoke] [--reps N]

Projects (all written to a temporary folder; the repository is not touched):

- example: a copy of specs/ with its tiny model (built into the copy when specs/models/tiny is
  missing);
- grid: 10 echo models (different params) x 10 prompts x 10 JSONL datasets (20 rows, one shard
  each), one suite per (prompt, dataset) running every model: 1,000 generate jobs, plus the
  score, summary and gate jobs over them (3,100 jobs in all at the time of writing).
  `--quick`: 5 x 5 x 4 = 100 generate jobs. `--smoke`: 2 x 2 x 2, 1 round (a few seconds; it
  checks that the benchmark runs, its figures mean little).

Part 1 times whole processes side by side, in interleaved rounds (every case once per round), so
the noise of a shared machine falls on all of them alike; it prints medians and ratios to
`python -c pass`. "cold" removes .llmspec/cache (the file-hash cache) before each sample,
"warm" keeps it. These projects have no lock, so every plan lists every job as new; "committed
lock" plans the example with specs/llmspec.lock and an empty store (every job to restore).

Part 2 runs the same plan in a fresh interpreter, stage by stage, to show where the time goes,
and checks that ray, torch, transformers and guidance were never imported.

Targets (from the issue): example plan well under 1 s; grid plan (1,000 generate jobs) under 2 s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _projects as P  # noqa: E402

STAGED = r"""
import json, sys, time
T = [("start", time.perf_counter())]
def mark(name): T.append((name, time.perf_counter()))
import llmspec.cli
mark("import llmspec.cli")
from pathlib import Path
from llmspec.compile import compile_project
from llmspec.hashing import HashCache
from llmspec.load import load_files
from llmspec.lock import lock_digest, read_lock
from llmspec.plan import make_plan, render_text, to_saved
from llmspec.project import project_root
from llmspec.resolve import resolve_project
from llmspec.store import Store
from llmspec.validate import validate_files
mark("import plan modules")
path = sys.argv[1]
root = project_root(path)
files = load_files(path)
mark("load YAML")
vp = validate_files(files, root)
mark("validate")
rp = resolve_project(vp, root)
mark("resolve")
store = Store(rp.root)
cache = HashCache(store.cache_path("hashes.json"))
graph = compile_project(rp, cache)
cache.save()
mark("compile")
plan = make_plan(graph, read_lock(root), store.keys(), lock_digest(root))
mark("make_plan")
saved = to_saved(plan)
text = render_text(plan)
mark("render")
heavy = sorted(m for m in HEAVY if m in sys.modules)
stages = {b[0]: b[1] - a[1] for a, b in zip(T, T[1:])}
print(json.dumps({"stages": stages, "jobs": len(graph.jobs), "heavy": heavy,
                  "generate": sum(j.kind == "generate" for j in graph.jobs.values())}))
"""

PROBE_CLI = """
import sys
from llmspec.cli import main
sys.argv = ["llmspec", "plan", {path!r}]
try:
    main()
except SystemExit as e:
    RESULT["exit"] = e.code
"""


def staged(project: Path, cold: bool) -> dict:
    if cold:
        P.reset_state(project, store=False, lock=False)
    code = f"HEAVY = {P.HEAVY!r}\n" + STAGED
    t0 = P.time.perf_counter()
    p = subprocess.run([P.PYTHON, "-c", code, str(project)], capture_output=True, text=True)
    wall = P.time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    out = json.loads(p.stdout)
    out["wall"] = wall
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="100 generate jobs, 3 rounds")
    size.add_argument("--smoke", action="store_true", help="8 generate jobs, 1 round: does it run")
    ap.add_argument("--reps", type=int, default=None, help="rounds (default 7, quick 3, smoke 1)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.smoke else 3 if args.quick else 7)
    grid_shape = (2, 2, 2) if args.smoke else (5, 5, 4) if args.quick else (10, 10, 10)

    with tempfile.TemporaryDirectory(prefix="llmspec-bench-") as tmp:
        tmp = Path(tmp)
        example = P.copy_example(tmp / "example")
        locked = P.copy_example(tmp / "example-locked", with_lock=True)
        has_lock = (locked / "llmspec.lock").exists()
        grid = P.write_grid_project(tmp / "grid", *grid_shape)
        n_gen = grid_shape[0] * grid_shape[1] * grid_shape[2]

        plan_ex = [P.LLMSPEC, "plan", str(example)]
        plan_grid = [P.LLMSPEC, "plan", str(grid)]
        plan_locked = [P.LLMSPEC, "plan", str(locked)]
        for argv in (plan_ex, plan_grid, plan_locked):  # warm-up: OS file cache, .pyc, hash cache
            P.run_cmd(argv, cwd=tmp)

        cases = {
            "python -c pass": lambda: P.run_cmd([P.PYTHON, "-c", "pass"], cwd=tmp),
            "llmspec --help": lambda: P.run_cmd([P.LLMSPEC, "--help"], cwd=tmp),
            "plan example, cold cache": lambda: P.run_cmd(plan_ex, cwd=tmp),
            "plan example, warm cache": lambda: P.run_cmd(plan_ex, cwd=tmp),
            "plan example, committed lock": lambda: P.run_cmd(plan_locked, cwd=tmp),
            f"plan grid ({n_gen} gen), cold": lambda: P.run_cmd(plan_grid, cwd=tmp),
            f"plan grid ({n_gen} gen), warm": lambda: P.run_cmd(plan_grid, cwd=tmp),
        }
        before = {
            "plan example, cold cache": lambda: P.reset_state(example, store=False, lock=False),
            f"plan grid ({n_gen} gen), cold": lambda: P.reset_state(grid, store=False, lock=False),
        }
        print(f"Part 1: whole processes, median of {reps} interleaved rounds (ms)\n")
        res = P.interleaved(cases, reps, before)
        base = P.med(res["python -c pass"])
        help_ = P.med(res["llmspec --help"])
        target = {
            "plan example, cold cache": 1.0,
            "plan example, warm cache": 1.0,
            "plan example, committed lock": 1.0,
            f"plan grid ({n_gen} gen), cold": 2.0 if n_gen == 1000 else None,
            f"plan grid ({n_gen} gen), warm": 2.0 if n_gen == 1000 else None,
        }
        rows = []
        for name, xs in res.items():
            t = target.get(name)
            verdict = "" if t is None else ("ok" if P.med(xs) < t else "MISSED")
            rows.append(
                [
                    name,
                    f"{P.med(xs) * 1000:.0f}",
                    P.spread(xs),
                    f"{P.med(xs) / base:.1f}x",
                    f"{P.med(xs) / help_:.1f}x",
                    f"< {t * 1000:.0f}" if t else "",
                    verdict,
                ]
            )
        print(
            P.table(
                ["case", "median", "min-max", "/ python", "/ --help", "target", ""],
                rows,
            )
        )
        if not has_lock:
            print("  (specs/llmspec.lock is missing: `committed lock` ran without a lock)")

        print(f"\nPart 2: stages inside one fresh interpreter, median of {reps} (ms)\n")
        samples: dict[str, list[dict]] = {}
        for _ in range(reps):
            for label, proj, cold in (
                ("example warm", example, False),
                (f"grid {n_gen} cold", grid, True),
                (f"grid {n_gen} warm", grid, False),
            ):
                samples.setdefault(label, []).append(staged(proj, cold))
        labels = list(samples)
        stage_names = list(samples[labels[0]][0]["stages"])
        rows = []
        for st in stage_names:
            rows.append(
                [st]
                + [f"{P.med([s['stages'][st] for s in samples[lb]]) * 1000:.0f}" for lb in labels]
            )
        rows.append(
            ["sum in process"]
            + [
                f"{P.med([sum(s['stages'].values()) for s in samples[lb]]) * 1000:.0f}"
                for lb in labels
            ]
        )
        rows.append(
            ["interpreter start + exit"]
            + [
                f"{P.med([s['wall'] - sum(s['stages'].values()) for s in samples[lb]]) * 1000:.0f}"
                for lb in labels
            ]
        )
        rows.append(["jobs"] + [str(samples[lb][0]["jobs"]) for lb in labels])
        print(P.table(["stage"] + labels, rows))

        print("\nHeavy modules in sys.modules after the plan:")
        for lb in labels:
            print(f"  staged, {lb}: {samples[lb][0]['heavy'] or 'none'}")
        for label, proj in (("example", example), (f"grid {n_gen}", grid)):
            r = P.probe_modules(PROBE_CLI.format(path=str(proj)))
            print(f"  `llmspec plan` (cli main) on {label}: {r['heavy'] or 'none'}")
        print(
            f"  (checked: {', '.join(P.HEAVY)}; "
            "the issue forbids ray, torch, transformers and guidance)"
        )

        print(
            f"\nPart 3: YAML parsing of the grid's spec files, in-process, median of {3 * reps}\n"
        )
        yaml_parsers(grid, 3 * reps)


def yaml_parsers(project: Path, reps: int) -> None:
    """The loader's parser (ruamel.yaml, pure Python) next to libyaml's, on the same text."""
    from ruamel.yaml import YAML

    from llmspec.load import load_text

    texts = {f.name: f.read_text() for f in sorted(project.glob("*.yaml"))}
    size = sum(len(t.encode()) for t in texts.values())

    def timed(fn) -> float:
        t0 = P.time.perf_counter()
        for name, text in texts.items():
            fn(text, name)
        return P.time.perf_counter() - t0

    cases = {
        "llmspec.load.load_text (all of it)": lambda: timed(load_text),
        "ruamel.yaml pure parse(): events only": lambda: timed(
            lambda t, n: sum(1 for _ in YAML(typ="safe", pure=True).parse(t))
        ),
    }
    try:
        import yaml

        if getattr(yaml, "__with_libyaml__", False):
            cases["PyYAML CSafeLoader parse(): events only"] = lambda: timed(
                lambda t, n: sum(1 for _ in yaml.parse(t, Loader=yaml.CSafeLoader))
            )
    except ImportError:
        pass
    res = P.interleaved(cases, reps, {})
    base = P.med(res["llmspec.load.load_text (all of it)"])
    rows = [
        [name, f"{P.med(xs) * 1000:.1f}", P.spread(xs), f"{P.med(xs) / base:.3f}"]
        for name, xs in res.items()
    ]
    print(
        P.table(
            [f"{len(texts)} files, {size / 1024:.1f} KiB", "median ms", "min-max", "/ load_text"],
            rows,
        )
    )
    if "PyYAML CSafeLoader parse(): events only" not in res:
        print("  (PyYAML with libyaml is not installed: no C parser to compare)")


if __name__ == "__main__":
    main()
