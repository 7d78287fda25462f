"""`deploy` jobs: ship a model + prompt once the suites it requires have passed.

Inputs: the model's settings, the prompt and its schema, and the target's settings (less its
secret references). The manifest written or sent names exactly what was tested: the model's
fact, the prompt's digest, the verdicts of the required suites and, for a model whose weights a
job made, those weights' file digests.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import Blocked, JobKind


def names(spec: Any) -> Any:
    return spec.deployments


def build(cx: Any, name: str) -> Any:
    from llmspec.jobs.generate import prompt_inputs
    from llmspec.spec import keyed_dump

    d = cx.spec.deployments[name]
    ins = prompt_inputs(cx, d.model, d.prompt)
    ins.set("target", keyed_dump(d.target) if d.target is not None else None)
    deps = {f"gate.{s}": cx.get("gate", s) for s in d.requires}
    deps |= {f"after.{a}": cx.get("deploy", a) for a in d.after}
    local = {"root": str(cx.root), "token": getattr(d.target, "token", None)}
    return cx.job(
        "deploy", f"deploy.{name}", ins, deps=deps, local=local, loc=cx.loc("deployments", name)
    )


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.hashing import digest
    from llmspec.targets import TARGETS

    gates = {r.removeprefix("gate."): deps[r] for r in deps if r.startswith("gate.")}
    failed = sorted(s for s, out in gates.items() if not out["passed"])
    if failed:
        raise Blocked(f"required suite gates failed: {', '.join(failed)}")
    manifest = {
        "deployment": job.id.removeprefix("deploy."),
        "model": job.inputs["model"],
        "prompt": {"digest": digest(job.inputs["prompt"])},
        "requires": {s: out["passed"] for s, out in sorted(gates.items())},
        "key": job.key,
    }
    made = sorted(r for r in deps if r.startswith("weights."))
    if made:  # a fine-tuned or quantized model: name the exact weights that passed
        manifest["weights"] = {
            r.removeprefix("weights."): {k: deps[r][k] for k in ("files", "size")} for r in made
        }
    target = job.inputs["target"]
    if target is None:
        return {"manifest": manifest, "target": None}, {}
    shipped, meta = TARGETS[target["kind"]].run(manifest, target, job.local)
    return {"manifest": manifest, "target": shipped}, meta


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    return {"target": output["target"], "requires": output["manifest"]["requires"]}


KIND = JobKind(
    name="deploy",
    version=2,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="house",
    lock_section="deployments",
    lock_name=lambda job: job.id.removeprefix("deploy."),
    lock_entry=lock_entry,
    description="ship a model and prompt that passed their suites",
)
