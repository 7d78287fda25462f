"""Red-team suites: their target (prompt variants x models, retrieval), which prompt variable
receives the probes, the families and strategies they list, and their gates, whose metrics are
the families (`prompt_injection.asr`), each family's strategies (`jailbreak.base64`) and
`overall`."""

from __future__ import annotations

from typing import Any

from llmspec.load import KeyPath

SPECIAL = ("context", "canaries")  # variables llmspec fills itself: retrieved chunks, canaries


def check_redteam(c: Any, name: str, s: Any) -> None:
    from llmspec.probes import metric_names
    from llmspec.resolve.suites import check_capability, check_gates
    from llmspec.spec import suite_target

    base: KeyPath = ("suites", name)
    t = suite_target(c.p, s)
    if s.deployment is not None:
        _check_deployment_target(c, name, s)
    else:
        if s.models is None:
            c.error(
                "E048",
                f"red-team suite `{name}` has no target",
                base,
                "give `models:` (with `prompt:`), or `deployment: NAME` to attack what a "
                "deployment ships",
                key=True,
            )
        for p, at in zip(t.prompt_names, t.prompt_at, strict=True):
            c.ref("prompts", p, base + at)
        for m, at in zip(t.models, t.model_at, strict=True):
            c.ref("models", m, base + at)
        if t.retrieve is not None:
            c.ref("knowledge", t.retrieve, base + t.retrieve_at)
    for field in ("families", "strategies"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(s.probes, field)):
            if item in seen:
                c.error("E022", f"`{item}` is listed twice", base + ("probes", field, i))
            seen.add(item)
    inputs: dict[str, str] = {}
    for pname, at in zip(t.prompt_names, t.prompt_at, strict=True):
        prompt = c.p.prompts.get(pname)
        if prompt is None:
            continue
        if prompt.output is not None:
            for m, m_at in zip(t.models, t.model_at, strict=True):
                if m in c.p.models:
                    check_capability(c, name, 0, m, pname, prompt.output, where=base + m_at)
        var = _input_variable(c, s, t, pname, prompt, base + at)
        if var is not None:
            inputs[pname] = var
    c.redteam[name] = {"input": inputs}
    _check_attempts(c, name, s, t)
    metrics = metric_names(tuple(dict.fromkeys(s.probes.families)), s.probes.strategies)
    # without a target (reported above) a gate naming a variant would be reported too
    c.gates[name] = check_gates(c, name, s, list(metrics)) if t.models else ()


def _check_deployment_target(c: Any, name: str, s: Any) -> None:
    """`deployment:` names the whole target: the deployment must exist, and the suite gives
    none of what it takes from it."""
    base: KeyPath = ("suites", name)
    c.ref("deployments", s.deployment, base + ("deployment",))
    for field in ("models", "prompt", "prompts", "retrieve"):
        if getattr(s, field) is not None:
            c.error(
                "E047",
                f"suite `{name}` gives both `deployment` and `{field}`: with `deployment:`, "
                f"its target is deployment `{s.deployment}`'s model, prompt and retrieval",
                base + (field,),
                f"drop `{field}:` to attack exactly what deployment `{s.deployment}` ships, or "
                "drop `deployment:` and give the target here",
                key=True,
            )


def _input_variable(c: Any, s: Any, t: Any, pname: str, prompt: Any, where: KeyPath) -> str | None:
    """The variable of `pname` that receives each probe's text."""
    from jinja2 import TemplateSyntaxError

    from llmspec import templating

    used: set[str] = set()
    for part in ("system", "template"):
        source = getattr(prompt, part)
        if source is None:
            continue
        try:
            used |= templating.variables(source)
        except TemplateSyntaxError:
            return None  # reported at the prompt
    if "context" in used and not t.retrieve:
        owner = "the suite" if t.deployment is None else f"deployment `{t.deployment}`"
        c.error(
            "E041",
            f"prompt `{pname}` uses `context`, which this suite does not retrieve",
            where,
            f"add `retrieve: <knowledge source>` to {owner} to fill `context`",
        )
    free = sorted(used - set(SPECIAL) - set(s.values))
    if s.input is not None:
        if s.input not in used:
            c.error(
                "E046",
                f"prompt `{pname}` does not use `{s.input}`, the suite's `input:`",
                where,
                f"put `{{{{ {s.input} }}}}` in its template, or name one of: "
                f"{', '.join(free) or 'none'}",
            )
            return None
        for var in free:
            if var != s.input:
                c.error(
                    "E046",
                    f"prompt `{pname}` uses `{var}`, which a red-team suite does not provide",
                    where,
                    f"give it a constant in `values:`; probes fill `{s.input}` (the suite's "
                    "`input:`), llmspec `context` and `canaries`",
                )
        return s.input
    if len(free) == 1:
        return free[0]
    if not free:
        c.error(
            "E046",
            f"prompt `{pname}` has no variable to receive the probes' text",
            where,
            "put the user's message in its template, e.g. `{{ question }}` (variables in "
            "`values:` are constants)",
        )
    else:
        c.error(
            "E046",
            f"prompt `{pname}` uses {len(free)} variables ({', '.join(free)}); a red-team suite "
            "fills one with each probe",
            where,
            f"say which with `input: {free[0]}`, and give the others constants in `values:`",
        )
    return None


def _check_attempts(c: Any, name: str, s: Any, t: Any) -> None:
    if s.probes.attempts == 1:
        return
    for m, at in zip(t.models, t.model_at, strict=True):
        model = c.p.models.get(m)
        if model is not None and model.params.temperature == 0:
            c.warn(
                "W021",
                f"`attempts: {s.probes.attempts}` but model `{m}` decodes greedily "
                "(temperature 0): every attempt gives the same output",
                ("suites", name, *at),
                "set `params.temperature` above 0 for sampled attempts, or `attempts: 1`",
            )
