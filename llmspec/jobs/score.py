"""`score` jobs: the suite's metrics over one model's generations (all shards)."""

from __future__ import annotations

from typing import Any

from llmspec.lock import rounded
from llmspec.metrics import METRICS, load_metric


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    """Metrics shard by shard: one shard's rows in memory at a time, means accumulated."""
    p = job.params
    suite = ctx.project.spec.suites[p["suite"]]
    constraint = ctx.project.constraint(suite.prompt)
    metrics = {name: load_metric(name) for name in p["metrics"]}
    sums = {name: 0.0 for name in metrics}
    counts = {name: 0 for name in metrics}
    per_row: list[dict[str, Any]] = []
    n = errors = truncated = 0
    for dep_id in job.deps:
        latency = iter(deps.meta.get(dep_id, {}).get("latency", []))
        rows = []
        for r in deps[dep_id]["rows"]:
            seconds = next(latency, None) if r["finish"] != "error" or r["output"] else None
            rows.append(r | {"seconds": seconds})
        values = {name: fn(rows, constraint) for name, fn in metrics.items()}
        for name, vs in values.items():
            xs = [v for v in vs if v is not None]
            sums[name] += sum(xs)
            counts[name] += len(xs)
        for i, r in enumerate(rows):
            entry = {"row": r["row"], "repeat": r["repeat"]}
            for name, vs in values.items():
                if METRICS[name].deterministic:
                    entry[name] = rounded(vs[i], 4)
            per_row.append(entry)
        n += len(rows)
        errors += sum(1 for r in rows if r["finish"] == "error")
        truncated += sum(1 for r in rows if r["finish"] == "length")
    means = {name: rounded(sums[name] / counts[name]) if counts[name] else None for name in metrics}
    output = {
        "metrics": {k: v for k, v in means.items() if METRICS[k].deterministic},
        "rows": n,
        "errors": errors,
        "truncated": truncated,
        "per_row": per_row,
    }
    return output, {"metrics": {k: v for k, v in means.items() if not METRICS[k].deterministic}}
