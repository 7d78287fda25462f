"""Where a variant's model came from: the models jobs made (fine-tunes, quantizations) with their
provenance and outcome, and the size of the weights a variant runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmspec.results import ModelResult, TrainingPoint


def made_models(graph: Any, store: Any, lock: Any) -> list[ModelResult]:
    """Each model a job made: its provenance from the facts, its outcome from the store (or
    the lock's `weights` section where the store lacks it)."""
    from llmspec.spec import MADE_BY

    out = []
    for job in graph.jobs.values():
        if job.kind not in MADE_BY:
            continue
        name = job.id.split(".", 1)[1]
        fact = (graph.facts.get("models", {}).get(name) or {}).get(job.kind) or {}
        settings = fact.get("settings") or {}
        data = fact.get("data") or {}
        base: dict[str, Any] = {
            "name": name,
            "made_by": job.kind,
            "source": fact.get("from", "?"),
            "method": settings.get("method") or fact.get("method") or "?",
            "dataset": data.get("dataset"),
            "rows": data.get("rows"),
            "epochs": settings.get("epochs"),
        }
        stored = store.get(job.key)
        locked = lock.section("weights").get(name) if lock is not None else None
        locked_job = lock.jobs.get(job.id) if lock is not None else None
        if stored is not None:
            o, m = stored.output, stored.meta
            out.append(
                ModelResult(
                    **base,
                    status="made",
                    steps=o.get("steps"),
                    size=o.get("size"),
                    source_size=o.get("source_size"),
                    first_loss=o.get("first_loss"),
                    loss=o.get("loss"),
                    curve=[TrainingPoint(**p) for p in m.get("curve", [])],
                    trainer=m.get("trainer"),
                    seconds=m.get("train_seconds", m.get("quantize_seconds")),
                    samples_per_s=m.get("samples_per_s"),
                )
            )
        elif locked and locked_job is not None and locked_job.key == job.key:
            keep = ("steps", "size", "source_size", "loss")
            out.append(ModelResult(**base, status="from lock", **{k: locked.get(k) for k in keep}))
        else:
            out.append(ModelResult(**base, status="not made"))
    return out


def weights_size(graph: Any, summary_job: Any) -> int | None:
    """Bytes of the weights a variant's model runs, where they are on this machine."""
    for shard_id in summary_job.deps.values():
        gen = graph.jobs[graph.jobs[shard_id].deps["generate"]]
        weights = (gen.local.get("model") or {}).get("weights")
        if weights is None or not Path(weights).exists():
            return None
        path = Path(weights)
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        return sum(p.stat().st_size for p in files if not p.name.startswith("."))
    return None
