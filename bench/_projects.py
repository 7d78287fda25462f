"""Projects and helpers shared by bench/plan_speed.py and bench/apply_overhead.py.

Every project is written into a temporary folder: nothing under the repository is touched
(the example project is copied, .llmspec/ and llmspec.lock left behind).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable
LLMSPEC = str(VENV_BIN / "llmspec")
HEAVY = ("ray", "torch", "transformers", "guidance", "llguidance", "sentence_transformers")


# -- projects ---------------------------------------------------------------------------------


EXAMPLE_MODELS = {  # the example's tiny models, as scripts/example builds them
    "tiny": ("--seed", "7"),
    "tiny-llama": ("--arch", "llama", "--seed", "3"),
    "tiny-judge": ("--seed", "11", "--positions", "2048"),
}
_built: dict[str, Path] = {}  # the tiny models this process built, copied into later copies


def copy_example(dest: Path, with_lock: bool = False) -> Path:
    """specs/ copied to `dest` with its tiny models (each built into the copy if specs/ lacks
    it, once per process), without .llmspec/ and build/; with its committed llmspec.lock only
    if `with_lock`."""
    if dest.exists():
        shutil.rmtree(dest)
    skip = [".llmspec", "build"] + ([] if with_lock else ["llmspec.lock"])
    shutil.copytree(REPO / "specs", dest, ignore=shutil.ignore_patterns(*skip))
    for name, args in EXAMPLE_MODELS.items():
        model = dest / "models" / name
        if (model / "model.safetensors").exists():
            continue
        built = _built.get(name)
        if built is not None and (built / "model.safetensors").exists():
            shutil.copytree(built, model, dirs_exist_ok=True)
        else:
            subprocess.run(
                [LLMSPEC, "tiny-model", str(model), *args], check=True, stdout=subprocess.DEVNULL
            )
            _built[name] = model
    return dest


def write_grid_project(
    dest: Path, models: int = 10, prompts: int = 10, datasets: int = 10, rows: int = 20
) -> Path:
    """models x prompts x datasets generate jobs: every dataset is one shard, and one suite per
    (prompt, dataset) runs every model, so each (model, prompt, dataset) triple is one job."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "data").mkdir(parents=True)
    y = ["version: 1", f"name: grid-{models}x{prompts}x{datasets}", "models:"]
    for m in range(models):
        y.append(
            f"  m{m}: {{provider: echo, params: {{temperature: {m / 10:.1f}, "
            f"max_tokens: {32 + m}, seed: {m}}}}}"
        )
    (dest / "llmspec.yaml").write_text("\n".join(y) + "\n")
    y = ["prompts:"]
    for p in range(prompts):
        y += [
            f"  p{p}:",
            f"    system: You are support assistant number {p}. Answer briefly.",
            f'    template: "Variant {p}. Question: {{{{ question }}}}\\nAnswer:"',
        ]
    (dest / "prompts.yaml").write_text("\n".join(y) + "\n")
    y = ["datasets:"]
    for d in range(datasets):
        with (dest / "data" / f"d{d}.jsonl").open("w") as fh:
            for r in range(rows):
                q = f"Question {r} of dataset {d}: how do I do thing {r * 7 % 13}?"
                fh.write(json.dumps({"id": r, "question": q, "answer": f"answer {r}"}) + "\n")
        y.append(f"  d{d}: {{path: data/d{d}.jsonl, expected: answer, shard_rows: {max(rows, 1)}}}")
    (dest / "datasets.yaml").write_text("\n".join(y) + "\n")
    y = ["suites:"]
    names = ", ".join(f"m{m}" for m in range(models))
    for p in range(prompts):
        for d in range(datasets):
            y.append(
                f"  s-p{p}-d{d}: {{prompt: p{p}, models: [{names}], dataset: d{d}, "
                "metrics: [exact_match]}"
            )
    (dest / "suites.yaml").write_text("\n".join(y) + "\n")
    return dest


def write_echo_example(dest: Path) -> Path:
    """The example project's shape on the echo provider only (no retrieval: that needs torch)."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "data").mkdir(parents=True)
    shutil.copy(REPO / "specs" / "data" / "golden.jsonl", dest / "data" / "golden.jsonl")
    (dest / "llmspec.yaml").write_text(
        """version: 1
name: support-bot-echo
models:
  base: {provider: echo, params: {temperature: 0, max_tokens: 64, seed: 7}}
  preview: {provider: echo}
schemas:
  answer:
    type: object
    required: [answer, confidence]
    additionalProperties: false
    properties:
      answer: {type: string, maxLength: 80}
      confidence: {type: string, enum: [low, medium, high]}
prompts:
  qa:
    system: Answer briefly. Reply in JSON.
    template: "Question: {{ question }}"
    output: {schema: answer}
  triage:
    system: Classify the support ticket.
    template: "Ticket: {{ question }}\\nCategory:"
    output: {choice: [billing, shipping, account, other]}
datasets:
  golden: {path: data/golden.jsonl, expected: answer}
suites:
  quality:
    prompt: qa
    models: [base, preview]
    dataset: golden
    metrics: [exact_match, rouge_l, bleu, schema_valid, latency]
    gates: ["exact_match >= 0.0"]
  routing:
    prompt: triage
    models: [base]
    dataset: golden
    metrics: [exact_match]
deployments:
  staging:
    model: base
    prompt: qa
    requires: [quality]
    target: {kind: export, path: build/staging.json}
"""
    )
    return dest


def write_shard_project(dest: Path, rows: int, metric: str = "exact_match") -> Path:
    """One echo model over a dataset of `rows` rows in one-row shards: `rows` generate jobs,
    then the jobs that score them and check the gate."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "data").mkdir(parents=True)
    with (dest / "data" / "rows.jsonl").open("w") as fh:
        for r in range(rows):
            fh.write(json.dumps({"id": r, "question": f"q{r}", "answer": f"Q: q{r}"}) + "\n")
    (dest / "llmspec.yaml").write_text(
        f"""version: 1
name: shards-{rows}
models:
  echo: {{provider: echo, params: {{max_tokens: 8}}}}
prompts:
  p: {{template: "Q: {{{{ question }}}}"}}
datasets:
  rows: {{path: data/rows.jsonl, expected: answer, shard_rows: 1}}
suites:
  s: {{prompt: p, models: [echo], dataset: rows, metrics: [{metric}], gates: ["{metric} >= 0.5"]}}
"""
    )
    return dest


def reset_state(project: Path, cache: bool = True, store: bool = True, lock: bool = True) -> None:
    """Forget what earlier runs left: the hash cache, the store and run logs, the lock."""
    state = project / ".llmspec"
    if cache:
        shutil.rmtree(state / "cache", ignore_errors=True)
    if store:
        shutil.rmtree(state / "store", ignore_errors=True)
        shutil.rmtree(state / "runs", ignore_errors=True)
    if lock:
        (project / "llmspec.lock").unlink(missing_ok=True)


# -- measuring ----------------------------------------------------------------------------------


def run_cmd(argv: Sequence[str], cwd: Path | None = None, ok: Sequence[int] = (0,)) -> float:
    """Wall seconds of one subprocess, from fork to exit; output discarded."""
    t0 = time.perf_counter()
    p = subprocess.run(
        list(argv), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    dt = time.perf_counter() - t0
    if p.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return dt


def interleaved(
    cases: dict[str, Callable[[], float]], reps: int, before: dict[str, Callable[[], None]]
) -> dict[str, list[float]]:
    """Run every case once per round, rounds `reps` times, so that noise from the shared machine
    falls on all cases alike; `before[name]` runs untimed before each sample."""
    out: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            if name in before:
                before[name]()
            out[name].append(fn())
    return out


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def spread(xs: Sequence[float]) -> str:
    """min-max in milliseconds."""
    digits = 1 if max(xs) < 0.01 else 0
    return f"{min(xs) * 1000:.{digits}f}-{max(xs) * 1000:.{digits}f}"


def probe_modules(code: str, cwd: Path | None = None) -> dict:
    """Run `code` in a fresh interpreter; it must leave a JSON dict in the variable `RESULT`.
    The heavy libraries found in sys.modules at the end are added as `heavy`."""
    wrapper = (
        "import json, sys, io, contextlib\n"
        "RESULT = {}\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + f"RESULT['heavy'] = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "sys.__stdout__.write(json.dumps(RESULT))\n"
    )
    p = subprocess.run(
        [PYTHON, "-c", wrapper], cwd=cwd, capture_output=True, text=True, env=os.environ.copy()
    )
    if p.returncode != 0:
        raise RuntimeError(f"probe failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- timing functions from the inside ------------------------------------------------------------


class Timers:
    """Seconds and calls of wrapped functions. A call made inside another wrapped function is
    labelled `name (in outer)`, so that `Store.get (in update_lock)` and `Store.get (in runner)`
    are told apart. A name that does not exist (the code moved) raises `LookupError`, so a
    benchmark fails rather than print a breakdown with a part silently missing; with
    `strict=False` such names are skipped and listed in `missing`."""

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.stack: list[str] = []
        self.undo: list[tuple[object, str, object]] = []
        self.missing: list[str] = []

    def wrap(self, owner: object, attr: str, label: str | None = None) -> None:
        fn = getattr(owner, attr, None)
        name = label or attr
        if fn is None:
            self.missing.append(name)
            return
        timers = self

        def wrapped(*a, **kw):
            key = f"{name} (in {timers.stack[-1]})" if timers.stack else name
            timers.stack.append(name)
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers.seconds[key] += time.perf_counter() - t0
                timers.calls[key] += 1
                timers.stack.pop()

        setattr(owner, attr, wrapped)
        self.undo.append((owner, attr, fn))
        # `from llmspec.x import f` elsewhere holds the unwrapped f: replace those references too
        for mname, mod in list(sys.modules.items()):
            if mname.startswith("llmspec") and mod is not owner and getattr(mod, attr, None) is fn:
                setattr(mod, attr, wrapped)
                self.undo.append((mod, attr, fn))

    def wrap_all(self, spec: Sequence[str]) -> None:
        """`module:attr` or `module:Class.attr`, labelled `attr` / `Class.attr`."""
        import importlib

        for item in spec:
            mod, _, path = item.partition(":")
            try:
                owner: object = importlib.import_module(mod)
            except ImportError:
                self.missing.append(item)
                continue
            *outer, attr = path.split(".")
            for o in outer:
                owner = getattr(owner, o, None)
            if owner is None:
                self.missing.append(item)
                continue
            self.wrap(owner, attr, path)
        if self.missing and self.strict:
            self.restore()
            raise LookupError(f"not found (the code moved?): {', '.join(self.missing)}")

    def restore(self) -> None:
        for owner, attr, fn in reversed(self.undo):
            setattr(owner, attr, fn)
        self.undo.clear()


CLI_PROBE = r"""
import io, json, sys, time, contextlib
T0 = time.perf_counter()
sys.path.insert(0, BENCH)
from _projects import Timers
import llmspec.cli
T1 = time.perf_counter()
t = Timers()
t.wrap_all(WRAP)
code = 0
buf = io.StringIO()
with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
    try:
        llmspec.cli.main(ARGV, standalone_mode=True)
    except SystemExit as e:
        code = e.code
T2 = time.perf_counter()
heavy = sorted(m for m in HEAVY if m in sys.modules)
sys.__stdout__.write(json.dumps({"import llmspec.cli": T1 - T0, "main()": T2 - T1,
    "seconds": t.seconds, "calls": t.calls, "missing": t.missing, "exit": code,
    "heavy": heavy, "out": buf.getvalue()[-300:]}))
"""


def cli_probe(argv: Sequence[str], wrap: Sequence[str], cwd: Path | None = None) -> dict:
    """`llmspec ARGV` in a fresh interpreter with `wrap` timed; wall seconds as `wall`."""
    code = (
        f"BENCH = {str(Path(__file__).resolve().parent)!r}\nWRAP = {list(wrap)!r}\n"
        f"ARGV = {list(argv)!r}\nHEAVY = {HEAVY!r}\n" + CLI_PROBE
    )
    t0 = time.perf_counter()
    p = subprocess.run([PYTHON, "-c", code], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"probe failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout)
    out["wall"] = wall
    return out
