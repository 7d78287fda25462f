"""`finetune` jobs: train a model's weights from another model, on a dataset rendered through a
prompt; the result is a folder in the store, and the model a model like any other.

Inputs: the source model's identity (its weight digests, or its own producer's key), the
training rows' digest, the prompt's texts, the target column, the retrieval settings, the
hyper-parameters and the versions of the libraries that train. So the tuned model's identity
is this job's key: change the data or a hyper-parameter and it trains again; change nothing
and it never does, and an old key's weights come back from the store (a rollback).

Under the Ray runner training runs on Ray Train (`TorchTrainer`, `workers` workers); in the
inline runner the same loop runs in the process. Both give the same weights for a seed on CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from llmspec.jobs import JobError, JobKind

IDENTITY_DROPS = ("params", "price", "engine", "dtype")  # a source's fields training never reads
LIBRARIES = ("torch", "transformers", "peft")


def names(spec: Any) -> list[str]:
    return [n for n, m in spec.models.items() if getattr(m, "finetune", None) is not None]


def source_inputs(cx: Any, ins: Any, source: str) -> Any:
    """The source model's identity as an input (`base`): what its weights are, not how it
    decodes."""
    keys = tuple(k for k in cx.facts.model(source) if k not in IDENTITY_DROPS)
    return ins.take("base", "models", source, keys)


def libraries(names: tuple[str, ...]) -> dict[str, str | None]:
    from llmspec.compile import package_version

    return {n: (package_version(n) or "").split("+")[0] or None for n in names}


def build(cx: Any, name: str) -> Any:
    from llmspec.facts import Produced
    from llmspec.hashing import digest
    from llmspec.spec import keyed_dump

    m = cx.spec.models[name]
    ft = m.finetune
    d = cx.spec.datasets[ft.dataset]
    ins = source_inputs(cx, cx.inputs(), ft.from_)
    ins.take("prompt", "prompts", ft.prompt)
    deps: dict[str, Any] = {}
    local: dict[str, Any] = {
        "base": cx.facts.model_local(ft.from_),
        "root": str(Path(cx.root).resolve()),
        "resources": {"cpus": float(m.cpus), "gpus": float(m.gpus)},
    }
    if d.generate is not None:
        deps["dataset"] = cx.get("testgen", ft.dataset)
        data: dict[str, Any] = {"dataset": ft.dataset, "generated": True}
    else:
        ins.take("rows", "datasets", ft.dataset, ("rows", "content"))
        local["dataset"] = cx.facts.dataset_local(ft.dataset)
        data = {"dataset": ft.dataset, **ins.values["rows"]}
    if ft.expected is not None:
        ins.set("expected", ft.expected)
    else:
        ins.set("expected", d.expected, ("datasets", ft.dataset, ("expected",)))
    if ft.retrieve is not None:
        deps["index"] = cx.get("index", ft.retrieve)
        ins.take("retrieval", "knowledge", ft.retrieve, ("top_k", "embed"))
        local["embed"] = cx.facts.knowledge_local(ft.retrieve)["embed"]
    settings = keyed_dump(ft, drop=("from_", "dataset", "prompt", "expected", "retrieve"))
    if ft.method != "lora":
        settings.pop("lora")
    # plan says what moved in the tuned model's own words ("epochs 10 -> 11, re-tuned")
    made = ("models", name, ("finetune",))
    ins.set("settings", settings, made)
    ins.set("libraries", libraries(LIBRARIES if ft.method == "lora" else LIBRARIES[:2]), made)
    job = cx.job(
        "finetune", f"finetune.{name}", ins, deps=deps, local=local, loc=cx.loc("models", name)
    )
    fact = {
        "from": ft.from_,
        "source": digest(job.inputs["base"]),
        "data": data,
        "prompt": {"name": ft.prompt, "digest": digest(job.inputs["prompt"])},
        "expected": job.inputs["expected"],
        "retrieve": ft.retrieve,
        "settings": settings,
        "libraries": job.inputs["libraries"],
        "key": job.key,
    }
    return Produced(job, fact)


def training_rows(job: Any, deps: Any, ctx: Any) -> list[dict[str, Any]]:
    from llmspec.hashing import digest

    if "dataset" in deps:
        return list(deps["dataset"]["rows"])
    local, want = job.local["dataset"], job.inputs["rows"]
    rows = ctx.dataset_rows(local, 0, want["rows"])
    if digest([digest(r) for r in rows]) != want["content"]:
        raise JobError(f"{local['shown']} changed since the plan was made; plan again")
    return rows


def target_text(value: Any) -> str:
    """What the model learns to produce for a row: a string as it is, anything else as the
    compact JSON the constrained decoder writes (`", "` and `": "` separators).

    >>> target_text({"answer": "Yes", "confidence": "high"})
    '{"answer": "Yes", "confidence": "high"}'
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def rendered(job: Any, deps: Any, ctx: Any) -> tuple[list[tuple[str | None, str]], list[str]]:
    """(system, prompt) and target per training row."""
    from jinja2 import TemplateError

    from llmspec import templating
    from llmspec.jobs.generate import query_of

    ins = job.inputs
    rows = training_rows(job, deps, ctx)
    contexts = None
    if "index" in deps:
        from llmspec.jobs.index import retrieve

        found = retrieve(
            deps["index"],
            deps.meta["index"]["embeddings"],
            [query_of(r) for r in rows],
            ctx.embedder(job.local["embed"]),
            ins["retrieval"]["top_k"],
        )
        contexts = [[c["text"] for c in cs] for cs in found]
    prompts, targets = [], []
    column = ins["expected"]
    for i, row in enumerate(rows):
        if row.get(column) is None:
            raise JobError(f"training row {i} has no `{column}` to learn")
        variables = dict(row) | ({"context": contexts[i]} if contexts is not None else {})
        try:
            system = ins["prompt"]["system"]
            system = templating.render_string(system, variables) if system else None
            prompt = templating.render_string(ins["prompt"]["template"], variables)
        except TemplateError as e:
            raise JobError(f"training row {i}: template: {e}") from None
        prompts.append((system, prompt))
        targets.append(target_text(row[column]))
    return prompts, targets


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.hashing import HashCache, tree_digests
    from llmspec.providers.transformers import train
    from llmspec.store import Store

    prompts, targets = rendered(job, deps, ctx)
    if not prompts:
        raise JobError("no training rows")
    # absolute: Ray Train workers run in a folder of their own
    base = str(Path(job.local["base"]["weights"]).resolve())
    if not Path(base).is_dir():
        raise JobError(f"the weights of the source model are not at {base}; plan again")
    examples, pad = train.encode_examples(base, prompts, targets)
    cfg = {
        "base": base,
        "examples": examples,
        "pad": pad,
        "settings": job.inputs["settings"],
        "job": job.id,
    }
    store = Store(Path(job.local["root"]))
    out = store.tmp_dir()
    try:
        if ctx.trainer == "ray":
            scratch = store.tmp_dir()
            try:
                meta = train.train_on_ray(
                    cfg, out, scratch, job.local["resources"], ctx.progress_to
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        else:
            progress = ctx.progress
            report = (lambda point: progress(job.id, point)) if progress else None
            meta = train.train_here(cfg, out, report)
        files = {k: v for k, v in tree_digests(out, HashCache(None)).items()}
        size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        store.put_tree(job.key, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    curve = meta["curve"]
    output = {
        "files": files,
        "size": size,
        "rows": len(examples),
        "steps": curve[-1]["step"] if curve else 0,
        "loss": curve[-1]["loss"] if curve else None,
        "first_loss": curve[0]["loss"] if curve else None,
        "trainable": meta.pop("trainable", None),
    }
    return output, meta


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    return {
        "made_by": job.id,
        "files": output["files"],
        "size": output["size"],
        "steps": output["steps"],
        "loss": output["loss"],
    }


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """A tuned model's fact, old against new, as one phrase for plan and lock diff.

    >>> a = {"from": "base", "source": "s1", "data": {"dataset": "train", "rows": 24,
    ...      "content": "c1"}, "prompt": {"name": "qa", "digest": "p1"}, "settings": {"epochs": 3},
    ...      "libraries": {}, "key": "k1"}
    >>> b = a | {"data": {"dataset": "train", "rows": 25, "content": "c2"}, "key": "k2"}
    >>> describe_change(a, b)
    ['training data `train` 24 -> 25 rows, re-tuned']
    """
    return [", ".join(_made_phrases(old, new, "training data", "re-tuned"))]


def _made_phrases(old: dict, new: dict, data_word: str, verb: str) -> list[str]:
    from llmspec.diffs import describe

    parts: list[str] = []
    if old.get("from") != new.get("from"):
        parts.append(f"source model `{old.get('from')}` -> `{new.get('from')}`")
    elif old.get("source") != new.get("source"):
        parts.append(f"source model `{new.get('from')}` changed")
    a, b = old.get("data") or {}, new.get("data") or {}
    if a != b:
        name_a, name_b = a.get("dataset"), b.get("dataset")
        label = f"{data_word} `{name_b}`" if name_a == name_b else (
            f"{data_word} `{name_a}` -> `{name_b}`"
        )  # fmt: skip
        if a.get("rows") != b.get("rows") and a.get("rows") is not None:
            parts.append(f"{label} {a.get('rows')} -> {b.get('rows')} rows")
        elif name_a == name_b:
            parts.append(f"{label} changed ({b.get('rows', '?')} rows)")
        else:
            parts.append(label)
    pa, pb = old.get("prompt") or {}, new.get("prompt") or {}
    if pa.get("name") != pb.get("name"):
        parts.append(f"prompt `{pa.get('name')}` -> `{pb.get('name')}`")
    elif pa != pb:
        parts.append(f"prompt `{pb.get('name')}` changed")
    for field in ("expected", "retrieve"):
        if old.get(field) != new.get(field):
            parts.append(f"{field} {json.dumps(old.get(field))} -> {json.dumps(new.get(field))}")
    parts += describe(old.get("settings") or {}, new.get("settings") or {})
    parts += [f"library {p}" for p in describe(old.get("libraries"), new.get("libraries"))]
    if old.get("key") != new.get("key"):
        parts.append(verb)
    return parts or ["changed"]


KIND = JobKind(
    name="finetune",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="general",
    shape="folder",
    lock_section="weights",
    lock_name=lambda job: job.id.removeprefix("finetune."),
    lock_entry=lock_entry,
    tree=True,
    progress=True,
    missing="the tuned weights are not in .llmspec/: it trains again",
    description="train a model's weights from another model",
)
