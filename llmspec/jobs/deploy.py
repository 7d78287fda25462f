"""`deploy` jobs: ship a model + prompt once the suites it requires have passed.

Inputs: the model's settings, the prompt and its schema, the retrieval settings (and the index
they read), and the target's settings (less its secret references). The job is blocked, with
the numbers, when a required suite's gate failed on the same locked inputs. Its output names
exactly what was tested: the manifest (the model's fact, the prompt's digest, the verdicts of
the required suites and, for a model whose weights a job made, those weights' file
digests) and the release, everything a served deployment is built from, so that a
stored deploy job can be shipped again as it was (`llmspec apply --lock OLD.lock`).

Targets that ship a file or a request (`export`, `http`) do so here; a target that keeps
something running (`ray_serve`) ships the release after apply has written the lock
(`llmspec.targets`).
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import Blocked, JobKind


def names(spec: Any) -> Any:
    return spec.deployments


def build(cx: Any, name: str) -> Any:
    from llmspec.jobs.generate import prompt_inputs
    from llmspec.spec import keyed_dump, neutral_fields

    d = cx.spec.deployments[name]
    ins = prompt_inputs(cx, d.model, d.prompt)
    ins.set("model_name", d.model)
    ins.set("target", keyed_dump(d.target) if d.target is not None else None)
    deps = {f"gate.{s}": cx.get("gate", s) for s in d.requires}
    deps |= {f"after.{a}": cx.get("deploy", a) for a in d.after}
    local: dict[str, Any] = {
        "root": str(cx.root),
        "token": getattr(d.target, "token", None),
        "api_key": getattr(d.target, "api_key", None),
        "model": cx.facts.model_local(d.model),
    }
    if d.target is not None:  # its output-neutral settings (how long to wait, ...)
        local["target"] = {f: getattr(d.target, f) for f in neutral_fields(type(d.target))}
    if d.retrieve is not None:
        deps["index"] = cx.get("index", d.retrieve)
        ins.take("retrieval", "knowledge", d.retrieve, ("top_k", "embed"))
        local["embed"] = cx.facts.knowledge_local(d.retrieve)["embed"]
        local["index"] = deps["index"].key  # where the chunks are in the store (keyed by deps)
    return cx.job(
        "deploy", f"deploy.{name}", ins, deps=deps, local=local, loc=cx.loc("deployments", name)
    )


def blocking(gates: dict[str, Any]) -> str | None:
    """Why the required suites block a deployment (each failed gate with its numbers)."""
    failed = sorted(s for s, out in gates.items() if not out["passed"])
    if not failed:
        return None
    parts = []
    for suite in failed:
        checks = [c for c in gates[suite]["results"] if c["passed"] is False]
        shown = []
        for c in checks[:3]:
            value = "n/a" if c["value"] is None else f"{c['value']:.4g}"
            where = f" [{c['variant']}]" if c.get("variant") else ""
            shown.append(f"`{c['gate']}`{where} = {value}")
        more = f" and {len(checks) - 3} more" if len(checks) > 3 else ""
        parts.append(f"{suite}: {', '.join(shown)}{more}")
    return "required suite gates failed: " + "; ".join(parts)


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.hashing import digest
    from llmspec.targets import TARGETS

    gates = {r.removeprefix("gate."): deps[r] for r in deps if r.startswith("gate.")}
    why = blocking(gates)
    if why:
        raise Blocked(why)
    name = job.id.removeprefix("deploy.")
    manifest = {
        "deployment": name,
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
    release = {
        "model_name": job.inputs["model_name"],
        "model": job.inputs["model"],
        "prompt": job.inputs["prompt"],
        "schema": job.inputs.get("schema"),
        "retrieval": job.inputs.get("retrieval"),
        "index": job.local.get("index"),
        "target": job.inputs["target"],
    }
    local = {k: job.local[k] for k in ("model", "embed", "api_key", "target") if job.local.get(k)}
    out = {"manifest": manifest, "release": release, "target": None}
    target = job.inputs["target"]
    if target is None:
        return out, {"local": local}
    shipped, meta = TARGETS[target["kind"]].run(manifest, target, job.local)
    return out | {"target": shipped}, meta | {"local": local}


def lock_entry(job: Any, output: Any) -> dict[str, Any]:
    return {"target": output["target"], "requires": output["manifest"]["requires"]}


KIND = JobKind(
    name="deploy",
    version=4,
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
