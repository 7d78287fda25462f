"""`generate` jobs: one model over one shard of a dataset, with one prompt, `repeats` times.

Inputs: the model's settings, the prompt's texts and output, its schema, the shard's range and
row digests, the reference column, the retrieval settings and the number of repeats. The
dataset file is read at run time and checked against the row digests the plan was made with.
"""

from __future__ import annotations

from typing import Any

from llmspec.hashing import digest
from llmspec.jobs import JobError, JobKind

QUERY_COLUMNS = ("question", "query", "input")


def names(spec: Any) -> Any:
    from llmspec.spec import suites_of

    return suites_of(spec, "eval")


def build(cx: Any, suite_name: str) -> dict[str, list[Any]]:
    """The shard jobs of each variant (model x prompt) of a suite."""
    from llmspec.resolve.suites import variants

    s = cx.spec.suites[suite_name]
    d = cx.spec.datasets[s.dataset]
    deps = {}
    if s.retrieve is not None:
        deps["index"] = cx.get("index", s.retrieve)
    if d.generate is not None:
        deps["dataset"] = cx.get("testgen", s.dataset)
    out: dict[str, list[Any]] = {}
    for variant, model, prompt in variants(s):
        out[variant] = []
        for i, (start, end, rows) in enumerate(cx.facts.shards(s.dataset)):
            ins = prompt_inputs(cx, model, prompt)
            ins.set(
                "rows",
                {"range": [start, end], "content": rows},
                ("datasets", s.dataset, ("rows", "content")),
            )
            if s.expected is not None:  # the suite's own reference column
                ins.set("expected", s.expected)
            else:
                ins.set("expected", d.expected, ("datasets", s.dataset, ("expected",)))
            local: dict[str, Any] = {"model": cx.facts.model_local(model)}
            if d.generate is None:
                local["dataset"] = cx.facts.shard_local(s.dataset, start, end)
            if s.retrieve is not None:
                ins.take("retrieval", "knowledge", s.retrieve, ("top_k", "embed", "index"))
                local["embed"] = cx.facts.knowledge_local(s.retrieve)["embed"]
            ref = reference_column(d)
            if ref is not None:
                origin = ("datasets", s.dataset, ("reference_context",))
                ins.set("reference_context", ref, origin if d.generate is None else None)
            ins.set("repeats", s.repeats)
            out[variant].append(
                cx.job(
                    "generate",
                    f"generate.{suite_name}.{variant}.{i}",
                    ins,
                    deps=deps,
                    local=local,
                    loc=cx.loc("suites", suite_name, "models", s.models.index(model)),
                    model=model,
                )
            )
    return out


def reference_column(d: Any) -> str | None:
    """The column naming a dataset's rows' reference context: its `reference_context:`, or
    the generated set's own."""
    return "reference_context" if d.generate is not None else d.reference_context


def references_of(value: Any) -> list[str] | None:
    """A row's reference context as a list of file names or chunk ids (None: not given).

    >>> references_of("kb/a.md"), references_of(["kb/a.md#0", 3]), references_of(None)
    (['kb/a.md'], ['kb/a.md#0', '3'], None)
    """
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [str(v) for v in items if v is not None and str(v).strip()]


def prompt_inputs(cx: Any, model: str, prompt: str) -> Any:
    """The inputs every job that prompts a model reads: its settings (less its price, which
    changes no generation), the prompt, the schema."""
    keys = tuple(k for k in cx.facts.model(model) if k != "price")
    ins = cx.inputs().take("model", "models", model, keys).take("prompt", "prompts", prompt)
    out = cx.spec.prompts[prompt].output
    if out is not None and out.schema_ is not None:
        ins.take("schema", "schemas", out.schema_)
    return ins


def constraint_of(inputs: dict[str, Any]) -> Any:
    """The output constraint a job's prompt inputs describe."""
    from llmspec.constraints import from_output

    out = inputs["prompt"].get("output")
    return from_output(out, inputs.get("schema")) if out is not None else None


def row_seed(seed: int, row: int, repeat: int) -> int:
    """A per-row seed: the same row gets the same seed whatever batch or worker it lands in."""
    return int(digest([seed, row, repeat])[7:15], 16) & 0x7FFFFFFF


def shard_rows(job: Any, deps: Any, ctx: Any) -> list[dict[str, Any]]:
    """The rows of this job's shard, checked against the digest the plan was made with."""
    start, end = job.inputs["rows"]["range"]
    if "dataset" in deps:
        return deps["dataset"]["rows"][start:end]
    rows = ctx.dataset_rows(job.local["dataset"], start, end)
    if digest([digest(r) for r in rows]) != job.inputs["rows"]["content"]:
        shown = job.local["dataset"]["shown"]
        raise JobError(f"{shown} changed since the plan was made; plan again")
    return rows


def query_of(row: dict[str, Any]) -> str:
    for col in QUERY_COLUMNS:
        if isinstance(row.get(col), str):
            return row[col]
    return " ".join(str(v) for v in row.values())


def render_requests(
    inputs: dict[str, Any],
    rows: list[dict[str, Any]],
    contexts: list[list[str]] | None,
    start: int,
    repeats: int,
) -> tuple[list[Any], list[tuple[int, int, str | None]]]:
    """A Request per row and repeat, and per slot (row index, repeat, render error)."""
    from jinja2 import TemplateError

    from llmspec import templating

    prompt, params = inputs["prompt"], inputs["model"]["params"]
    constraint = constraint_of(inputs)
    requests: list[Any] = []
    slots: list[tuple[int, int, str | None]] = []
    for i, row in enumerate(rows):
        variables = dict(row)
        if contexts is not None:
            variables["context"] = contexts[i]
        try:
            system = (
                templating.render_string(prompt["system"], variables) if prompt["system"] else None
            )
            user = templating.render_string(prompt["template"], variables)
        except TemplateError as e:
            slots += [(i, rep, f"template: {e}") for rep in range(repeats)]
            continue
        for rep in range(repeats):
            requests.append(request_for(params, system, user, constraint, start + i, rep))
            slots.append((i, rep, None))
    return requests, slots


def request_for(
    params: dict[str, Any], system: str | None, user: str, constraint: Any, row: int, rep: int
) -> Any:
    """The Request for one row and repeat, decoded with the model's params."""
    from llmspec.providers import Request

    return Request(
        system=system,
        prompt=user,
        constraint=constraint,
        max_tokens=params["max_tokens"],
        temperature=params["temperature"],
        top_p=params["top_p"],
        seed=row_seed(params["seed"], row, rep),
        stop=tuple(params["stop"]),
    )


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    import time

    ins = job.inputs
    start = ins["rows"]["range"][0]
    rows = shard_rows(job, deps, ctx)
    constraint = constraint_of(ins)
    retrieved = None
    if "index" in deps:
        from llmspec.jobs.index import retrieve

        retrieved = retrieve(
            deps["index"],
            deps.meta["index"]["embeddings"],
            [query_of(r) for r in rows],
            ctx.embedder(job.local["embed"]),
            ins["retrieval"]["top_k"],
            ins["retrieval"]["index"],
        )
    contexts = None if retrieved is None else [[c["text"] for c in cs] for cs in retrieved]
    requests, slots = render_requests(ins, rows, contexts, start, ins["repeats"])
    if slots and not requests:  # every row failed to render: the job failed, not its rows
        first = next(err for _, _, err in slots if err)
        raise JobError(f"every row of this shard failed to render ({len(slots)}); first: {first}")
    provider = ctx.provider(ins["model"] | job.local["model"])
    t0 = time.perf_counter()
    generated = provider.generate(requests) if requests else []
    attempts = [1] * len(generated)
    if constraint is not None and constraint.best_effort and generated:
        generated, attempts = resample(provider, requests, generated, constraint)
    provider_seconds = time.perf_counter() - t0
    failed = [r for r in generated if r.finish == "error"]
    if failed and provider.capabilities.remote:
        # a remote error may be a rate limit or an outage: store nothing, run it again later
        raise JobError(
            f"{len(failed)} of {len(generated)} requests failed ({failed[0].error}); nothing "
            "is stored for this shard and it runs again on the next apply"
        )
    results = iter(zip(generated, attempts, strict=True))
    expected_col = ins["expected"]
    out_rows, timings, first = [], [], []
    observed: dict[str, set[str]] = {}
    for i, rep, err in slots:
        base = {
            "row": start + i,
            "repeat": rep,
            "input": rows[i],
            "expected": rows[i].get(expected_col),
        }
        if retrieved is not None:
            base["context"] = retrieved[i]
        if ins.get("reference_context") is not None:
            base["reference_context"] = references_of(rows[i].get(ins["reference_context"]))
        if err is not None:
            out_rows.append(
                base
                | {
                    "output": None,
                    "finish": "error",
                    "guarantee": "none",
                    "error": err,
                    "valid": False if constraint is not None else None,
                }
            )
            timings.append(None)
            first.append(None)
            continue
        r, tries = next(results)
        problem = violation(constraint, r)
        if problem and tries > 1:
            problem += f" (after {tries - 1} resample{'s' if tries > 2 else ''})"
        out_rows.append(
            base
            | {
                "output": r.text,
                "finish": r.finish,
                "guarantee": guarantee_of(constraint, r.guarantee),
                **({"attempts": tries} if tries > 1 else {}),
                "error": r.error,
                "valid": problem is None if constraint is not None else None,
                "tokens": r.tokens,
                "prompt_tokens": r.prompt_tokens,
                **({"violation": problem} if problem and r.finish != "error" else {}),
            }
        )
        timings.append(round(r.seconds, 6))
        first.append(None if r.first_token_seconds is None else round(r.first_token_seconds, 6))
        for k, v in (r.observed or {}).items():
            if v:
                observed.setdefault(k, set()).add(str(v))
    meta = {
        "provider_seconds": round(provider_seconds, 4),
        "latency": timings,
        "first_token": first,
        "observed": {k: sorted(v) for k, v in observed.items()},
    }
    return {"rows": out_rows}, meta


RESAMPLE_TEMPERATURE = 1.0
"""The temperature a resample of a greedy model draws at: at temperature 0 it would repeat the
output it replaces."""


def violation(constraint: Any, r: Any) -> str | None:
    """Why a provider's result does not satisfy the constraint, or None."""
    if r.finish == "error":
        return r.error
    if constraint is None:
        return None
    if r.finish == "length":
        return "truncated at max_tokens"
    return constraint.check(r.text)


def guarantee_of(constraint: Any, provider_guarantee: str) -> str:
    """A row's guarantee: what the provider enforced, `+checked` where `enforce:
    best_effort` left part of the schema to the check after the fact."""
    enforced = provider_guarantee in ("token", "provider")
    if constraint is not None and constraint.best_effort and enforced:
        return f"{provider_guarantee}+checked"
    return provider_guarantee


def resample_seed(seed: int, attempt: int) -> int:
    """The seed of a row's `attempt`-th resample, derived from the row's own seed."""
    return int(digest([seed, "resample", attempt])[7:15], 16) & 0x7FFFFFFF


def resample(
    provider: Any, requests: list[Any], generated: list[Any], constraint: Any
) -> tuple[list[Any], list[int]]:
    """`enforce: best_effort`: generate every row whose output violates the full schema again,
    with a seed derived from its own, up to `constraint.retries` times; a row keeps the first
    output that satisfies it (or its last one). Returns the results and each row's attempts."""
    from dataclasses import replace

    out, attempts = list(generated), [1] * len(generated)
    for attempt in range(1, constraint.retries + 1):
        bad = [i for i, r in enumerate(out) if r.finish != "error" and violation(constraint, r)]
        if not bad:
            break
        again = [
            replace(
                requests[i],
                seed=resample_seed(requests[i].seed, attempt),
                temperature=requests[i].temperature or RESAMPLE_TEMPERATURE,
            )
            for i in bad
        ]
        for i, r in zip(bad, provider.generate(again), strict=True):
            if r.finish != "error":
                out[i], attempts[i] = r, attempt + 1
    return out, attempts


def _rows(job: Any) -> int:
    start, end = job.inputs["rows"]["range"]
    return (end - start) * job.inputs["repeats"]


KIND = JobKind(
    name="generate",
    version=2,
    names=names,
    build=build,
    run=run,
    pool="model",
    shape="box",
    rows=_rows,
    description="one model over one shard of a dataset",
)
