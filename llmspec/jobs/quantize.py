"""`quantize` jobs: a smaller, faster variant of a local model; a model like any other.

Inputs: the source model's identity (its weight digests, or its producer's key), the method
and the torch version. `dynamic_int8` and `dynamic_float16` run on CPU (torch dynamic
quantization of the linear layers); `bnb_int8` and `bnb_4bit` need a CUDA GPU and bitsandbytes
(`validate` says so when the model has no `gpus` or the package is missing). The variant is a
folder in the store; suites compare its size, speed and quality with its source's.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from llmspec.jobs import JobError, JobKind


def names(spec: Any) -> list[str]:
    return [n for n, m in spec.models.items() if getattr(m, "quantize", None) is not None]


def build(cx: Any, name: str) -> Any:
    from llmspec.facts import Produced
    from llmspec.hashing import digest
    from llmspec.jobs.finetune import libraries, source_inputs

    m = cx.spec.models[name]
    q = m.quantize
    ins = source_inputs(cx, cx.inputs(), q.from_)
    made = ("models", name, ("quantize",))
    ins.set("method", q.method, made)
    libs = ("torch", "transformers") + (("bitsandbytes",) if q.method.startswith("bnb") else ())
    ins.set("libraries", libraries(libs), made)
    local = {"base": cx.facts.model_local(q.from_), "root": str(Path(cx.root).resolve())}
    # in the pool of the model it makes: a bitsandbytes method runs where that model's GPUs are
    job = cx.job(
        "quantize", f"quantize.{name}", ins, local=local, loc=cx.loc("models", name), model=name
    )
    fact = {
        "from": q.from_,
        "source": digest(job.inputs["base"]),
        "method": q.method,
        "libraries": job.inputs["libraries"],
        "key": job.key,
    }
    return Produced(job, fact)


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    import time

    from llmspec.hashing import HashCache, tree_digests
    from llmspec.providers.transformers.quantized import quantize
    from llmspec.store import Store

    source = Path(job.local["base"]["weights"])
    if not source.is_dir():
        raise JobError(f"the weights of the source model are not at {source}; plan again")
    store = Store(Path(job.local["root"]))
    out = store.tmp_dir()
    try:
        t0 = time.perf_counter()
        done = quantize(source, job.inputs["method"], out)
        seconds = time.perf_counter() - t0
        files = tree_digests(out, HashCache(None))
        size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
        store.put_tree(job.key, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    source_size = sum(p.stat().st_size for p in source.iterdir() if p.is_file())
    output = {"files": files, "size": size, "source_size": source_size, "layers": done["layers"]}
    return output, {"quantize_seconds": round(seconds, 3)}


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    return {
        "made_by": job.id,
        "files": output["files"],
        "size": output["size"],
        "source_size": output["source_size"],
    }


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """A quantized model's fact, old against new, as one phrase.

    >>> a = {"from": "tuned", "source": "s1", "method": "dynamic_int8", "key": "k1"}
    >>> describe_change(a, a | {"source": "s2", "key": "k2"})
    ['source model `tuned` changed, re-quantized']
    """
    from llmspec.jobs.finetune import _made_phrases

    parts = _made_phrases(old, new, "data", "re-quantized")
    if old.get("method") != new.get("method"):
        parts.insert(0, f"method {old.get('method')} -> {new.get('method')}")
    return [", ".join(parts)]


KIND = JobKind(
    name="quantize",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="model",
    shape="folder",
    lock_section="weights",
    lock_name=lambda job: job.id.removeprefix("quantize."),
    lock_entry=lock_entry,
    tree=True,
    missing="the quantized weights are not in .llmspec/: it quantizes again",
    description="quantize a local model's weights",
)
