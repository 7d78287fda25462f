"""`testgen` jobs: a test set generated from a knowledge source by a declared model.

Each item is asked for under a JSON Schema constraint (question and answer; a question only
for `out_of_scope`), from the chunks its slot draws (`llmspec.testsets`). New items are
filtered: unparsable, blank and one-word questions, reference answers their chunks do not
support, questions too close (cosine of their embeddings) to a kept one; a rejected item stays
in the set marked with its reason, so it is not asked for again.

The export file (`export:`) is the frozen set. When it exists, every item in it whose content
address still matches its slot is kept as it is (edits included); only the others are asked
for. So a re-apply asks for nothing, a fresh checkout restores the set from the file without a
model call, and an edited document regenerates the items drawn from it. The file is written by
apply, in the applying process (`KIND.exports`); its digest goes into the lock (`testsets`).

Inputs: the settings (`generate`), the model, the export file's state (`export_file`: `{}`, or
`{state: edited, digest}` when someone changed it since apply wrote it); the chunks and their
embeddings come from the index job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmspec.jobs import JobError, JobKind


def names(spec: Any) -> list[str]:
    return [n for n, d in spec.datasets.items() if d.generate is not None]


def export_state(cx: Any, name: str, export: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The export file as a keyed input, and where it is. A file that is exactly what the
    last apply wrote keeps the input it was made with (llmspec's own write never re-runs the
    job); a missing one too (apply writes it again from the stored set); an edited one is
    `{state: edited, digest}`."""
    path = cx.root / export
    current = cx.facts.cache.file(path) if path.is_file() else None
    lock = cx.lock
    prev = lock.jobs.get(f"testgen.{name}") if lock is not None else None
    written = (lock.section("testsets").get(name) or {}).get("digest") if lock else None
    recorded = prev.inputs.get("export_file", {}) if prev is not None else {}
    if current is None or current == written:
        state = recorded if isinstance(recorded, dict) else {}
    else:
        state = {"state": "edited", "digest": current}
    return state, {"path": str(path), "digest": current}


def build(cx: Any, name: str) -> Any:
    g = cx.spec.datasets[name].generate
    ins = cx.inputs()
    ins.take("generate", "datasets", name, ("generate",))
    ins.take("model", "models", g.model)
    local: dict[str, Any] = {
        "model": cx.facts.model_local(g.model),
        "embed": cx.facts.knowledge_local(g.from_)["embed"],
    }
    if g.export is not None:
        state, local["export"] = export_state(cx, name, g.export)
        ins.set("export_file", state)
    return cx.job(
        "testgen",
        f"testgen.{name}",
        ins,
        deps={"index": cx.get("index", g.from_)},
        local=local,
        loc=cx.loc("datasets", name, "generate"),
        model=g.model,
    )


def _frozen(job: Any) -> list[dict[str, Any]]:
    from llmspec.hashing import file_digest
    from llmspec.testsets import read_frozen

    export = job.local.get("export")
    if not export or export["digest"] is None:
        return []
    try:
        data = Path(export["path"]).read_bytes()
    except OSError:
        return []  # removed since the plan: generate what it held again
    if file_digest(data) != export["digest"]:
        raise JobError(f"{export['path']} changed since the plan was made; plan again")
    return read_frozen(data)


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec import testsets as ts
    from llmspec.hashing import digest
    from llmspec.vectors import decode

    g = job.inputs["generate"]["generate"]
    model = job.inputs["model"]
    index, meta = deps.pair("index")
    chunks = index["chunks"]
    vectors = decode(meta["embeddings"]) if chunks else None
    slots = ts.plan_slots(chunks, vectors, list(g["kinds"]), g["count"], g["seed"])
    model_id = digest(model)
    keys = {s.slot: ts.item_key(s, chunks, model_id, g["seed"]) for s in slots}
    kept = {}
    for item in _frozen(job):
        slot = item["slot"]
        if slot in keys and slot not in kept and ts.still_valid(item, keys[slot]):
            kept[slot] = item
    todo = [s for s in slots if s.slot not in kept]
    fresh = _generate(job, ctx, todo, chunks, keys)
    _filter(job, ctx, list(kept.values()), fresh, g["quality"])
    items = sorted([*kept.values(), *fresh], key=lambda i: i["slot"])
    rejected: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for i in items:
        if "rejected" in i:
            rejected[i["rejected"]] = rejected.get(i["rejected"], 0) + 1
        else:
            kinds[i["kind"]] = kinds.get(i["kind"], 0) + 1
    output: dict[str, Any] = {
        "rows": [ts.row_of(i) for i in items if "rejected" not in i],
        "items": items,
        "kinds": dict(sorted(kinds.items())),
        "rejected": dict(sorted(rejected.items())),
    }
    if g.get("export"):
        from llmspec.hashing import file_digest

        output["export"] = {"path": g["export"], "digest": file_digest(ts.render(items))}
    return output, {"kept": len(kept), "generated": len(fresh), "slots": len(slots)}


def _generate(job: Any, ctx: Any, todo: list[Any], chunks: list[dict], keys: dict) -> list[dict]:
    from llmspec import testsets as ts
    from llmspec.constraints import Constraint
    from llmspec.providers import Request

    if not todo:
        return []
    g = job.inputs["generate"]["generate"]
    params = job.inputs["model"]["params"]
    requests = [
        Request(
            system=ts.SYSTEM,
            prompt=ts.prompt_of(s, chunks),
            constraint=Constraint("json_schema", ts.schema_of(s.kind)),
            max_tokens=max(params["max_tokens"], 128),
            temperature=params["temperature"],
            top_p=params["top_p"],
            seed=g["seed"] * 100_003 + s.slot,
        )
        for s in todo
    ]
    provider = ctx.provider(job.inputs["model"] | job.local["model"])
    results = provider.generate(requests)
    failed = [r for r in results if r.finish == "error"]
    if failed and provider.capabilities.remote:
        raise JobError(
            f"{len(failed)} of {len(results)} requests failed ({failed[0].error}); nothing is "
            "stored and the set is asked for again on the next apply"
        )
    out = []
    for s, r in zip(todo, results, strict=True):
        try:
            qa = json.loads(r.text) if r.finish in ("stop", "budget") else None
        except ValueError:
            qa = None
        out.append(ts.new_item(s, keys[s.slot], chunks, qa if isinstance(qa, dict) else None))
    return out


def _filter(job: Any, ctx: Any, kept: list[dict], fresh: list[dict], quality: dict) -> None:
    """Mark the new items that fail a check with `rejected: <reason>`; near-duplicates are
    judged against the kept items and the new ones before them (by slot)."""
    import numpy as np

    from llmspec import testsets as ts
    from llmspec.vectors import embed

    for item in fresh:
        problem = ts.text_problem(item, quality["support"])
        if problem:
            item["rejected"] = problem
    accepted = [i["question"] for i in kept if "rejected" not in i]
    candidates = [i for i in fresh if "rejected" not in i]
    if not candidates:
        return
    vecs = embed(ctx.embedder(job.local["embed"]), accepted + [i["question"] for i in candidates])
    held = list(range(len(accepted)))
    for n, item in enumerate(candidates):
        at = len(accepted) + n
        if held:
            best = float(np.max(vecs[held] @ vecs[at]))
            if round(best, 4) >= quality["duplicate"]:
                item["rejected"] = "duplicate"
                continue
        held.append(at)


def _exports(job: Any) -> tuple[str, ...]:
    export = job.inputs["generate"]["generate"].get("export")
    return (export,) if export else ()


def _export_bytes(job: Any, output: Any) -> dict[str, bytes]:
    from llmspec.testsets import render

    return {path: render(output["items"]) for path in _exports(job)}


def _lock_entry(job: Any, output: Any) -> dict[str, Any]:
    entry = {
        "items": len(output["rows"]),
        "kinds": output["kinds"],
        "rejected": output["rejected"],
    }
    if "export" in output:
        entry |= {"export": output["export"]["path"], "digest": output["export"]["digest"]}
    return entry


KIND = JobKind(
    name="testgen",
    version=3,
    names=names,
    build=build,
    run=run,
    pool="model",
    shape="folder",
    lock_section="testsets",
    lock_name=lambda job: job.id.removeprefix("testgen."),
    lock_entry=_lock_entry,
    rows=lambda job: job.inputs["generate"]["generate"]["count"],
    exports=_exports,
    export_bytes=_export_bytes,
    description="generate a test set from a knowledge source",
)
