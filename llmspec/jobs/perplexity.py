"""`perplexity` jobs: how likely a variant's model finds the reference answers, per shard.

For each row: the reference's negative log-likelihood under the model, after the same rendered
prompt the generation saw (retrieved context included), and its token count; the row's value
is exp(NLL / tokens), and the suite's is the corpus perplexity exp(sum NLL / sum tokens).
Needs the log-probabilities only a local transformers model gives (validate says so).
"""

from __future__ import annotations

import math
from typing import Any

from llmspec.jobs import JobError, JobKind


def names(spec: Any) -> Any:
    from llmspec.spec import suites_of

    return suites_of(spec, "eval")


def build(cx: Any, suite_name: str) -> dict[str, list[Any]]:
    from llmspec.jobs.generate import prompt_inputs

    if not any(m["kind"] == "perplexity" for m in cx.rp.metrics.get(suite_name, ())):
        return {}
    from llmspec.resolve.suites import variants

    s = cx.spec.suites[suite_name]
    gens = cx.get("generate", suite_name)
    out: dict[str, list[Any]] = {}
    for variant, model, prompt in variants(s):
        out[variant] = [
            cx.job(
                "perplexity",
                f"perplexity.{suite_name}.{variant}.{i}",
                prompt_inputs(cx, model, prompt),
                deps={"generate": gen},
                local={"model": cx.facts.model_local(model)},
                loc=cx.loc("suites", suite_name, "metrics"),
                model=model,
            )
            for i, gen in enumerate(gens[variant])
        ]
    return out


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.jobs.generate import render_requests
    from llmspec.metrics.text import references

    rows = [r for r in deps["generate"]["rows"] if r["repeat"] == 0]
    inputs = [r.get("input") or {} for r in rows]
    contexts = None
    if any("context" in r for r in rows):
        contexts = [[c["text"] for c in r.get("context", [])] for r in rows]
    start = rows[0]["row"] if rows else 0
    requests, slots = render_requests(job.inputs, inputs, contexts, start, 1)
    provider = ctx.provider(job.inputs["model"] | job.local["model"])
    if not hasattr(provider, "logprobs"):
        raise JobError("this model's provider gives no log-probabilities")
    items, where = [], []
    req = iter(requests)
    for (i, _rep, err), row in zip(slots, rows, strict=True):
        refs = references(row)
        r = next(req) if err is None else None
        if r is not None and refs:
            items.append((r, refs[0]))
            where.append(i)
    scored = dict(zip(where, provider.logprobs(items), strict=True))
    out = []
    for i, row in enumerate(rows):
        got = scored.get(i)
        if isinstance(got, tuple):
            nll, n = got
            out.append(
                {
                    "row": row["row"],
                    "nll": round(nll, 6),
                    "tokens": n,
                    "perplexity": round(math.exp(nll / n), 6),
                    "error": None,
                }
            )
        else:
            out.append(
                {
                    "row": row["row"],
                    "nll": None,
                    "tokens": None,
                    "perplexity": None,
                    "error": got or "no reference",
                }
            )
    return {"rows": out}, {}


KIND = JobKind(
    name="perplexity",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="model",
    shape="box",
    description="log-probabilities of the references under a variant's model",
)
