"""Every benchmark in bench/ runs at its `--smoke` size and prints its tables.

A benchmark reaches into llmspec by name (stage functions, job inputs, runner pools), so a
change inside llmspec can break one without any other test noticing. Each runs here in its own
process, the way a person runs it, at a size that takes seconds; the figures are not checked,
only that it finishes and prints the tables it is for.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
TIMEOUT = 180  # seconds per script
SLOW_TIMEOUT = 480  # Ray starting workers that import torch, or embedding rows: a busy machine


@dataclass(frozen=True)
class Bench:
    script: str
    tables: tuple[tuple[str, ...], ...]  # the column names of each table it prints, in order
    needs: tuple[str, ...] = ()  # modules it imports besides llmspec's own dependencies
    timeout: int = TIMEOUT
    browser_tables: tuple[tuple[str, ...], ...] = ()  # printed where Chromium can be driven


BENCHES = (
    Bench(
        "plan_speed.py",
        (
            ("case", "median", "min-max", "/ python", "/ --help", "target"),
            ("stage", "example warm", "cold", "warm"),
            ("files", "median ms", "min-max", "/ load_text"),
        ),
    ),
    Bench(
        "apply_overhead.py",
        (
            ("figure", "median", "min-max (ms)", "note"),
            ("where", "function (caller)", "calls", "s", "ms/job", "share"),
            ("case", "median ms", "min-max", "/ python", "/ --help", "target"),
            ("stage", "echo-example", "grid"),
            ("how", "ms per result", "/ file per result"),
        ),
    ),
    Bench(
        "startup.py",
        (
            ("case", "median s", "min-max (ms)", "/ inline", "goal"),
            ("case", "median ms", "min-max", "/ python -c pass", "goal"),
        ),
        ("ray",),  # `--runner local` starts Ray
        SLOW_TIMEOUT,
    ),
    Bench(
        "hub.py",
        (
            ("Recorder.finish per run", "json.dumps of the same document", "ratio"),
            ("endpoint", "median", "min-max (ms)", "bytes"),
        ),
        browser_tables=(("runs view", "rendered in"), ("compare", "rendered in")),
    ),
    Bench("large_dataset.py", (("rows", "jobs", "apply s", "rows/s", "peak RSS MiB"),)),
    Bench("fuzz.py", (("input", "cases", "ok", "refused", "internal", "hangs"),)),
    Bench(
        "scoring.py",
        (("case", "median s", "min-max", "rows/s", "/ plain"),),
        ("torch", "sentence_transformers"),
        SLOW_TIMEOUT,
    ),
    Bench(
        "rag.py",
        (
            ("case", "median s", "chunks/s", "spread ms"),
            ("jobs run: index 5, re-index 2",),  # the edit re-runs one chunks job and the index
            ("ratio index / encode only:",),
            ("ratio re-index one file / index:",),
            ("case", "median s", "queries/s", "spread ms"),
            ("exact and faiss agree on 1.0000 of the top-3 ids",),  # faiss-cpu is pinned
        ),
        ("torch", "sentence_transformers", "faiss"),
        SLOW_TIMEOUT,
    ),
    Bench(
        "batching.py",
        (("wall s", "rows/s", "cpu s", "tokens", "valid", "errors"),),
        ("torch", "transformers", "guidance"),
    ),
    Bench(
        "constrained_overhead.py",
        (("s/run", "ms/step", "tok/s", "ratio", "mask ms/step"),),
        ("torch", "transformers"),
    ),
    Bench(
        "schema_coverage.py",
        (
            ("schema", "strict", "best_effort", "features / left to the check"),
            ("best_effort: schemas accepted", "outputs that validate", "closed early"),
        ),
        ("torch", "transformers"),
    ),
    Bench(
        "budget_close.py",
        (
            ("model", "max_tokens", "constraint", "truncate", "close", "within budget"),
            ("tight budget (48)", "truncate", "ms/token", "close", "ratio"),
        ),
        ("torch", "transformers"),
    ),
    Bench(
        "finetune_throughput.py",
        (("case", "rows/s (median)", "min-max", "plain / case"),),
        ("torch", "transformers"),
    ),
    Bench(
        "ray_orchestration.py",
        (("case", "median s", "min-max s", "rows/s", "/ baseline", "CPU s", "/ baseline"),),
        ("ray", "torch", "transformers"),
        SLOW_TIMEOUT,
    ),
    Bench(
        "serve_load.py",
        (("clients", "way", "req/s", "p50 ms", "p95 ms", "model p50 ms", "vs in-process"),),
        ("ray", "torch", "transformers", "uvicorn"),
        SLOW_TIMEOUT,
    ),
    Bench(
        "ray_scaleout.py",
        (("case", "cpus/replica", "threads", "apply s", "min-max", "rows/s", "gen rows/s"),),
        ("ray", "torch", "transformers"),
        SLOW_TIMEOUT,
    ),
)


def has_table(output: str, columns: tuple[str, ...]) -> bool:
    """Some line of `output` holds every column name, in order."""
    for line in output.splitlines():
        at = 0
        for col in columns:
            at = line.find(col, at)
            if at < 0:
                break
            at += len(col)
        else:
            return True
    return False


def run_smoke(script: str, cwd: Path, timeout: int = TIMEOUT) -> tuple[int, str]:
    """`python bench/SCRIPT --smoke`, its exit code and its output (stdout, then stderr).

    On timeout the script gets SIGINT first, so that it unwinds and its Ray shuts down, then
    its whole process group is killed."""
    # PYTHONPATH: the script, and the Ray workers it starts, import this llmspec
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / script), "--smoke"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        pytest.fail(f"{script} --smoke ran over {timeout} s:\n{(out + err)[-3000:]}")
    return proc.returncode, out + "\n" + err


def _can_drive_chromium() -> bool:
    """What bench/hub.py looks for before it times the page: Debian's chromium and
    Playwright's Python client."""
    return (
        shutil.which("chromium") is not None and importlib.util.find_spec("playwright") is not None
    )


def _param(b: Bench) -> object:
    marks = [pytest.mark.slow] if b.needs else []
    return pytest.param(b, id=b.script.removesuffix(".py"), marks=marks)


@pytest.mark.parametrize("bench", [_param(b) for b in BENCHES])
def test_benchmark_runs_at_smoke_size(bench: Bench, tmp_path: Path) -> None:
    missing = [m for m in bench.needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    code, output = run_smoke(bench.script, tmp_path, bench.timeout)
    assert code == 0, f"{bench.script} --smoke exited {code}:\n{output[-3000:]}"
    tables = bench.tables + (bench.browser_tables if _can_drive_chromium() else ())
    for columns in tables:
        assert has_table(output, columns), (
            f"{bench.script} --smoke printed no table with columns {columns}:\n{output[-3000:]}"
        )


def test_every_benchmark_is_run_here() -> None:
    scripts = {p.name for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    assert scripts == {b.script for b in BENCHES}


def test_every_benchmark_has_a_smoke_size() -> None:
    for b in BENCHES:
        assert '"--smoke"' in (BENCH / b.script).read_text(), b.script
