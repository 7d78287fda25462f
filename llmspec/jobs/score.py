"""`score` jobs: a suite's metrics over one shard of one variant's generations.

Inputs: the metrics (name, kind, implementation version, options; for `cost` the model's
price, for `semantic_similarity` the embedding model's identity). The generations come from the
shard's generate job; judge verdicts and perplexities from their own jobs. Score jobs run on the
general workers (which keep embedding models loaded), one per shard, so a large suite is scored
in parallel; the variant's `summary` job puts the shards together.

Output: per row its metric values (columns, in row order), the sufficient statistics of corpus
metrics (BLEU, chrF), judge reasons, and the shard's error and truncation counts by cause.
Values that vary run to run (latency) go to `meta`, outside the output's digest.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import JobKind

FROM_DEPS = ("judge", "perplexity")  # computed by their own jobs


def names(spec: Any) -> Any:
    return spec.suites


def metric_inputs(cx: Any, suite_name: str, model: str) -> tuple[list[dict], dict[str, str]]:
    """The metric specs a variant's score jobs take (price and embedder identity filled in),
    and the embedders' folders by metric name (machine-local)."""
    specs, embed_paths = [], {}
    for m in cx.rp.metrics.get(suite_name, ()):
        spec = {k: m[k] for k in ("name", "kind", "version")} | {"options": dict(m["options"])}
        if m["kind"] == "cost":
            spec["options"]["price"] = cx.facts.model(model).get("price")
        if m["kind"] == "semantic_similarity":
            identity, path = cx.facts.embedder(m["options"]["embed"])
            spec["options"]["embed"] = identity
            embed_paths[m["name"]] = path
        specs.append(spec)
    return specs, embed_paths


def build(cx: Any, suite_name: str) -> dict[str, list[Any]]:
    from llmspec.resolve.suites import variants

    s = cx.spec.suites[suite_name]
    gens = cx.get("generate", suite_name)
    judges = cx.get("judge", suite_name)
    ppl = cx.get("perplexity", suite_name)
    out: dict[str, list[Any]] = {}
    for variant, model, _prompt in variants(s):
        specs, embed_paths = metric_inputs(cx, suite_name, model)
        jobs = []
        for i, gen in enumerate(gens[variant]):
            deps = {"generate": gen}
            for (v, metric), shards in judges.items():
                if v == variant:
                    deps[f"judge.{metric}"] = shards[i]
            if variant in ppl:
                deps["perplexity"] = ppl[variant][i]
            jobs.append(
                cx.job(
                    "score",
                    f"score.{suite_name}.{variant}.{i}",
                    cx.inputs().set("metrics", specs),
                    deps=deps,
                    local={"embed": embed_paths},
                    loc=cx.loc("suites", suite_name, "metrics"),
                )
            )
        out[variant] = jobs
    return out


class _Context:
    def __init__(self, ctx: Any, paths: dict[str, str]):
        self.ctx = ctx
        self.paths = paths

    def embedder(self, path: str) -> Any:
        return self.ctx.embedder(path)


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.metrics import METRICS, load

    gen_out, gen_meta = deps.pair("generate")
    latency = gen_meta.get("latency") or []
    first = gen_meta.get("first_token") or []
    rows = [
        dict(r)
        | {
            "seconds": latency[i] if i < len(latency) else None,
            "first_token_seconds": first[i] if i < len(first) else None,
        }
        for i, r in enumerate(gen_out["rows"])
    ]
    values: dict[str, list[Any]] = {}
    varying: dict[str, list[Any]] = {}
    corpus: dict[str, list[Any]] = {}
    reasons: dict[str, list[Any]] = {}
    mctx = _Context(ctx, job.local.get("embed", {}))
    for spec in job.inputs["metrics"]:
        rec = METRICS[spec["kind"]]
        opts = dict(spec["options"])
        if spec["kind"] == "judge":
            verdicts = {
                (v["row"], v["repeat"]): v for v in deps[f"judge.{spec['name']}"]["verdicts"]
            }
            got = [verdicts.get((r["row"], r["repeat"])) for r in rows]
            vs = [None if v is None else v["score"] for v in got]
            reasons[spec["name"]] = [None if v is None else v["reason"] or v["error"] for v in got]
        elif spec["kind"] == "perplexity":
            by_row = {p["row"]: p for p in deps["perplexity"]["rows"]}
            got = [by_row.get(r["row"]) for r in rows]
            vs = [None if p is None else p["perplexity"] for p in got]
            corpus[spec["name"]] = [
                None if p is None or p["nll"] is None else [p["nll"], p["tokens"]] for p in got
            ]
        else:
            if rec.needs == "embedder":
                opts["embed_path"] = mctx.paths[spec["name"]]
            vs = load(rec.impl)(rows, opts, mctx)
            if rec.corpus:
                corpus[spec["name"]] = load(rec.corpus).row_stats(rows, opts)
        clean = [None if v is None else round(float(v), 6) for v in vs]
        (values if rec.deterministic else varying)[spec["name"]] = clean
    errors = truncated = closed_early = 0
    causes: dict[str, int] = {}
    for r in rows:
        if r["finish"] == "error":
            errors += 1
            cause = error_cause(r.get("error"))
            causes[cause] = causes.get(cause, 0) + 1
        elif r["finish"] == "length":
            truncated += 1
        elif r["finish"] == "budget":
            closed_early += 1
    output = {
        "rows": [[r["row"], r["repeat"]] for r in rows],
        "values": values,
        "corpus": corpus,
        "reasons": reasons,
        "errors": errors,
        "truncated": truncated,
        "closed_early": closed_early,
        "causes": causes,
    }
    return output, {"values": varying}


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
    version=3,
    names=names,
    build=build,
    run=run,
    pool="general",
    shape="ellipse",
    description="a suite's metrics over one shard of a variant",
)
