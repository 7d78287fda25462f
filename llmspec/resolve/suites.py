"""Suites: their references, metrics, the columns their prompt and metrics need, whether each
model can honour the prompt's output, and their gates (parsed once, here)."""

from __future__ import annotations

from typing import Any

from llmspec.errors import did_you_mean
from llmspec.load import KeyPath


def check_suites(c: Any) -> None:
    for name, s in c.p.suites.items():
        _check_suite(c, name, s)


def _check_suite(c: Any, name: str, s: Any) -> None:
    from llmspec.metrics import METRICS

    base: KeyPath = ("suites", name)
    c.ref("prompts", s.prompt, base + ("prompt",))
    for i, m in enumerate(s.models):
        c.ref("models", m, base + ("models", i))
    c.ref("datasets", s.dataset, base + ("dataset",))
    if s.retrieve is not None:
        c.ref("knowledge", s.retrieve, base + ("retrieve",))
    seen = set()
    for i, m in enumerate(s.metrics):
        if m not in METRICS:
            c.error(
                "E020", f"unknown metric `{m}`", base + ("metrics", i), did_you_mean(m, METRICS)
            )
        elif m in seen:
            c.error("E022", f"metric `{m}` is listed twice", base + ("metrics", i))
        seen.add(m)

    cols = c.columns.get(s.dataset)
    dataset = c.p.datasets.get(s.dataset)
    if cols is not None and dataset is not None:
        needs_ref = [m for m in s.metrics if m in METRICS and METRICS[m].needs_reference]
        if needs_ref and dataset.expected not in cols:
            c.error(
                "E041",
                f"metric `{needs_ref[0]}` needs a reference answer, but dataset `{s.dataset}` "
                f"has no column `{dataset.expected}` in every row",
                base + ("metrics", s.metrics.index(needs_ref[0])),
                f"set `expected:` on the dataset to one of: {', '.join(sorted(cols)) or 'none'}",
            )
    prompt = c.p.prompts.get(s.prompt)
    if prompt is not None and prompt.output is not None:
        for i, m in enumerate(s.models):
            if m in c.p.models:
                _check_capability(c, name, i, m, s.prompt, prompt.output)
    if prompt is not None and cols is not None:
        _check_variables(c, name, s, prompt, cols)
    c.gates[name] = _check_gates(c, name, s)


def _check_variables(c: Any, name: str, s: Any, prompt: Any, cols: frozenset[str]) -> None:
    from jinja2 import TemplateSyntaxError

    from llmspec import templating

    available = set(cols) | ({"context"} if s.retrieve else set())
    for part in ("system", "template"):
        source = getattr(prompt, part)
        if source is None:
            continue
        try:
            used = templating.variables(source)
        except TemplateSyntaxError:
            continue  # reported at the prompt
        for var in sorted(used - available):
            hint = did_you_mean(var, available) if available else None
            if var == "context" and not s.retrieve:
                hint = "add `retrieve: <knowledge source>` to the suite to fill `context`"
            c.error(
                "E041",
                f"prompt `{s.prompt}` uses `{var}`, which dataset `{s.dataset}` does not provide",
                ("suites", name, "prompt"),
                hint,
                notes=(f"columns in every row: {', '.join(sorted(cols)) or 'none'}",),
            )


def _check_gates(c: Any, name: str, s: Any) -> tuple[Any, ...]:
    from llmspec.gates import GateError, bind, parse_gate
    from llmspec.jobs.generate import variants

    names = tuple(v for v, _, _ in variants(s))
    gates = []
    for i, text in enumerate(s.gates):
        try:
            gates.append(bind(parse_gate(text), tuple(s.metrics), names, name))
        except GateError as e:
            code = "E042" if str(e).startswith("cannot read") else "E020"
            c.error(code, str(e), ("suites", name, "gates", i), e.hint)
    return tuple(gates)


def _is_openai(base_url: str) -> bool:
    """Whether a base_url is OpenAI's own API (api.openai.com, or Azure OpenAI)."""
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").lower()
    return host == "api.openai.com" or host.endswith((".openai.com", ".openai.azure.com"))


def _check_capability(c: Any, suite: str, i: int, model: str, prompt: str, out: Any) -> None:
    """Refuse a constraint the model's provider cannot honour; warn when `max_tokens` looks
    too small for the smallest valid output."""
    from llmspec.providers import PROVIDERS

    m = c.p.models[model]
    kind = "json_schema" if out.schema_ is not None else "regex" if out.regex else "choice"
    caps = PROVIDERS[m.provider].capabilities
    if m.provider != "echo" and not caps.can(kind):
        what = {"json_schema": "a JSON Schema", "regex": "a regex", "choice": "a choice list"}
        c.error(
            "E060",
            f"model `{model}` ({m.provider}) cannot enforce {what[kind]} output, which prompt "
            f"`{prompt}` asks for",
            ("suites", suite, "models", i),
            "use a `transformers` model, or give the prompt a JSON schema output",
        )
        return
    schema = c.schemas.get(out.schema_) if out.schema_ else None
    if not isinstance(schema, dict):
        return
    if m.provider == "openai" and _is_openai(m.base_url):
        from llmspec.jsonschemas import strict_problem

        problem = strict_problem(schema)
        if problem is not None:
            c.warn(
                "W011",
                f"OpenAI's strict structured outputs reject schema `{out.schema_}` (prompt "
                f"`{prompt}`, model `{model}`): {problem}",
                ("suites", suite, "models", i),
                "add `additionalProperties: false` to every object and list all its properties "
                "in `required`; vLLM, llama.cpp's server and Ollama take the schema as it is",
            )
    from llmspec.schemasize import smallest_instance_chars

    chars = smallest_instance_chars(schema)
    if chars is not None and m.params.max_tokens * 4 < chars:
        c.warn(
            "W010",
            f"max_tokens {m.params.max_tokens} of model `{model}` is likely too small for prompt "
            f"`{prompt}`: its smallest valid output is {chars} characters",
            ("models", model, "params", "max_tokens"),
            "raise `params.max_tokens`; a cut-off output is recorded as truncated, not valid",
        )
