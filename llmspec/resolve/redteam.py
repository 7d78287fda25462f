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

    base: KeyPath = ("suites", name)
    prompt_path = ("prompt",) if s.prompt is not None else ("prompts",)
    for i, p in enumerate(s.prompt_names):
        c.ref("prompts", p, base + (prompt_path if s.prompt is not None else (*prompt_path, i)))
    for i, m in enumerate(s.models):
        c.ref("models", m, base + ("models", i))
    if s.retrieve is not None:
        c.ref("knowledge", s.retrieve, base + ("retrieve",))
    for field in ("families", "strategies"):
        seen: set[str] = set()
        for i, item in enumerate(getattr(s.probes, field)):
            if item in seen:
                c.error("E022", f"`{item}` is listed twice", base + ("probes", field, i))
            seen.add(item)
    inputs: dict[str, str] = {}
    for pi, pname in enumerate(s.prompt_names):
        prompt = c.p.prompts.get(pname)
        if prompt is None:
            continue
        where = base + (prompt_path if s.prompt is not None else (*prompt_path, pi))
        if prompt.output is not None:
            for i, m in enumerate(s.models):
                if m in c.p.models:
                    check_capability(c, name, i, m, pname, prompt.output)
        var = _input_variable(c, s, pname, prompt, where)
        if var is not None:
            inputs[pname] = var
    c.redteam[name] = {"input": inputs}
    _check_attempts(c, name, s)
    metrics = metric_names(tuple(dict.fromkeys(s.probes.families)), s.probes.strategies)
    c.gates[name] = check_gates(c, name, s, list(metrics))


def _input_variable(c: Any, s: Any, pname: str, prompt: Any, where: KeyPath) -> str | None:
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
    if "context" in used and not s.retrieve:
        c.error(
            "E041",
            f"prompt `{pname}` uses `context`, which this suite does not retrieve",
            where,
            "add `retrieve: <knowledge source>` to the suite to fill `context`",
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


def _check_attempts(c: Any, name: str, s: Any) -> None:
    if s.probes.attempts == 1:
        return
    for j, m in enumerate(s.models):
        model = c.p.models.get(m)
        if model is not None and model.params.temperature == 0:
            c.warn(
                "W021",
                f"`attempts: {s.probes.attempts}` but model `{m}` decodes greedily "
                "(temperature 0): every attempt gives the same output",
                ("suites", name, "models", j),
                "set `params.temperature` above 0 for sampled attempts, or `attempts: 1`",
            )
