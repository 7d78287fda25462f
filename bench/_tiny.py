"""What bench/ray_orchestration.py, bench/ray_scaleout.py and bench/schema_coverage.py share.

The tiny transformers model, a one-model project around it written into a temporary folder,
an embedded Ray sized like this machine, and apply with per-job timestamps. Nothing under the
repository is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The model the batching benchmarks use: a random Llama, 4 layers x 256 wide.
ARCH, LAYERS, HIDDEN, HEADS = "llama", 4, 256, 4

# A support-ticket schema with bounded sizes: every valid output fits in max_tokens.
TICKET = {
    "type": "object",
    "properties": {
        "category": {"enum": ["billing", "shipping", "refund", "account", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "maxLength": 24},
        "needs_human": {"type": "boolean"},
    },
    "required": ["category", "priority", "summary", "needs_human"],
    "additionalProperties": False,
}

_ISSUES = (
    "my order did not arrive",
    "I was charged twice for the same invoice",
    "I cannot log in to my account after the password reset",
    "the router drops the Wi-Fi connection every evening",
    "I want a refund for the blender I returned",
    "the tracking link shows no update for a week",
    "how do I change the email address on my account",
    "the firmware update failed at 80 percent",
)


def build_model(dest: Path) -> tuple[Path, float]:
    """The tiny model in `dest` (a few seconds, deterministic); returns (path, seconds)."""
    from llmspec.tinymodel import build_tiny_model

    t0 = time.perf_counter()
    path = build_tiny_model(dest, arch=ARCH, layers=LAYERS, hidden=HIDDEN, heads=HEADS, seed=7)
    return Path(path), time.perf_counter() - t0


def write_ticket_project(
    dest: Path,
    model: Path,
    rows: int,
    shard_rows: int = 16,
    replicas: int = 1,
    cpus: float = 1,
    batch_size: int = 16,
    max_tokens: int = 96,
    temperature: float = 0.7,
) -> Path:
    """One transformers model over `rows` support tickets in shards of `shard_rows`, with the
    TICKET schema as the prompt's output: rows / shard_rows generate jobs, 1 score, no gate."""
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "data").mkdir(parents=True)
    shutil.copytree(model, dest / "models" / "tiny")
    with (dest / "data" / "tickets.jsonl").open("w") as fh:
        for r in range(rows):
            q = f"Ticket {r}: {_ISSUES[r % len(_ISSUES)]} (order {10000 + 37 * r})."
            fh.write(json.dumps({"id": r, "question": q, "answer": "billing"}) + "\n")
    (dest / "llmspec.yaml").write_text(
        f"""version: 1
name: ray-bench
models:
  tiny:
    provider: transformers
    path: models/tiny
    batch_size: {batch_size}
    replicas: {replicas}
    cpus: {cpus}
    params: {{temperature: {temperature}, max_tokens: {max_tokens}, seed: 7}}
schemas:
  ticket: {json.dumps(TICKET)}
prompts:
  triage:
    system: Classify the support ticket. Reply in JSON.
    template: "{{{{ question }}}}"
    output: {{schema: ticket}}
datasets:
  tickets: {{path: data/tickets.jsonl, expected: answer, shard_rows: {shard_rows}}}
suites:
  triage: {{prompt: triage, models: [tiny], dataset: tickets, metrics: [schema_valid]}}
"""
    )
    return dest


def compile_graph(project: Path) -> Any:
    from llmspec.compile import compile_project
    from llmspec.project import load_project

    return compile_project(load_project(project))


def generate_jobs(graph: Any) -> list[Any]:
    """The graph's generate jobs in row order."""
    jobs = (j for j in graph.jobs.values() if j.kind == "generate")
    return sorted(jobs, key=lambda j: j.inputs["rows"]["range"][0])


def model_settings(job: Any) -> dict[str, Any]:
    """What a generate job builds its provider from (`llmspec.providers.load_provider`): the
    model's keyed settings merged with their machine-local part (where the weights are)."""
    return job.inputs["model"] | job.local["model"]


def start_ray(num_cpus: int = 2) -> float:
    """An embedded Ray sized like this machine, started the way `RayRunner` starts its own
    (a new local instance, loopback only, no dashboard, a bounded object store); returns the
    seconds that took. Runners made afterwards reuse it and leave it running: stop it with
    `ray.shutdown()`."""
    from llmspec.runner.profile import RunnerProfile
    from llmspec.runner.ray import RayRunner

    profile = RunnerProfile(num_cpus=num_cpus, object_store_memory=96 * 1024 * 1024)
    t0 = time.perf_counter()
    RayRunner(profile).start()
    return time.perf_counter() - t0


@dataclass
class Applied:
    wall: float  # apply_plan, whole
    report: Any
    starts: dict[str, float] = field(default_factory=dict)  # job id -> driver time of start
    ends: dict[str, float] = field(default_factory=dict)  # job id -> driver time of outcome
    outcomes: dict[str, Any] = field(default_factory=dict)
    t0: float = 0.0

    def generate_ids(self) -> list[str]:
        return sorted(j for j in self.outcomes if j.startswith("generate."))

    def generate_span(self) -> float:
        """First generate start to last generate outcome, in the driver."""
        ids = self.generate_ids()
        return max(self.ends[j] for j in ids) - min(self.starts[j] for j in ids)


def fresh_apply(project: Path, graph: Any, runner: Any) -> Applied:
    """Plan against an empty store and no lock (untimed), then apply_plan (timed) with
    per-job timestamps from apply's events."""
    from llmspec.apply import apply_plan
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan
    from llmspec.store import Store

    shutil.rmtree(project / ".llmspec" / "store", ignore_errors=True)
    shutil.rmtree(project / ".llmspec" / "runs", ignore_errors=True)
    (project / "llmspec.lock").unlink(missing_ok=True)
    store = Store(project)
    plan = make_plan(graph, read_lock(project), store.keys(), lock_digest(project))
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    outcomes: dict[str, Any] = {}

    def on_event(kind: str, job_id: str, outcome: Any) -> None:
        now = time.perf_counter()
        if kind == "start":
            starts[job_id] = now
        elif outcome is not None:
            ends[job_id] = now
            outcomes[job_id] = outcome

    t0 = time.perf_counter()
    report = apply_plan(plan, graph, store, runner, on_event=on_event)
    wall = time.perf_counter() - t0
    if not report.ok or report.failed:
        raise RuntimeError(f"apply failed: {report.failed or report.skipped}")
    return Applied(wall, report, starts, ends, outcomes, t0)


def stored_rows(project: Path, graph: Any) -> dict[int, dict]:
    """Generated rows by row number, read back from the store."""
    from llmspec.store import Store

    store = Store(project)
    out = {}
    for job in generate_jobs(graph):
        for r in store.get(job.key).output["rows"]:
            out[r["row"]] = r
    return out


def rounds(
    cases: dict[str, Callable[[], float]], reps: int, log: Callable[[str], None] | None = None
) -> dict[str, list[float]]:
    """Every case once per round; the order rotates each round so no case always runs first
    (or right after the same neighbour) on a noisy machine."""
    names = list(cases)
    out: dict[str, list[float]] = {k: [] for k in names}
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            out[name].append(cases[name]())
        if log:
            log(f"  round {r + 1}/{reps}: " + ", ".join(f"{k} {out[k][-1]:.2f}s" for k in names))
    return out


def tree_cpu(root: int | None = None) -> float:
    """CPU seconds (user + system) of a process and all its descendants, from /proc: with
    `root` this process, that is the driver, Ray's own processes and every worker it started."""
    root = os.getpid() if root is None else root
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(name)] = int(fields[1])
        cpu[int(name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def rng(xs: list[float], unit: float = 1.0, digits: int = 2) -> str:
    return f"{min(xs) * unit:.{digits}f}-{max(xs) * unit:.{digits}f}"


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"
