"""`score` jobs: a suite's metrics over one variant's generations (all of its shards).

Inputs: the metrics (name, implementation version, options). Shards are read one at a time
from the store, so memory holds one shard's rows; per-row values are kept in the output for
reports, and each metric's statistics are computed once at the end.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import JobKind
from llmspec.lock import rounded


def names(spec: Any) -> Any:
    return spec.suites


def build(cx: Any, suite_name: str) -> dict[str, Any]:
    from llmspec.metrics import METRICS

    s = cx.spec.suites[suite_name]
    gens = cx.get("generate", suite_name)
    metrics = [{"name": m, "version": METRICS[m].version} for m in s.metrics]
    out = {}
    for variant, shards in gens.items():
        ins = cx.inputs().set("metrics", metrics)
        out[variant] = cx.job(
            "score",
            f"score.{suite_name}.{variant}",
            ins,
            deps={f"shard.{i}": g for i, g in enumerate(shards)},
            loc=cx.loc("suites", suite_name, "metrics"),
        )
    return out


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.metrics import METRICS, load_metric
    from llmspec.stats import summarize_values

    specs = job.inputs["metrics"]
    fns = {m["name"]: load_metric(m["name"]) for m in specs}
    values: dict[str, list[float | None]] = {name: [] for name in fns}
    per_row: list[dict[str, Any]] = []
    n = errors = truncated = closed_early = 0
    causes: dict[str, int] = {}
    for role in sorted(deps, key=lambda r: int(r.split(".")[1])):
        latency = iter(deps.meta[role].get("latency", []))
        rows = [r | {"seconds": next(latency, None)} for r in deps[role]["rows"]]
        shard = {name: fn(rows) for name, fn in fns.items()}
        for name, vs in shard.items():
            values[name] += vs
        for i, r in enumerate(rows):
            entry = {"row": r["row"], "repeat": r["repeat"]}
            for name, vs in shard.items():
                if METRICS[name].deterministic:
                    entry[name] = rounded(vs[i], 4)
            per_row.append(entry)
            if r["finish"] == "error":
                errors += 1
                cause = error_cause(r.get("error"))
                causes[cause] = causes.get(cause, 0) + 1
            elif r["finish"] == "length":
                truncated += 1
            elif r["finish"] == "budget":
                closed_early += 1
        n += len(rows)
    stats = {name: summarize_values(vs) for name, vs in values.items()}
    keep = {name for name in fns if METRICS[name].deterministic}
    output = {
        "metrics": {k: rounded(v["mean"]) for k, v in stats.items() if k in keep},
        "stats": {k: v for k, v in stats.items() if k in keep},
        "rows": n,
        "errors": errors,
        "truncated": truncated,
        "closed_early": closed_early,
        "causes": dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "per_row": per_row,
    }
    varying = {k: v for k, v in stats.items() if k not in keep}
    return output, {"stats": varying, "metrics": {k: v["mean"] for k, v in varying.items()}}


def error_cause(error: str | None) -> str:
    """A row error without its row-specific numbers, so errors group by cause.

    >>> error_cause("prompt is 713 tokens; with max_tokens 64 it exceeds the model's 512 positions")
    "prompt is longer than the model's 512 positions allow"
    """
    import re

    if not error:
        return "unknown error"
    m = re.match(r"prompt is \d+ tokens; with max_tokens \d+ it exceeds the model's (\d+)", error)
    if m:
        return f"prompt is longer than the model's {m.group(1)} positions allow"
    return re.sub(r"\d+", "N", error.split("\n")[0])[:160]


KIND = JobKind(
    name="score",
    version=2,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="ellipse",
    description="a suite's metrics over one variant's generations",
)
