"""`probes` jobs: one red-team family's probes for one suite, expanded from llmspec's probe data
with the suite's strategies and seed.

Inputs: the family, its data file (the probe set's version and the file's digest, so a refreshed
probe set is a plan change), the strategies, `per_family`, the seed, and where they matter the
canaries (data leakage plants them) and whether the suite retrieves (documents are then planted
in a copy of the knowledge source instead of the prompt). The output is the expanded set itself:
frozen in the store, its digest in the lock (section `probes`), exportable for review with
`llmspec redteam export`, so two model versions are compared on the same attacks.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import JobError, JobKind

DOCUMENT_FAMILIES = ("prompt_injection", "data_leakage", "pii")  # they place documents


def names(spec: Any) -> Any:
    from llmspec.spec import suites_of

    return suites_of(spec, "redteam")


def settings(cx: Any, suite_name: str, family: str) -> dict[str, Any]:
    """What a family's expansion reads of the suite (and nothing it does not read)."""
    from llmspec.probes import FAMILIES, PROBE_SET_VERSION, data_digest
    from llmspec.spec import suite_target

    s = cx.spec.suites[suite_name]
    rec = FAMILIES[family]
    out: dict[str, Any] = {
        "family": family,
        "data": {"version": PROBE_SET_VERSION, "digest": data_digest(family)},
        "per_family": s.probes.per_family,
        "seed": s.probes.seed,
        "strategies": list(s.probes.strategies) if rec.strategies else [],
    }
    if family == "data_leakage":
        out["canaries"] = list(s.canaries)
    if family in DOCUMENT_FAMILIES:
        out["retrieve"] = suite_target(cx.spec, s).retrieve is not None
    return out


def build(cx: Any, suite_name: str) -> dict[str, Any]:
    """The probes job of each family the suite lists, by family."""
    s = cx.spec.suites[suite_name]
    out = {}
    for family in dict.fromkeys(s.probes.families):
        ins = cx.inputs()
        for k, v in settings(cx, suite_name, family).items():
            ins.set(k, v)
        out[family] = cx.job(
            "probes",
            f"probes.{suite_name}.{family}",
            ins,
            loc=cx.loc("suites", suite_name, "probes"),
        )
    return out


def expand_inputs(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The probes a job with these inputs produces (what `run` stores)."""
    from llmspec.probes import data_digest
    from llmspec.probes.expand import expand

    family = inputs["family"]
    if data_digest(family) != inputs["data"]["digest"]:
        raise JobError(
            f"the probe data of `{family}` changed since the plan was made (another llmspec "
            "version?); plan again"
        )
    return expand(
        {
            "family": family,
            "strategies": inputs["strategies"],
            "per_family": inputs["per_family"],
            "seed": inputs["seed"],
            "canaries": inputs.get("canaries", []),
            "retrieve": inputs.get("retrieve", False),
        }
    )


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    return {"probes": expand_inputs(job.inputs)}, {}


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    from llmspec.hashing import digest

    by_strategy: dict[str, int] = {}
    for p in output["probes"]:
        by_strategy[p["strategy"]] = by_strategy.get(p["strategy"], 0) + 1
    return {
        "version": job.inputs["data"]["version"],
        "data": job.inputs["data"]["digest"],
        "probes": len(output["probes"]),
        "strategies": dict(sorted(by_strategy.items())),
        "digest": digest(output["probes"]),
    }


KIND = JobKind(
    name="probes",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="note",
    lock_section="probes",
    lock_name=lambda job: job.id.removeprefix("probes."),
    lock_entry=lock_entry,
    description="one red-team family's probes, expanded with the suite's strategies and seed",
)
