"""The results hub on a long history: 100 runs of 10,000 rows.

    .venv/bin/python bench/hub.py [--quick | --smoke] [--runs N] [--rows N] [--reps N]

Part 1 (recording): synthetic results (tests/hubdata.py: one suite, 10,000 rows, 20% of the
rows changing from run to run) are recorded run after run as `apply` records them
(`Recorder.finish`); per run its wall time, next to the time `json.dumps` alone takes for the
same results document (what any store of the document costs at the least). The database's size
and how much the row contents shared between runs save.

Part 2 (the API, over HTTP on 127.0.0.1, in interleaved rounds): the run list, the charts'
series, one run, a page of rows (the first and the last of 10,000 rows), the rows that failed,
the rows that changed since the previous run (with the previous rows beside them), a
comparison of two runs (first call: paired bootstrap intervals over 10,000 rows; then cached),
and the whole results document of a run: what a page without pagination would load.

Part 3 (the page, in headless Chromium when installed): time until the runs view, a run with
its first page of rows, and the comparison of the last two runs have rendered.

`--quick`: 20 runs x 2,000 rows; `--smoke`: 5 runs x 300 rows, 2 rounds (what the test suite
runs). Everything lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmspec.hub import history, server  # noqa: E402
from llmspec.hub.history import Recorder  # noqa: E402
from tests.hubdata import fake_lock, iter_results  # noqa: E402


def ms(x: float) -> str:
    return f"{x * 1000:8.1f} ms"


def record(root: Path, runs: int, rows: int) -> tuple[list[float], list[float]]:
    finish, dumps = [], []
    for version, results in enumerate(iter_results(runs, rows, change=0.2, shift=0.05)):
        t0 = time.perf_counter()
        json.dumps(results)
        dumps.append(time.perf_counter() - t0)
        rec = Recorder.start(root, project="support-bot", plan=None, runner="inline",
                             spec_files={"prompts.yaml": f"v{version}"}, warn=print)  # fmt: skip
        t0 = time.perf_counter()
        rec.finish("done", lock_text=fake_lock(version), summary={"ran": 1}, results=results)
        finish.append(time.perf_counter() - t0)
        if version % 10 == 9 or version == runs - 1:
            print(f"  recorded {version + 1} runs", flush=True)
    return finish, dumps


def fetch(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return time.perf_counter() - t0, len(body)


def api(url: str, runs: int, rows: int, reps: int) -> None:
    last, prev = runs, runs - 1
    pages = -(-rows // 50)
    cases = {
        "runs list": "api/runs",
        "charts' series": "api/series",
        "one run": f"api/runs/{last}",
        "rows, page 1": f"api/runs/{last}/rows?suite=quality",
        f"rows, page {pages}": f"api/runs/{last}/rows?suite=quality&page={pages}",
        "rows that failed": f"api/runs/{last}/rows?suite=quality&filter=failed",
        "rows that changed": f"api/runs/{last}/rows?suite=quality&filter=changed&with_base=1",
        "compare, cached": f"api/compare?a={prev}&b={last}",
        "whole results": f"api/runs/{last}/results",
    }
    first, size = fetch(url + f"api/compare?a={prev}&b={last}")
    print(f"\n  compare, first call (paired bootstrap over {rows} rows x 3 metrics): {ms(first)}")
    times: dict[str, list[float]] = {k: [] for k in cases}
    sizes: dict[str, int] = {}
    for _ in range(reps):
        for name, path in cases.items():
            t, n = fetch(url + path)
            times[name].append(t)
            sizes[name] = n
    print(f"\n  {'endpoint':<22} {'median':>11} {'min-max (ms)':>16} {'bytes':>11}")
    for name, ts in times.items():
        lo, hi = min(ts) * 1000, max(ts) * 1000
        print(f"  {name:<22} {ms(statistics.median(ts))} {lo:>7.1f}-{hi:<8.1f} {sizes[name]:>11,}")
    whole = statistics.median(times["whole results"])
    page = statistics.median(times["rows, page 1"])
    tail = statistics.median(times[f"rows, page {pages}"])
    print(f"\n  whole results / rows page 1: {whole / page:.1f}x the time, "
          f"{sizes['whole results'] / sizes['rows, page 1']:.0f}x the bytes")  # fmt: skip
    print(f"  last page / first page: {tail / page:.2f}x")
    print(
        f"  compare first call / cached: {first / statistics.median(times['compare, cached']):.0f}x"
    )


def browser(url: str, runs: int) -> None:
    path = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        path = None
    if path is None:
        print("\n  (no chromium or playwright: page timings skipped)")
        return
    args = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
    views = {"runs view": "#/", "a run": f"#/run/{runs}", "compare": f"#/compare/{runs - 1}/{runs}"}
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, headless=True, args=args)
        page = b.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)  # warm: the assets are cached from here on
        page.wait_for_selector('body[data-ready="#/"]', state="attached", timeout=120_000)
        print()
        for name, marker in views.items():
            t0 = time.perf_counter()
            page.goto(url + marker)
            page.reload()
            page.wait_for_selector(f'body[data-ready="{marker}"]', state="attached",
                                   timeout=120_000)  # fmt: skip
            dots = page.locator("svg circle").count()
            rows = page.locator("table.rows tbody tr").count()
            print(f"  {name:<10} rendered in {ms(time.perf_counter() - t0)}  "
                  f"({dots} chart points, {rows} rows shown)")  # fmt: skip
        b.close()
    if errors:
        print(f"  page errors: {errors}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--rows", type=int)
    ap.add_argument("--reps", type=int)
    a = ap.parse_args()
    runs, rows, reps = (5, 300, 2) if a.smoke else (20, 2000, 5) if a.quick else (100, 10_000, 5)
    runs, rows, reps = a.runs or runs, a.rows or rows, a.reps or reps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"Part 1: recording {runs} runs of {rows:,} rows", flush=True)
        finish, dumps = record(root, runs, rows)
        size = history.history_path(root).stat().st_size
        conn = history.connect(root)
        n_rows = conn.execute("SELECT count(*) FROM rows").fetchone()[0]
        n_contents = conn.execute("SELECT count(*) FROM contents").fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size = max(size, history.history_path(root).stat().st_size)
        print(f"  Recorder.finish per run: median {ms(statistics.median(finish))} "
              f"({statistics.median(finish) / rows * 1e6:.0f} us per row); "
              f"json.dumps of the same document: {ms(statistics.median(dumps))}; "
              f"ratio {statistics.median(finish) / statistics.median(dumps):.1f}x")  # fmt: skip
        print(
            f"  database: {size / 2**20:.1f} MiB for {n_rows:,} rows "
            f"({size / n_rows:.0f} bytes per row); row contents stored {n_contents:,} times "
            f"({n_contents / n_rows:.0%} of the rows; the rest share an earlier run's)"
        )

        running = server.start(root)
        try:
            print(f"\nPart 2: the API over HTTP, {reps} interleaved rounds", flush=True)
            api(running.url, runs, rows, reps)
            print("\nPart 3: the page in headless Chromium", flush=True)
            browser(running.url, runs)
        finally:
            running.stop()


if __name__ == "__main__":
    main()
