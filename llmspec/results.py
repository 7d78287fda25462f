"""Results as a value: what the suites of a project found, built from graph + store + lock.

`collect_results(graph, store, lock)` gives a `Results` document (versioned; its JSON Schema is
`schemas/results.schema.json`): per suite and variant the row counts, errors grouped by cause,
truncations and each metric's statistics; each gate's value and verdict; and per row its
inputs, retrieved context, output, reference, metric values, error, truncation and guarantee.
Reporters (`llmspec.report`) render it; nothing here computes a metric.

Where this machine's store lacks a suite's results (a fresh CI checkout), the lock's record of
it (means and gate verdicts) is used and the suite is marked `from_lock`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RESULTS_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricResult(_Frozen):
    n: int = 0
    missing: int = 0
    mean: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p95: float | None = None
    rate: float | None = None
    lcb95: float | None = None
    ucb95: float | None = None


class Agreement(_Frozen):
    rows: int
    agreement: float | None = Field(description="share of repeated rows whose repeats agree")
    flip_rate: float | None = Field(None, description="0/1 metrics: share whose verdict flips")


class VariantResult(_Frozen):
    name: str
    model: str
    prompt: str
    rows: int = 0
    errors: int = 0
    truncated: int = 0
    closed_early: int = Field(0, description="rows closed early to end valid within max_tokens")
    causes: dict[str, int] = Field({}, description="row errors grouped by cause")
    metrics: dict[str, MetricResult] = {}
    repeats: dict[str, Agreement] = Field({}, description="agreement between repeats, by metric")


class Comparison(_Frozen):
    """A/B: the paired difference `a - b` of a metric over the rows both variants scored."""

    a: str
    b: str
    metric: str
    n: int
    mean: float | None
    lcb95: float | None
    ucb95: float | None
    p: float | None = None
    significant: bool = False
    significant_holm: bool = Field(False, description="after Holm correction across pairs")


class GateResult(_Frozen):
    gate: str
    variant: str | None
    value: float | None
    threshold: float | None = None
    passed: bool | None = Field(description="None: skipped (e.g. no baseline recorded yet)")
    reason: str | None = None


class RowResult(_Frozen):
    variant: str
    row: int
    repeat: int
    input: dict[str, Any] = {}
    context: list[dict[str, Any]] | None = None
    output: str | None = None
    reference: Any = None
    metrics: dict[str, float | None] = {}
    reasons: dict[str, str | None] = Field({}, description="judge metrics: the judge's reason")
    finish: str | None = None
    guarantee: str | None = None
    valid: bool | None = None
    error: str | None = None
    violation: str | None = None
    tokens: int | None = None
    seconds: float | None = None
    attempts: int | None = Field(None, description="enforce: best_effort: generations tried")


class MetricInfo(_Frozen):
    name: str
    kind: str
    higher_is_better: bool = True
    description: str = ""


class SuiteResult(_Frozen):
    name: str
    description: str | None = None
    status: Literal["passed", "failed", "not run", "incomplete"]
    from_lock: bool = False
    metrics: list[str] = []
    metric_info: list[MetricInfo] = []
    variants: list[VariantResult] = []
    gates: list[GateResult] = []
    comparisons: list[Comparison] = []
    rows: list[RowResult] = []


class Results(_Frozen):
    """Everything `llmspec report` shows. Versioned; see schemas/results.schema.json."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="llmspec results")

    results_version: Literal[1] = RESULTS_VERSION
    project: str
    suites: list[SuiteResult] = []


def collect_results(graph: Any, store: Any, lock: Any, spec: Any = None) -> Results:
    """The results of every suite in `graph`, from the store (or the lock where it lacks them).
    `spec` (the project) adds descriptions."""
    suites = []
    for job in graph.jobs.values():
        if job.kind == "gate":
            suites.append(_suite(graph, store, lock, job, spec))
    return Results(project=graph.project, suites=suites)


def _metric_info(graph: Any, gate_job: Any) -> list[MetricInfo]:
    from llmspec.metrics import METRICS

    for summary_id in gate_job.deps.values():
        for shard_id in graph.jobs[summary_id].deps.values():
            return [
                MetricInfo(
                    name=m["name"],
                    kind=m["kind"],
                    higher_is_better=METRICS[m["kind"]].higher_is_better,
                    description=METRICS[m["kind"]].description,
                )
                for m in graph.jobs[shard_id].inputs["metrics"]
            ]
    return []


def _suite(graph: Any, store: Any, lock: Any, gate_job: Any, spec: Any) -> SuiteResult:
    name = gate_job.id.removeprefix("gate.")
    s = spec.suites.get(name) if spec is not None else None
    description = s.description if s is not None else None
    info = _metric_info(graph, gate_job)
    metrics = [m.name for m in info]
    variants, rows = [], []
    complete = True
    for role, summary_id in gate_job.deps.items():
        variant = role.removeprefix("summary.")
        summary_job = graph.jobs[summary_id]
        model, prompt = _variant_names(graph, summary_job)
        summary = store.get(summary_job.key)
        if summary is None:
            complete = False
            continue
        out = summary.output
        stats = dict(out["stats"]) | summary.meta.get("stats", {})
        variants.append(
            VariantResult(
                name=variant,
                model=model,
                prompt=prompt,
                rows=out["rows"],
                errors=out["errors"],
                truncated=out["truncated"],
                closed_early=out.get("closed_early", 0),
                causes=out.get("causes", {}),
                metrics={
                    m: MetricResult(
                        **{k: v for k, v in st.items() if k in MetricResult.model_fields}
                    )
                    for m, st in stats.items()
                },
                repeats={m: Agreement(**a) for m, a in out.get("repeats", {}).items()},
            )
        )
        rows += _rows(store, graph, summary_job, variant)
    gate_out = store.get(gate_job.key)
    if gate_out is not None and complete:
        out = gate_out.output
        gates = [
            GateResult(
                gate=c["gate"],
                variant=c.get("variant"),
                value=c.get("value"),
                threshold=c.get("threshold"),
                passed=c["passed"],
                reason=c.get("reason"),
            )
            for c in out["results"]
        ]
        return SuiteResult(
            name=name,
            description=description,
            status="passed" if out["passed"] else "failed",
            metrics=metrics,
            metric_info=info,
            variants=variants,
            gates=gates,
            comparisons=[Comparison(**c) for c in out.get("comparisons", [])],
            rows=rows,
        )
    locked = lock.suites.get(name) if lock is not None else None
    locked_job = lock.jobs.get(gate_job.id) if lock is not None else None
    if locked and locked_job is not None and locked_job.key == gate_job.key and not variants:
        return _from_lock(name, description, info, locked, graph, gate_job)
    return SuiteResult(
        name=name,
        description=description,
        status="incomplete" if variants else "not run",
        metrics=metrics,
        metric_info=info,
        variants=variants,
        rows=rows,
    )


def _from_lock(
    name: str, description: Any, info: list[MetricInfo], locked: dict, graph: Any, gate_job: Any
) -> SuiteResult:
    variants = []
    for role, summary_id in gate_job.deps.items():
        variant = role.removeprefix("summary.")
        model, prompt = _variant_names(graph, graph.jobs[summary_id])
        recorded = locked.get("metrics", {}).get(variant, {})
        variants.append(
            VariantResult(
                name=variant,
                model=model,
                prompt=prompt,
                metrics={
                    m: MetricResult(**v) if isinstance(v, dict) else MetricResult(mean=v)
                    for m, v in recorded.items()
                },
            )
        )
    gates = [
        GateResult(
            gate=g["gate"], variant=g.get("variant"), value=g.get("value"), passed=g["passed"]
        )
        for g in locked.get("gates", [])
    ]
    return SuiteResult(
        name=name,
        description=description,
        status="passed" if locked.get("passed") else "failed",
        from_lock=True,
        metrics=[m.name for m in info],
        metric_info=info,
        variants=variants,
        gates=gates,
    )


def _variant_names(graph: Any, summary_job: Any) -> tuple[str, str]:
    for shard_id in summary_job.deps.values():
        gen = graph.jobs[graph.jobs[shard_id].deps["generate"]]
        return gen.origin["model"][1], gen.origin["prompt"][1]
    return "?", "?"


def _rows(store: Any, graph: Any, summary_job: Any, variant: str) -> list[RowResult]:
    out = []
    for role in sorted(summary_job.deps, key=lambda r: int(r.split(".")[1])):
        score_job = graph.jobs[summary_job.deps[role]]
        score = store.get(score_job.key)
        gen = store.get(graph.jobs[score_job.deps["generate"]].key)
        if score is None or gen is None:
            continue
        values = score.output["values"] | score.meta.get("values", {})
        reasons = score.output.get("reasons", {})
        latency = gen.meta.get("latency", [])
        for i, r in enumerate(gen.output["rows"]):
            out.append(
                RowResult(
                    variant=variant,
                    row=r["row"],
                    repeat=r["repeat"],
                    input=r.get("input") or {},
                    context=r.get("context"),
                    output=r.get("output"),
                    reference=r.get("expected"),
                    metrics={m: vs[i] for m, vs in values.items() if i < len(vs)},
                    reasons={m: vs[i] for m, vs in reasons.items() if i < len(vs)},
                    finish=r.get("finish"),
                    guarantee=r.get("guarantee"),
                    valid=r.get("valid"),
                    error=r.get("error"),
                    violation=r.get("violation"),
                    tokens=r.get("tokens"),
                    attempts=r.get("attempts"),
                    seconds=latency[i] if i < len(latency) else None,
                )
            )
    return out


def results_json_schema() -> dict[str, Any]:
    schema = Results.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://llmspec.dev/schemas/results.schema.json"
    return schema
