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


class GroupResult(_Frozen):
    """A variant's rows of one question kind: their count, each metric's n, mean, min, max
    and rate, and the wrong answers by the component blamed."""

    rows: int = 0
    metrics: dict[str, MetricResult] = {}
    failures: dict[str, int] = {}


class VariantResult(_Frozen):
    name: str
    model: str
    prompt: str
    size: int | None = Field(None, description="bytes of the model's weights (local models)")
    rows: int = 0
    errors: int = 0
    truncated: int = 0
    closed_early: int = Field(0, description="rows closed early to end valid within max_tokens")
    causes: dict[str, int] = Field({}, description="row errors grouped by cause")
    metrics: dict[str, MetricResult] = {}
    repeats: dict[str, Agreement] = Field({}, description="agreement between repeats, by metric")
    by_kind: dict[str, GroupResult] = Field(
        {}, description="per question kind (the dataset's `kind` column), when rows have one"
    )
    failures: dict[str, int] = Field(
        {},
        description="suites that retrieve: wrong answers by the component blamed (retriever, "
        "generator, knowledge base)",
    )


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
    failure: str | None = Field(
        None, description="a wrong answer's component: retriever, generator, knowledge base"
    )


class MetricInfo(_Frozen):
    name: str
    kind: str
    higher_is_better: bool = True
    description: str = ""
    method: str | None = Field(None, description="how it was computed, where that varies")


class TestSetResult(_Frozen):
    """A generated test set: its items by kind, the rejected ones by reason, its export."""

    __test__ = False  # not a pytest class

    name: str
    items: int = Field(0, description="accepted items: the dataset's rows")
    slots: int = Field(0, description="items asked for, rejected ones included")
    kinds: dict[str, int] = {}
    rejected: dict[str, int] = Field({}, description="rejected items by reason")
    export: str | None = None
    digest: str | None = Field(None, description="of the export file")
    kept: int | None = Field(None, description="items kept from the export file this apply")
    generated: int | None = Field(None, description="items asked of the model this apply")
    from_lock: bool = False


class AttackCell(_Frozen):
    """A red-team family under one strategy (`plain`: the base probes, no strategy)."""

    family: str
    strategy: str
    n: int = Field(0, description="attempts scored (a bias pair counts once)")
    successes: int | None = None
    probes: int | None = None
    attempts: int | None = Field(None, description="generations per probe")
    missing: int = Field(0, description="attempts whose generation failed")
    asr: float | None = Field(None, description="attack success rate: successes / n")
    lcb95: float | None = Field(None, description="95% Wilson interval, lower bound")
    ucb95: float | None = None
    baseline: float | None = Field(None, description="the family's ASR without a strategy")


class FamilyInfo(_Frozen):
    name: str
    owasp: str | None = Field(description="OWASP Top 10 for LLM Applications (2025) id")
    owasp_name: str | None = None
    description: str = ""
    detector: str = ""


class RedteamVariant(_Frozen):
    name: str
    cells: list[AttackCell] = []
    planted: int = Field(0, description="attempts whose probe planted a document in the index")
    planted_retrieved: int = Field(0, description="of those, how many retrieved it")


class Transcript(_Frozen):
    """A successful attack, as the target saw and answered it."""

    variant: str
    family: str
    strategy: str
    probe: str
    attempt: int = 0
    input: str
    document: str | None = Field(None, description="what the probe placed in the context")
    retrieved: bool | None = Field(None, description="whether retrieval surfaced the document")
    output: str | None = None
    evidence: str | None = None
    paired_input: str | None = Field(None, description="bias: the other side of the pair")
    paired_output: str | None = None


class RedteamResult(_Frozen):
    probe_set: str
    families: list[FamilyInfo] = []
    strategies: list[str] = []
    variants: list[RedteamVariant] = []
    worst: list[Transcript] = Field([], description="successful attacks, a few per family")


class SuiteResult(_Frozen):
    name: str
    description: str | None = None
    kind: Literal["eval", "redteam"] = "eval"
    status: Literal["passed", "failed", "not run", "incomplete"]
    from_lock: bool = False
    metrics: list[str] = []
    metric_info: list[MetricInfo] = []
    variants: list[VariantResult] = []
    gates: list[GateResult] = []
    comparisons: list[Comparison] = []
    rows: list[RowResult] = []
    redteam: RedteamResult | None = Field(None, description="red-team suites: ASR by strategy")


class TrainingPoint(_Frozen):
    epoch: int
    step: int
    loss: float | None = Field(None, description="mean training loss over the epoch")


class ModelResult(_Frozen):
    """A model whose weights a job made (fine-tuned, quantized): from what, how, the outcome."""

    name: str
    made_by: Literal["finetune", "quantize"]
    status: Literal["made", "not made", "from lock"]
    source: str = Field(description="the model it was made from")
    method: str = Field(description="lora, full; dynamic_int8, ...")
    dataset: str | None = Field(None, description="the training rows (fine-tunes)")
    rows: int | None = None
    epochs: int | None = None
    steps: int | None = None
    size: int | None = Field(None, description="bytes of the weights folder")
    source_size: int | None = Field(None, description="bytes of the source's (quantized)")
    first_loss: float | None = None
    loss: float | None = Field(None, description="mean training loss of the last epoch")
    curve: list[TrainingPoint] = Field([], description="the training curve, per epoch")
    trainer: str | None = Field(None, description="inline, or ray-train")
    seconds: float | None = Field(None, description="training time (not counting start-up)")
    samples_per_s: float | None = Field(None, description="training rows per second")


class Results(_Frozen):
    """Everything `llmspec report` shows. Versioned; see schemas/results.schema.json."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="llmspec results")

    results_version: Literal[1] = RESULTS_VERSION
    project: str
    models: list[ModelResult] = Field([], description="models made by fine-tune or quantize jobs")
    suites: list[SuiteResult] = []
    testsets: list[TestSetResult] = []


def collect_results(graph: Any, store: Any, lock: Any, spec: Any = None) -> Results:
    """The results of every suite in `graph`, from the store (or the lock where it lacks them).
    `spec` (the project) adds descriptions."""
    suites, testsets = [], []
    for job in graph.jobs.values():
        if job.kind == "gate":
            suites.append(_suite(graph, store, lock, job, spec))
        elif job.kind == "testgen":
            testsets.append(_testset(store, lock, job))
    from llmspec.provenance import made_models

    models = made_models(graph, store, lock)
    return Results(project=graph.project, models=models, suites=suites, testsets=testsets)


def _testset(store: Any, lock: Any, job: Any) -> TestSetResult:
    name = job.id.removeprefix("testgen.")
    got = store.get(job.key)
    if got is not None:
        out, meta = got.output, got.meta
        return TestSetResult(
            name=name,
            items=len(out["rows"]),
            slots=len(out["items"]),
            kinds=out["kinds"],
            rejected=out["rejected"],
            export=(out.get("export") or {}).get("path"),
            digest=(out.get("export") or {}).get("digest"),
            kept=meta.get("kept"),
            generated=meta.get("generated"),
        )
    entry = lock.section("testsets").get(name) if lock is not None else None
    locked = lock.jobs.get(job.id) if lock is not None else None
    if entry and locked is not None and locked.key == job.key:
        return TestSetResult(
            name=name,
            items=entry.get("items", 0),
            slots=entry.get("items", 0) + sum(entry.get("rejected", {}).values()),
            kinds=entry.get("kinds", {}),
            rejected=entry.get("rejected", {}),
            export=entry.get("export"),
            digest=entry.get("digest"),
            from_lock=True,
        )
    return TestSetResult(name=name)


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
                    method=_method(m),
                )
                for m in graph.jobs[shard_id].inputs["metrics"]
            ]
    return []


def _method(m: dict[str, Any]) -> str | None:
    if m["kind"] != "groundedness":
        return None
    judge = m["options"].get("judge")
    if judge:
        return f"graded by judge model `{judge}`"
    return "embedding similarity of answer sentences and retrieved chunks (no judge declared)"


def _plain(values: list[Any]) -> MetricResult:
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return MetricResult(missing=len(values))
    ones = sum(1 for x in xs if x == 1.0)
    return MetricResult(
        n=len(xs),
        missing=len(values) - len(xs),
        mean=round(sum(xs) / len(xs), 6),
        min=min(xs),
        max=max(xs),
        rate=round(ones / len(xs), 6),
    )


def breakdown(rows: list[RowResult], metrics: list[str]) -> dict[str, GroupResult]:
    """Rows grouped by their `kind` column: per group its count, each metric's plain
    statistics and the failures by component. Empty when no row has a kind."""
    groups: dict[str, list[RowResult]] = {}
    for r in rows:
        kind = r.input.get("kind")
        if isinstance(kind, str):
            groups.setdefault(kind, []).append(r)
    out = {}
    for kind, rs in sorted(groups.items()):
        out[kind] = GroupResult(
            rows=len(rs),
            metrics={m: _plain([r.metrics.get(m) for r in rs]) for m in metrics},
            failures=_failures(rs),
        )
    return out


def _failures(rows: list[RowResult]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        if r.failure:
            counts[r.failure] = counts.get(r.failure, 0) + 1
    return dict(sorted(counts.items()))


def _suite(graph: Any, store: Any, lock: Any, gate_job: Any, spec: Any) -> SuiteResult:
    name = gate_job.id.removeprefix("gate.")
    s = spec.suites.get(name) if spec is not None else None
    description = s.description if s is not None else None
    redteam = None
    if any(graph.jobs[d].kind == "detect" for d in gate_job.deps.values()):
        from llmspec.probes.report import redteam_parts

        kind = "redteam"
        info, variants, rows, redteam, complete = redteam_parts(graph, store, gate_job)
    else:
        kind = "eval"
        info, variants, rows, complete = _eval_parts(graph, store, gate_job)
    metrics = [m.name for m in info]
    head = {"name": name, "description": description, "kind": kind, "metrics": metrics}
    head["metric_info"] = info
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
            **head,
            status="passed" if out["passed"] else "failed",
            variants=variants,
            gates=gates,
            comparisons=[Comparison(**c) for c in out.get("comparisons", [])],
            rows=rows,
            redteam=redteam,
        )
    locked = lock.suites.get(name) if lock is not None else None
    locked_job = lock.jobs.get(gate_job.id) if lock is not None else None
    if locked and locked_job is not None and locked_job.key == gate_job.key and not variants:
        result = _from_lock(name, description, info, locked, graph, gate_job)
        if kind == "redteam":
            from llmspec.probes.report import redteam_from_lock

            result = result.model_copy(
                update={"kind": kind, "redteam": redteam_from_lock(graph, gate_job, result)}
            )
        return result
    return SuiteResult(
        **head,
        status="incomplete" if variants else "not run",
        variants=variants,
        rows=rows,
        redteam=redteam,
    )


def _eval_parts(graph: Any, store: Any, gate_job: Any) -> tuple:
    """(metric info, variants, rows, complete) of an eval suite, from its summaries."""
    from llmspec.provenance import weights_size

    info = _metric_info(graph, gate_job)
    metrics = [m.name for m in info]
    variants, rows = [], []
    complete = True
    for role, summary_id in gate_job.deps.items():
        variant = role.removeprefix("summary.")
        summary_job = graph.jobs[summary_id]
        model, prompt = variant_names(graph, summary_job)
        summary = store.get(summary_job.key)
        if summary is None:
            complete = False
            continue
        out = summary.output
        stats = dict(out["stats"]) | summary.meta.get("stats", {})
        mine = _rows(store, graph, summary_job, variant)
        rows += mine
        attributed = any("attribution" in graph.jobs[d].inputs for d in summary_job.deps.values())
        variants.append(
            VariantResult(
                name=variant,
                model=model,
                prompt=prompt,
                size=weights_size(graph, summary_job),
                rows=out["rows"],
                errors=out["errors"],
                truncated=out["truncated"],
                closed_early=out.get("closed_early", 0),
                causes=out.get("causes", {}),
                metrics={m: metric_result(st) for m, st in stats.items()},
                repeats={m: Agreement(**a) for m, a in out.get("repeats", {}).items()},
                by_kind=breakdown(mine, metrics),
                failures=_failures(mine) if attributed else {},
            )
        )
    return info, variants, rows, complete


def metric_result(stats: dict[str, Any]) -> MetricResult:
    return MetricResult(**{k: v for k, v in stats.items() if k in MetricResult.model_fields})


def _from_lock(
    name: str, description: Any, info: list[MetricInfo], locked: dict, graph: Any, gate_job: Any
) -> SuiteResult:
    variants = []
    for role, summary_id in gate_job.deps.items():
        variant = role.removeprefix("summary.")
        model, prompt = variant_names(graph, graph.jobs[summary_id])
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


def variant_names(graph: Any, summary_job: Any) -> tuple[str, str]:
    """(model, prompt) of a variant, from the job that prompted its model."""
    for shard_id in summary_job.deps.values():
        shard = graph.jobs[shard_id]
        gen = graph.jobs[shard.deps["generate"]] if "generate" in shard.deps else shard
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
        failures = score.output.get("failures") or []
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
                    failure=failures[i] if i < len(failures) else None,
                )
            )
    return out


def results_json_schema() -> dict[str, Any]:
    schema = Results.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://llmspec.dev/schemas/results.schema.json"
    return schema
