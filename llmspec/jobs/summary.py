"""`summary` jobs: a variant's scored shards put together into statistics.

Inputs: the metrics (name, kind, and for corpus metrics the options their corpus score takes).
Per metric: n, mean (for BLEU and chrF the corpus score, as sacrebleu's corpus_score gives it;
for perplexity the corpus perplexity), min, max, p50, p95, rate and a seeded 95% bootstrap
interval; row counts, errors by cause, truncations; with `repeats`, how often repeats agree.
Per-row values are kept (in row order) for the suite's A/B comparisons.
"""

from __future__ import annotations

import math
from typing import Any

from llmspec.jobs import JobKind


def names(spec: Any) -> Any:
    return spec.suites


def build(cx: Any, suite_name: str) -> dict[str, Any]:
    from llmspec.metrics import METRICS

    scores = cx.get("score", suite_name)
    metrics = [
        {"name": m["name"], "kind": m["kind"], "options": m["options"]}
        if METRICS[m["kind"]].corpus or m["kind"] == "perplexity"
        else {"name": m["name"], "kind": m["kind"]}
        for m in cx.rp.metrics.get(suite_name, ())
    ]
    return {
        variant: cx.job(
            "summary",
            f"summary.{suite_name}.{variant}",
            cx.inputs().set("metrics", metrics),
            deps={f"shard.{i}": job for i, job in enumerate(shards)},
            loc=cx.loc("suites", suite_name, "metrics"),
        )
        for variant, shards in scores.items()
    }


def _perplexity(summed: list[float]) -> float:
    nll, tokens = summed
    return math.exp(nll / tokens) if tokens else math.nan


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.metrics import METRICS, load
    from llmspec.stats import corpus_summary, repeat_agreement, summarize_values

    keys: list[list[int]] = []
    values: dict[str, list[Any]] = {}
    varying: dict[str, list[Any]] = {}
    corpus: dict[str, list[Any]] = {}
    errors = truncated = closed_early = 0
    causes: dict[str, int] = {}
    for role in sorted(deps, key=lambda r: int(r.split(".")[1])):
        out, meta = deps.pair(role)
        keys += out["rows"]
        for name, vs in out["values"].items():
            values.setdefault(name, []).extend(vs)
        for name, vs in meta.get("values", {}).items():
            varying.setdefault(name, []).extend(vs)
        for name, vs in out["corpus"].items():
            corpus.setdefault(name, []).extend(vs)
        errors += out["errors"]
        truncated += out["truncated"]
        closed_early += out.get("closed_early", 0)
        for cause, n in out["causes"].items():
            causes[cause] = causes.get(cause, 0) + n
    stats: dict[str, Any] = {}
    repeats: dict[str, Any] = {}
    for m in job.inputs["metrics"]:
        name, rec = m["name"], METRICS[m["kind"]]
        vs = values.get(name) if name in values else varying.get(name, [])
        if rec.corpus:
            scorer, opts = load(rec.corpus), m["options"]
            s = corpus_summary(corpus[name], vs, lambda sums, f=scorer, o=opts: f.score(sums, o))
        elif m["kind"] == "perplexity":
            s = corpus_summary(corpus[name], vs, _perplexity)
        else:
            s = summarize_values(vs)
        stats[name] = s
        agreement = repeat_agreement(keys, vs) if name in values else None
        if agreement is not None:
            repeats[name] = agreement
    deterministic = {n: s for n, s in stats.items() if n in values}
    output = {
        "rows": len(keys),
        "errors": errors,
        "truncated": truncated,
        "closed_early": closed_early,
        "causes": dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "stats": deterministic,
        "repeats": repeats,
        "keys": keys,
        "values": values,
    }
    meta = {"stats": {n: s for n, s in stats.items() if n not in values}, "values": varying}
    return output, meta


KIND = JobKind(
    name="summary",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="ellipse",
    description="a variant's statistics over all of its shards",
)
