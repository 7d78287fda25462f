"""`drift` jobs: probe a remote model for a change behind its name (cache policy `always`).

One job per remote model (`openai`). It asks the server once with a minimal prompt, or, when
the model declares `drift: {canaries: DATASET}`, each canary prompt at temperature 0, and
records what the server says it is (the model id and `system_fingerprint` of its answers) and
what it answered. A probe is never reused: plan shows it as `<=` and every apply runs it first,
before the other jobs are keyed, because what it observes is part of the model's fact
(`served`) and so of the key of every job that reads the model.

Inputs: the model's settings, the canary rows (their digests), and the lock's previous record
of the probe: when the canaries are the same, a change in their answers is a change of the
model's behaviour; when the canary set changed, its answers become the new reference and the
model's behaviour is taken as unchanged.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import JobError, JobKind

PROBE = "Reply with the word OK."
IDENTITY = ("model", "system_fingerprint", "behaviour")
"""What of a probe enters the model's fact (and so the keys of the jobs that read it)."""


def names(spec: Any) -> list[str]:
    from llmspec.providers import PROVIDERS

    return [n for n, m in spec.models.items() if PROVIDERS[m.provider].capabilities.remote]


def build(cx: Any, name: str) -> Any:
    m = cx.spec.models[name]
    keys = tuple(k for k in cx.facts.model(name) if k not in ("price", "served"))
    ins = cx.inputs().take("model", "models", name, keys)
    local: dict[str, Any] = {"model": cx.facts.model_local(name)}
    canaries = m.drift.canaries if m.drift is not None else None
    if canaries is not None:
        ins.take("canaries", "datasets", canaries, ("rows", "content"))
        local["dataset"] = cx.facts.dataset_local(canaries)
    else:
        ins.set("canaries", None)
    previous = cx.lock.section("drift").get(name) if cx.lock is not None else None
    ins.set(
        "previous",
        {k: previous.get(k) for k in ("canaries", "outputs", "behaviour")} if previous else None,
    )
    return cx.job("drift", f"drift.{name}", ins, local=local, loc=cx.loc("models", name, "drift"))


def requests(job: Any, ctx: Any) -> list[Any]:
    """The probe's requests: each canary at temperature 0, or one minimal prompt."""
    from llmspec.hashing import digest
    from llmspec.jobs.generate import query_of
    from llmspec.providers import Request

    params = job.inputs["model"]["params"]
    canaries = job.inputs["canaries"]
    if canaries is None:
        return [Request(None, PROBE, None, max_tokens=1, seed=params["seed"])]
    rows = ctx.dataset_rows(job.local["dataset"], 0, canaries["rows"])
    if digest([digest(r) for r in rows]) != canaries["content"]:
        raise JobError(f"{job.local['dataset']['shown']} changed since the plan was made")
    return [
        Request(
            None,
            query_of(row),
            None,
            max_tokens=params["max_tokens"],
            temperature=0.0,
            seed=params["seed"],
            stop=tuple(params["stop"]),
        )
        for row in rows
    ]


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    provider = ctx.provider(job.inputs["model"] | job.local["model"])
    results = provider.generate(requests(job, ctx))
    failed = [r for r in results if r.finish == "error"]
    if failed:
        raise JobError(
            f"could not measure: {len(failed)} of {len(results)} probe requests failed "
            f"({failed[0].error})"
        )
    seen: dict[str, set[str]] = {}
    for r in results:
        for k, v in (r.observed or {}).items():
            seen.setdefault(k, set()).add(str(v))
    canaries = job.inputs["canaries"]
    outputs = [r.text for r in results] if canaries is not None else None
    # answers from several backends (a rollout in progress) show as all their ids, joined
    out = {
        "model": ",".join(sorted(seen.get("model", ()))) or None,
        "system_fingerprint": ",".join(sorted(seen.get("system_fingerprint", ()))) or None,
        "canaries": canaries["content"] if canaries is not None else None,
        "outputs": outputs,
    }
    out["behaviour"] = behaviour(job.inputs["previous"], out["canaries"], _digest(outputs))
    return out, {"probes": len(results), "seconds": [round(r.seconds, 4) for r in results]}


def _digest(outputs: list[str] | None) -> str | None:
    from llmspec.hashing import digest

    return digest(outputs) if outputs is not None else None


def behaviour(previous: dict | None, canaries: str | None, outputs: str | None) -> str | None:
    """What stands for the model's answers in its identity: the digest of the canaries'
    answers, kept from the previous probe unless the same canaries were answered otherwise.

    >>> behaviour(None, "c1", "o1")
    'o1'
    >>> behaviour({"canaries": "c1", "outputs": "o1", "behaviour": "o0"}, "c1", "o1")
    'o0'
    >>> behaviour({"canaries": "c1", "outputs": "o1", "behaviour": "o0"}, "c1", "o2")
    'o2'
    >>> behaviour({"canaries": "c0", "outputs": "o1", "behaviour": "o0"}, "c1", "o9")
    'o0'
    """
    if previous is None:
        return outputs
    if previous.get("canaries") == canaries and previous.get("outputs") != outputs:
        return outputs  # the same prompts answered otherwise: the model moved
    return previous.get("behaviour")


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    return {
        "model": output["model"],
        "system_fingerprint": output["system_fingerprint"],
        "canaries": output["canaries"],
        "outputs": _digest(output["outputs"]),
        "behaviour": output["behaviour"],
    }


def identity(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of a probe's lock entry that enters its model's fact."""
    return None if entry is None else {k: entry.get(k) for k in IDENTITY}


KIND = JobKind(
    name="drift",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="hexagon",
    lock_section="drift",
    lock_name=lambda job: job.id.removeprefix("drift."),
    lock_entry=lock_entry,
    cache="always",
    description="probe a remote model for drift",
)
