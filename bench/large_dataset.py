"""Memory and time of an apply over a large dataset (echo model, in-process runner).

Results stream into the store shard by shard; what stays in memory is the dataset's rows
(read once per process) and, in the score job, one model's generated rows. This prints peak
RSS for two dataset sizes side by side, so the growth per row can be read off.

    .venv/bin/python bench/large_dataset.py            # 20,000 and 100,000 rows
    .venv/bin/python bench/large_dataset.py --quick    # 5,000 and 20,000 rows
    .venv/bin/python bench/large_dataset.py --smoke    # 2,000 and 8,000 rows: does it run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SPEC = """\
version: 1
name: large
models:
  m: {provider: echo}
prompts:
  p: {template: "Q: {{ question }}"}
datasets:
  d: {path: d.jsonl, shard_rows: 2000}
suites:
  s: {prompt: p, models: [m], dataset: d, metrics: [exact_match, contains]}
"""

PROBE = textwrap.dedent("""
    import json, resource, sys, time
    from llmspec.apply import apply_plan
    from llmspec.compile import compile_project
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan
    from llmspec.project import load_project
    from llmspec.runner.inline import InlineRunner
    from llmspec.store import Store
    root = sys.argv[1]
    t0 = time.perf_counter()
    graph = compile_project(load_project(root))
    store = Store(root)
    plan = make_plan(graph, read_lock(root), store.keys(), lock_digest(root))
    report = apply_plan(plan, graph, store, InlineRunner())
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"jobs": len(report.done), "wall": wall, "rss_mb": rss}))
""")


def run(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "llmspec.yaml").write_text(SPEC)
        with (root / "d.jsonl").open("w") as fh:
            for i in range(rows):
                fh.write(json.dumps({"question": f"where is order {i}?", "expected": f"{i}"}))
                fh.write("\n")
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(f"apply over {rows:,} rows failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="5,000 and 20,000 rows")
    size.add_argument("--smoke", action="store_true", help="2,000 and 8,000 rows")
    args = ap.parse_args()
    sizes = (2_000, 8_000) if args.smoke else (5_000, 20_000) if args.quick else (20_000, 100_000)
    t0 = time.perf_counter()
    results = {n: run(n) for n in sizes}
    print(f"{'rows':>8} {'jobs':>6} {'apply s':>8} {'rows/s':>8} {'peak RSS MiB':>13}")
    for n, r in results.items():
        print(
            f"{n:>8,} {r['jobs']:>6} {r['wall']:>8.1f} {n / r['wall']:>8,.0f} {r['rss_mb']:>13.0f}"
        )
    (a, ra), (b, rb) = results.items()
    per_row = (rb["rss_mb"] - ra["rss_mb"]) * 1024 / (b - a)
    print(
        f"growth: {per_row:.2f} KiB of peak RSS per extra row "
        f"({b // a}x the rows -> {rb['rss_mb'] / ra['rss_mb']:.2f}x the peak RSS)"
    )
    print(f"({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
