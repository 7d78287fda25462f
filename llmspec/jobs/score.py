"""`score` jobs: the suite's metrics over one model's generations (all shards)."""

from __future__ import annotations

from typing import Any

from llmspec.lock import rounded
from llmspec.metrics import METRICS, load_metric


def mean(values: list[float | None]) -> float | None:
    xs = [v for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    p = job.params
    suite = ctx.project.spec.suites[p["suite"]]
    constraint = ctx.project.constraint(suite.prompt)
    rows: list[dict[str, Any]] = []
    for dep_id in job.deps:
        latency = iter(deps.meta.get(dep_id, {}).get("latency", []))
        for r in deps[dep_id]["rows"]:
            seconds = next(latency, None) if r["finish"] != "error" or r["output"] else None
            rows.append(r | {"seconds": seconds})
    values = {name: load_metric(name)(rows, constraint) for name in p["metrics"]}
    stable = {n: v for n, v in values.items() if METRICS[n].deterministic}
    varying = {n: v for n, v in values.items() if not METRICS[n].deterministic}
    output = {
        "metrics": {n: rounded(mean(v)) for n, v in stable.items()},
        "rows": len(rows),
        "errors": sum(1 for r in rows if r["finish"] == "error"),
        "truncated": sum(1 for r in rows if r["finish"] == "length"),
        "per_row": [
            {"row": r["row"], "repeat": r["repeat"]}
            | {n: rounded(v[i], 4) for n, v in stable.items()}
            for i, r in enumerate(rows)
        ],
    }
    meta = {"metrics": {n: rounded(mean(v)) for n, v in varying.items()}}
    return output, meta
