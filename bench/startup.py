"""What `llmspec apply` costs before and around the work: one row, and nothing to run.

    .venv/bin/python bench/startup.py [--smoke] [--reps N] [--rows N]

Part 1 (one echo row, whole process, fresh .llmspec/ and no lock before each sample): the
same 3-job project (1 generate, 1 score, 1 gate) applied

- with `--runner inline` (this process, no Ray): the base;
- with no `--runner` (the default): a small plan, so it runs inline and says so;
- with `--runner local` (Ray forced): Ray starts on a thread while the plan prints, the
  model actor comes up, and score and gate run in the driver.

Goal (the issue): a one-row apply within 1.5x of the inline runner with the default runner.

Part 2 (`llmspec apply` with nothing to run, whole process, after a first apply): an echo
project of 1 row (3 jobs) and one of --rows one-row shards (1,002 jobs at 1,000 rows), both
with `--runner local` named, next to `python -c pass`. Nothing is run, so Ray is not imported
(checked). Goal: under 1 s.

Cases take turns in rounds (`_projects.interleaved`); medians and min-max per case. `--smoke`
runs every case once on small sizes, to prove the benchmark still works.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _projects as P  # noqa: E402


def _env(runner: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(P.REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("LLMSPEC_RUNNER", None)
    env.pop("RAY_ADDRESS", None)
    if runner is not None:
        env["LLMSPEC_RUNNER"] = runner
    return env


def apply_cmd(project: Path, *args: str, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one `llmspec apply` process, and what it printed."""
    argv = [P.PYTHON, "-m", "llmspec.cli", "apply", str(project), *args]
    t0 = time.perf_counter()
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return dt, p.stdout + p.stderr


def part1(tmp: Path, reps: int) -> dict[str, float]:
    project = P.write_shard_project(tmp / "one-row", 1)
    seen: dict[str, str] = {}

    def case(name: str, *args: str) -> float:
        dt, out = apply_cmd(project, *args, env=_env())
        seen[name] = out
        return dt

    cases = {
        "--runner inline": lambda: case("inline", "--runner", "inline"),
        "default (no --runner)": lambda: case("default"),
        "--runner local (Ray)": lambda: case("ray", "--runner", "local"),
    }
    before = {name: (lambda: P.reset_state(project)) for name in cases}
    print(f"Part 1: one echo row (3 jobs), whole process, median of {reps} rounds\n")
    res = P.interleaved(cases, reps, before)
    if "running inline: small plan" not in seen["default"]:
        raise RuntimeError("the default runner did not run the small plan inline")
    if "running inline" in seen["ray"]:
        raise RuntimeError("--runner local did not use Ray")
    base = P.med(res["--runner inline"])
    rows = []
    for name, xs in res.items():
        ratio = P.med(xs) / base
        goal = "<= 1.5x" if name.startswith("default") else ""
        verdict = ("ok" if ratio <= 1.5 else "MISSED") if goal else ""
        rows.append([name, f"{P.med(xs):.2f}", P.spread(xs), f"{ratio:.2f}x", goal, verdict])
    print(P.table(["case", "median s", "min-max (ms)", "/ inline", "goal", ""], rows))
    return {k: P.med(v) for k, v in res.items()}


def part2(tmp: Path, reps: int, rows: int) -> None:
    small = P.write_shard_project(tmp / "noop-1", 1)
    big = P.write_shard_project(tmp / f"noop-{rows}", rows)
    for proj in (small, big):
        P.reset_state(proj)
        apply_cmd(proj, "-q", "--runner", "inline", env=_env())
    probe = (
        "import sys\nfrom llmspec.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('RAY-IMPORTED', 'ray' in sys.modules)\n"
    )

    def noop(project: Path) -> float:
        argv = [P.PYTHON, "-c", probe, "apply", str(project), "--runner", "local"]
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=600)
        dt = time.perf_counter() - t0
        if p.returncode != 0 or "Apply: 0 ran, 0 reused" not in p.stdout:
            raise RuntimeError(f"not a no-op apply ({p.returncode}):\n{p.stdout[-800:]}")
        if "RAY-IMPORTED False" not in p.stdout:
            raise RuntimeError("a no-op apply imported ray")
        return dt

    cases = {
        "python -c pass": lambda: P.run_cmd([P.PYTHON, "-c", "pass"], cwd=tmp),
        "apply, nothing to run, 3 jobs, --runner local": lambda: noop(small),
        f"apply, nothing to run, {rows + 2:,} jobs, --runner local": lambda: noop(big),
    }
    print(f"\nPart 2: `llmspec apply` with nothing to run, median of {reps} rounds\n")
    res = P.interleaved(cases, reps, {})
    base = P.med(res["python -c pass"])
    out = []
    for name, xs in res.items():
        goal = "< 1 s" if name.startswith("apply") else ""
        verdict = ("ok" if P.med(xs) < 1.0 else "MISSED") if goal else ""
        out.append(
            [name, f"{P.med(xs) * 1000:.0f}", P.spread(xs), f"{P.med(xs) / base:.1f}x", goal,
             verdict]
        )  # fmt: skip
    print(P.table(["case", "median ms", "min-max", "/ python -c pass", "goal", ""], out))
    print("  (ray was not imported by either no-op apply: checked in each sample)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="every case once, small sizes")
    ap.add_argument("--reps", type=int, default=None, help="rounds (default 5; smoke 1)")
    ap.add_argument("--rows", type=int, default=None, help="rows of the no-op project (1,000)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.smoke else 5)
    rows = args.rows or (20 if args.smoke else 1000)
    started = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2-core machines are noisy)\n")
    with tempfile.TemporaryDirectory(prefix="llmspec-bench-") as tmp:
        part1(Path(tmp), reps)
        part2(Path(tmp), reps, rows)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
