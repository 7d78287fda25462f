"""`gate` jobs: a suite's gates, checked against the statistics of every variant.

Inputs: the gates (in the canonical form they were parsed into at validate time), the metrics
and the variants they apply to. The verdicts go to
the lock's `suites` section, with each variant's metric means.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import JobKind


def names(spec: Any) -> Any:
    return spec.suites


def build(cx: Any, suite_name: str) -> Any:
    scores = cx.get("score", suite_name)
    gates = [str(g) for g in cx.rp.gates.get(suite_name, ())]
    metrics = list(cx.spec.suites[suite_name].metrics)
    ins = cx.inputs().set("gates", gates).set("variants", sorted(scores)).set("metrics", metrics)
    return cx.job(
        "gate",
        f"gate.{suite_name}",
        ins,
        deps={f"score.{v}": job for v, job in scores.items()},
        loc=cx.loc("suites", suite_name, "gates"),
    )


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.gates import bind, evaluate, parse_gate

    stats, means, varying = {}, {}, {}
    for v in job.inputs["variants"]:
        out, meta = deps.pair(f"score.{v}")
        stats[v] = dict(out["stats"]) | meta.get("stats", {})
        means[v] = out["metrics"]
        varying[v] = meta.get("metrics", {})
    checks = []
    observed = {}
    metrics, names = tuple(job.inputs["metrics"]), tuple(job.inputs["variants"])
    for text in job.inputs["gates"]:
        gate = bind(parse_gate(text), metrics, names)
        for c in evaluate(gate, stats):
            deterministic = gate.left.metric in next(iter(means.values()), {})
            checks.append(
                {
                    "gate": c.gate,
                    "variant": c.variant,
                    "value": c.value if deterministic else None,
                    "threshold": c.threshold,
                    "passed": c.passed,
                    **({"reason": c.reason} if c.reason else {}),
                }
            )
            observed[f"{c.variant}:{c.gate}"] = c.value
    passed = all(c["passed"] is not False for c in checks)
    output = {"passed": passed, "results": checks, "metrics": means}
    return output, {"values": observed, "varying": varying}


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    from llmspec.lock import rounded

    return {
        "passed": output["passed"],
        "metrics": {
            v: {k: rounded(x) for k, x in sorted(ms.items())}
            for v, ms in sorted(output["metrics"].items())
        },
        "gates": [
            {
                "gate": c["gate"],
                "variant": c["variant"],
                "value": rounded(c["value"]),
                "passed": c["passed"],
            }
            for c in output["results"]
        ],
    }


KIND = JobKind(
    name="gate",
    version=2,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="diamond",
    lock_section="suites",
    lock_name=lambda job: job.id.removeprefix("gate."),
    lock_entry=lock_entry,
    description="a suite's gates",
)
