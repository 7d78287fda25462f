"""`testgen` jobs: derive a test set from a knowledge source with a model.

Each row is asked for with the same JSON constraint, so a model that can be constrained always
returns a parseable question and answer; rows whose output does not parse are dropped and
counted.
"""

from __future__ import annotations

import json
import random
from typing import Any

from llmspec.constraints import Constraint
from llmspec.hashing import digest
from llmspec.jobs import JobKind

QA_SCHEMA = {
    "type": "object",
    "required": ["question", "answer"],
    "additionalProperties": False,
    "properties": {
        "question": {"type": "string", "minLength": 1, "maxLength": 120},
        "answer": {"type": "string", "minLength": 1, "maxLength": 120},
    },
}

INSTRUCTIONS = {
    "simple": "Write one question that the text answers directly, and its answer.",
    "complex": "Write one question that needs both texts to answer, and its answer.",
    "multi_hop": "Write one question whose answer needs a fact from each text, and its answer.",
    "distracting": "Write one question that the first text answers; the second text is a "
    "distraction. Give the answer.",
    "adversarial": "Write one tricky question that the text seems to answer but does not; "
    "the answer says the text does not say.",
}
SYSTEM = "You write test questions for a question-answering system. Reply in JSON."


def names(spec: Any) -> list[str]:
    return [n for n, d in spec.datasets.items() if d.generate is not None]


def build(cx: Any, name: str) -> Any:
    g = cx.spec.datasets[name].generate
    ins = cx.inputs()
    ins.take("generate", "datasets", name, ("generate",))
    ins.take("model", "models", g.model)
    return cx.job(
        "testgen",
        f"testgen.{name}",
        ins,
        deps={"index": cx.get("index", g.from_)},
        local={"model": cx.facts.model_local(g.model)},
        loc=cx.loc("datasets", name, "generate"),
        model=g.model,
    )


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.providers import Request

    g = job.inputs["generate"]["generate"]
    model = job.inputs["model"]
    params = model["params"]
    chunks = [c["text"] for c in deps["index"]["chunks"]]
    if not chunks:
        return {"rows": [], "rejected": 0}, {}
    constraint = Constraint("json_schema", QA_SCHEMA)
    requests, plan = [], []
    for i in range(g["count"]):
        rng = random.Random(digest([g["seed"], i]))
        kind = g["kinds"][i % len(g["kinds"])]
        first = rng.randrange(len(chunks))
        picked = [chunks[first]]
        if kind in ("complex", "multi_hop", "distracting") and len(chunks) > 1:
            other = rng.randrange(len(chunks) - 1)
            picked.append(chunks[other + (other >= first)])
        texts = "\n\n".join(f"Text {n + 1}: {t}" for n, t in enumerate(picked))
        requests.append(
            Request(
                system=SYSTEM,
                prompt=f"{INSTRUCTIONS[kind]}\n\n{texts}\n\nJSON:",
                constraint=constraint,
                max_tokens=max(params["max_tokens"], 64),
                temperature=params["temperature"],
                top_p=params["top_p"],
                seed=(g["seed"] * 100_003 + i),
            )
        )
        plan.append((kind, picked))
    results = ctx.provider(model | job.local["model"]).generate(requests)
    rows, rejected = [], []
    for i, ((kind, picked), r) in enumerate(zip(plan, results, strict=True)):
        try:
            qa = json.loads(r.text) if r.finish in ("stop", "budget") else None
        except ValueError:
            qa = None
        if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
            rejected.append({"item": i, "finish": r.finish, "error": r.error})
            continue
        rows.append(
            {
                "question": qa["question"],
                "expected": str(qa.get("answer", "")),
                "context": picked,
                "kind": kind,
            }
        )
    return {"rows": rows, "rejected": len(rejected)}, {"rejected": rejected}


KIND = JobKind(
    name="testgen",
    version=2,
    names=names,
    build=build,
    run=run,
    pool="model",
    shape="folder",
    rows=lambda job: job.inputs["generate"]["generate"]["count"],
    description="generate a test set from a knowledge source",
)
