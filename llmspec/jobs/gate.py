"""`gate` jobs: a suite's verdicts, and its A/B comparisons.

Inputs: the gates (in the canonical form they were parsed into at validate time), the variants
and metrics they apply to, and, for gates against `baseline`, the values the lock recorded
before this suite's scores last changed. The statistics come from each variant's `summary`.

For every pair of variants and every metric the output holds the paired difference over rows
(a - b, rows matched by row and repeat) with a seeded 95% bootstrap interval and p-value; with
more than two variants, `significant_holm` says which differences survive Holm-Bonferroni
correction across the pairs. The verdicts, each variant's means and intervals, and the
baseline used go to the lock's `suites` section.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from llmspec.jobs import JobKind

LOCKED_STATS = ("mean", "lcb95", "ucb95", "n")


def names(spec: Any) -> Any:
    return spec.suites


def build(cx: Any, suite_name: str) -> Any:
    from llmspec.metrics import METRICS

    summaries = cx.get("summary", suite_name)
    gates = cx.rp.gates.get(suite_name, ())
    metrics = [
        {"name": m["name"], "higher_is_better": METRICS[m["kind"]].higher_is_better}
        for m in cx.rp.metrics.get(suite_name, ())
    ]
    ins = cx.inputs().set("gates", [str(g) for g in gates]).set("variants", list(summaries))
    ins.set("metrics", metrics)
    if any(g.baseline for g in gates):
        ins.set("baseline", _baseline(cx, suite_name, summaries))
    return cx.job(
        "gate",
        f"gate.{suite_name}",
        ins,
        deps={f"summary.{v}": job for v, job in summaries.items()},
        loc=cx.loc("suites", suite_name, "gates"),
    )


def _baseline(cx: Any, suite_name: str, summaries: dict[str, Any]) -> dict[str, Any] | None:
    """What `baseline` means for each variant: the values the lock recorded before this
    variant's scores last changed. While its summary is the one the lock has, that is the
    baseline the lock's gate used; once it changes, the lock's current values."""
    lock = cx.lock
    old = lock.suites.get(suite_name) if lock is not None else None
    if not old:
        return None
    out = {}
    for variant, job in summaries.items():
        locked = lock.jobs.get(job.id)
        if locked is not None and locked.key == job.key:
            value = (old.get("baseline") or {}).get(variant)
        else:
            value = (old.get("metrics") or {}).get(variant)
        if value is not None:
            out[variant] = value
    return out or None


def comparisons(
    variants: list[str], tables: dict[str, tuple[list, dict[str, list]]], metrics: list[str]
) -> list[dict[str, Any]]:
    """Paired differences for every pair of variants and metric, Holm-corrected per metric."""
    from llmspec.stats import holm, paired_difference

    out = []
    for metric in metrics:
        rows = []
        for a, b in combinations(variants, 2):
            ka, va = tables[a]
            kb, vb = tables[b]
            if metric not in va or metric not in vb:
                continue
            by_key = {tuple(k): v for k, v in zip(kb, vb[metric], strict=True)}
            pairs = [(x, by_key.get(tuple(k))) for k, x in zip(ka, va[metric], strict=True)]
            diff = paired_difference([p[0] for p in pairs], [p[1] for p in pairs])
            rows.append({"a": a, "b": b, "metric": metric} | diff)
        for row, ok in zip(rows, holm([r["p"] for r in rows]), strict=True):
            row["significant_holm"] = ok
        out += rows
    return out


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.gates import bind, evaluate, parse_gate

    variants = job.inputs["variants"]
    metrics = [m["name"] for m in job.inputs["metrics"]]
    stats: dict[str, dict[str, Any]] = {}
    tables: dict[str, tuple[list, dict[str, list]]] = {}
    deterministic: set[str] = set()
    for v in variants:
        out, meta = deps.pair(f"summary.{v}")
        stats[v] = dict(out["stats"]) | meta.get("stats", {})
        deterministic |= set(out["stats"])
        tables[v] = (out["keys"], out["values"])
    baseline = job.inputs.get("baseline")
    checks = []
    for text in job.inputs["gates"]:
        gate = bind(parse_gate(text), tuple(metrics), tuple(variants))
        for c in evaluate(gate, stats, baseline):
            checks.append(
                {
                    "gate": c.gate,
                    "variant": c.variant,
                    "value": c.value if gate.left.metric in deterministic else None,
                    "threshold": c.threshold,
                    "passed": c.passed,
                    **({"reason": c.reason} if c.reason else {}),
                }
            )
    passed = all(c["passed"] is not False for c in checks)
    output = {
        "passed": passed,
        "results": checks,
        "metrics": {
            v: {
                m: {k: s.get(k) for k in LOCKED_STATS}
                for m, s in stats[v].items()
                if m in deterministic
            }
            for v in variants
        },
        "baseline": baseline,
        "comparisons": comparisons(variants, tables, sorted(deterministic)),
    }
    return output, {}


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    from llmspec.lock import rounded

    return {
        "passed": output["passed"],
        "metrics": {
            v: {
                m: {k: rounded(x) if k != "n" else x for k, x in s.items()}
                for m, s in sorted(ms.items())
            }
            for v, ms in sorted(output["metrics"].items())
        },
        "baseline": output.get("baseline"),
        "gates": [
            {
                "gate": c["gate"],
                "variant": c["variant"],
                "value": rounded(c["value"]),
                "threshold": rounded(c["threshold"]),
                "passed": c["passed"],
            }
            for c in output["results"]
        ],
    }


KIND = JobKind(
    name="gate",
    version=3,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="diamond",
    lock_section="suites",
    lock_name=lambda job: job.id.removeprefix("gate."),
    lock_entry=lock_entry,
    description="a suite's gates and A/B comparisons",
)
