"""`judge` jobs: a declared model grades one shard of a variant's answers against a rubric.

Inputs: the judge model's settings, the rubric, the scale and the part of the output it sees;
the answers come from the generate job it depends on. The verdict is constrained to a schema
(a reason, then an integer score on the scale), so it always parses where the judge's provider
can enforce it; the score is reported on 0..1 and the reason is kept per row. Changing the
judge or the rubric re-runs this job and the scores, never the generation.
"""

from __future__ import annotations

import json
from typing import Any

from llmspec.jobs import JobKind

SYSTEM = (
    "You are a strict, fair grader of answers. Read the rubric, the question and the answer, "
    "then reply in JSON with a one-sentence reason and an integer score on the given scale."
)
VERDICT_TOKENS = 160  # room for the reason and the score, whatever the judge's max_tokens


def verdict_schema(lo: int, hi: int) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["reason", "score"],
        "additionalProperties": False,
        "properties": {
            "reason": {"type": "string", "maxLength": 200},
            "score": {"type": "integer", "minimum": lo, "maximum": hi},
        },
    }


GROUNDEDNESS_RUBRIC = (
    "Score how well the answer is supported by the context alone: 5 when every claim in it is "
    "stated in the context, 1 when none is. Do not use outside knowledge; an answer that says "
    "the context does not tell is supported."
)


def judge_metrics(cx: Any, suite_name: str) -> list[dict[str, Any]]:
    """The suite's model-graded metrics: `judge`, and `groundedness` with a `judge:` model."""
    return [
        m
        for m in cx.rp.metrics.get(suite_name, ())
        if m["kind"] == "judge" or (m["kind"] == "groundedness" and m["options"].get("judge"))
    ]


def settings_of(m: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(judge model, what the judge job is told) of a model-graded metric."""
    opts = m["options"]
    if m["kind"] == "groundedness":
        return opts["judge"], {
            "rubric": GROUNDEDNESS_RUBRIC,
            "scale": [1, 5],
            "field": opts["field"],
            "reference": False,
        }
    return opts["model"], {k: opts[k] for k in ("rubric", "scale", "field")}


def names(spec: Any) -> Any:
    from llmspec.spec import suites_of

    return suites_of(spec, "eval")


def build(cx: Any, suite_name: str) -> dict[tuple[str, str], list[Any]]:
    """Judge jobs by (variant, metric name), one per generate shard."""
    out: dict[tuple[str, str], list[Any]] = {}
    metrics = judge_metrics(cx, suite_name)
    if not metrics:
        return out
    gens = cx.get("generate", suite_name)
    for m in metrics:
        model, settings = settings_of(m)
        keys = tuple(k for k in cx.facts.model(model) if k != "price")
        for variant, shards in gens.items():
            jobs = []
            for i, gen in enumerate(shards):
                ins = cx.inputs().take("model", "models", model, keys)
                ins.set("judge", settings)
                jobs.append(
                    cx.job(
                        "judge",
                        f"judge.{suite_name}.{variant}.{m['name']}.{i}",
                        ins,
                        deps={"generate": gen},
                        local={"model": cx.facts.model_local(model)},
                        loc=cx.loc("suites", suite_name, "metrics"),
                        model=model,
                    )
                )
            out[(variant, m["name"])] = jobs
    return out


def _request_text(row: dict[str, Any], settings: dict[str, Any], answer: str) -> str:
    from llmspec.jobs.generate import query_of

    lo, hi = settings["scale"]
    parts = [f"Rubric: {settings['rubric']}", f"Scale: {lo} (worst) to {hi} (best).", ""]
    parts.append(f"Question: {query_of(row.get('input') or {})}")
    if row.get("context"):
        parts.append("Context:")
        parts += [f"- {c['text']}" for c in row["context"]]
    if row.get("expected") is not None and settings.get("reference", True):
        parts.append(f"Reference answer: {row['expected']}")
    parts += [f"Answer: {answer}", "", "JSON:"]
    return "\n".join(parts)


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.constraints import Constraint
    from llmspec.jobs.generate import row_seed
    from llmspec.metrics.text import text_of
    from llmspec.providers import Request

    settings = job.inputs["judge"]
    model = job.inputs["model"]
    params = model["params"]
    lo, hi = settings["scale"]
    constraint = Constraint("json_schema", verdict_schema(lo, hi))
    rows = deps["generate"]["rows"]
    requests, slots = [], []
    for r in rows:
        answer = text_of(dict(r), settings["field"])
        if answer is None:
            continue
        requests.append(
            Request(
                system=SYSTEM,
                prompt=_request_text(r, settings, answer),
                constraint=constraint,
                max_tokens=max(params["max_tokens"], VERDICT_TOKENS),
                temperature=params["temperature"],
                top_p=params["top_p"],
                seed=row_seed(params["seed"], r["row"], r["repeat"]),
            )
        )
        slots.append(r)
    results = ctx.provider(model | job.local["model"]).generate(requests) if requests else []
    by_row = {(s["row"], s["repeat"]): res for s, res in zip(slots, results, strict=True)}
    verdicts = []
    for r in rows:
        res = by_row.get((r["row"], r["repeat"]))
        entry: dict[str, Any] = {"row": r["row"], "repeat": r["repeat"]}
        if res is None:
            entry |= {"score": None, "raw": None, "reason": None, "error": "no answer to judge"}
        elif res.finish != "stop":
            entry |= {
                "score": None,
                "raw": None,
                "reason": None,
                "error": res.error or f"the verdict did not finish ({res.finish})",
            }
        else:
            try:
                verdict = json.loads(res.text)
                raw = int(verdict["score"])
                entry |= {
                    "score": (raw - lo) / (hi - lo) if hi > lo else 1.0,
                    "raw": raw,
                    "reason": str(verdict.get("reason", "")),
                    "error": None,
                }
            except (ValueError, KeyError, TypeError):
                entry |= {
                    "score": None,
                    "raw": None,
                    "reason": None,
                    "error": "the verdict is not the expected JSON",
                }
        verdicts.append(entry)
    return {"verdicts": verdicts}, {}


KIND = JobKind(
    name="judge",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="model",
    shape="hexagon",
    rows=lambda job: 0,
    description="a model grades one shard of answers against a rubric",
)
