"""`gate` jobs: a suite's thresholds, checked for every model of the suite."""

from __future__ import annotations

import operator
from typing import Any

from llmspec.resolve import GATE

OPS = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    p = job.params
    results, observed = [], {}
    metrics: dict[str, dict[str, float | None]] = {}
    for model in p["models"]:
        dep = f"score.{p['suite']}.{model}"
        values = dict(deps[dep]["metrics"]) | deps.meta.get(dep, {}).get("metrics", {})
        metrics[model] = deps[dep]["metrics"]
        for gate in p["gates"]:
            metric, op, threshold = GATE.match(gate).groups()
            value = values.get(metric)
            passed = value is not None and OPS[op](value, float(threshold))
            results.append(
                {
                    "gate": gate,
                    "model": model,
                    "passed": passed,
                    "value": value if metric in deps[dep]["metrics"] else None,
                }
            )
            observed[f"{model}:{gate}"] = value
    output = {"passed": all(r["passed"] for r in results), "results": results, "metrics": metrics}
    return output, {"values": observed}
