"""`generate` jobs: one model over one shard of a dataset, with one prompt, `repeats` times."""

from __future__ import annotations

import time
from typing import Any

from llmspec.constraints import check_output
from llmspec.hashing import digest
from llmspec.jobs import JobError

QUERY_COLUMNS = ("question", "query", "input")


def row_seed(seed: int, row: int, repeat: int) -> int:
    """A per-row seed: the same row gets the same seed whatever batch or worker it lands in."""
    return int(digest([seed, row, repeat])[7:15], 16) & 0x7FFFFFFF


def shard_rows(job: Any, deps: dict[str, Any], ctx: Any) -> list[dict[str, Any]]:
    """The rows of this job's shard, checked against the digest the plan was made with."""
    p = job.params
    d = ctx.project.spec.datasets[p["dataset"]]
    start, end = p["start"], p["end"]
    if d.generate is not None:
        return deps[f"testgen.{p['dataset']}"]["rows"][start:end]
    rows = ctx.shard(p["dataset"], start, end)
    if digest([digest(r) for r in rows]) != p["rows"]:
        raise JobError(f"dataset `{p['dataset']}` changed since the plan was made; plan again")
    return rows


def query_of(row: dict[str, Any]) -> str:
    for col in QUERY_COLUMNS:
        if isinstance(row.get(col), str):
            return row[col]
    return " ".join(str(v) for v in row.values())


def run(job: Any, deps: dict[str, Any], ctx: Any) -> tuple[Any, dict]:
    from jinja2 import TemplateError

    from llmspec import templating
    from llmspec.providers import Request

    p = job.params
    spec = ctx.project.spec
    model = spec.models[p["model"]]
    prompt = spec.prompts[p["prompt"]]
    expected_col = spec.datasets[p["dataset"]].expected
    constraint = ctx.project.constraint(p["prompt"])
    rows = shard_rows(job, deps, ctx)

    contexts: list[list[str]] = [[] for _ in rows]
    if p.get("retrieve"):
        from llmspec.jobs.index import retrieve

        k = spec.knowledge[p["retrieve"]]
        index_id = f"index.{p['retrieve']}"
        contexts = retrieve(
            deps[index_id],
            deps.meta[index_id]["embeddings"],
            [query_of(r) for r in rows],
            ctx.embedder(k.embed),
            k.top_k,
        )

    requests: list[Any] = []
    slots: list[tuple[int, int, str | None]] = []  # (row index, repeat, render error)
    params = model.params
    for i, row in enumerate(rows):
        variables = dict(row)
        if p.get("retrieve"):
            variables["context"] = contexts[i]
        for rep in range(p["repeats"]):
            try:
                system = (
                    templating.render_string(prompt.system, variables) if prompt.system else None
                )
                user = templating.render_string(prompt.template, variables)
            except TemplateError as e:
                slots.append((i, rep, f"template: {e}"))
                continue
            requests.append(
                Request(
                    system=system,
                    prompt=user,
                    constraint=constraint,
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    seed=row_seed(params.seed, p["start"] + i, rep),
                    stop=tuple(params.stop),
                )
            )
            slots.append((i, rep, None))

    provider = ctx.provider(p["model"])
    t0 = time.perf_counter()
    generated = provider.generate(requests) if requests else []
    elapsed = time.perf_counter() - t0
    failed = [r for r in generated if r.finish == "error"]
    if failed and provider.capabilities.remote:
        # a remote error may be a rate limit or an outage: store nothing, run it again later
        raise JobError(
            f"{len(failed)} of {len(generated)} requests failed ({failed[0].error}); nothing "
            "is stored for this shard and it runs again on the next apply"
        )
    results = iter(generated)

    out_rows, latency = [], []
    observed: dict[str, set[str]] = {}
    for i, rep, err in slots:
        base = {"row": p["start"] + i, "repeat": rep, "expected": rows[i].get(expected_col)}
        if err is not None:
            out_rows.append(
                base
                | {
                    "output": None,
                    "finish": "error",
                    "guarantee": "none",
                    "error": err,
                    "valid": False,
                }
            )
            continue
        r = next(results)
        problem = None
        if r.finish == "error":
            problem = r.error
        elif r.finish == "length" and constraint is not None:
            problem = "truncated at max_tokens"
        elif constraint is not None:
            problem = check_output(constraint, r.text, ctx.root)
        out_rows.append(
            base
            | {
                "output": r.text,
                "finish": r.finish,
                "guarantee": r.guarantee,
                "error": r.error,
                "valid": problem is None if constraint is not None else None,
                **({"violation": problem} if problem and r.finish != "error" else {}),
            }
        )
        latency.append(r.seconds)
        for k, v in (r.observed or {}).items():
            if v:
                observed.setdefault(k, set()).add(str(v))
    meta = {
        "seconds": round(elapsed, 4),
        "latency": latency,
        "observed": {k: sorted(v) for k, v in observed.items()},
    }
    return {"rows": out_rows}, meta
