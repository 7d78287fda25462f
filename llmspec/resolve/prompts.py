"""Prompts: output references, regexes, template syntax, and whether the output constraint
can be enforced token by token by the models that run it."""

from __future__ import annotations

import re
from typing import Any

from llmspec.errors import Diagnostic, Loc
from llmspec.load import KeyPath
from llmspec.resolve.schemas import check_regex


def check_prompts(c: Any) -> None:
    decoded_locally = _decoded_locally(c.p)
    for name, pr in c.p.prompts.items():
        if pr.output and pr.output.schema_ is not None:
            c.ref("schemas", pr.output.schema_, ("prompts", name, "output", "schema"))
        if pr.output and pr.output.regex is not None:
            check_regex(c, pr.output.regex, ("prompts", name, "output", "regex"))
        for part in ("system", "template"):
            _check_template(c, getattr(pr, part), ("prompts", name, part))
        if pr.output is not None and name in decoded_locally:
            _check_enforceable(c, name, pr.output, c.schemas)


def _decoded_locally(p: Any) -> set[str]:
    """Prompts that some suite or deployment runs on a model decoded with token masks."""
    from llmspec.providers import PROVIDERS
    from llmspec.spec import suite_target

    local = {n for n, m in p.models.items() if PROVIDERS[m.provider].engine == "llguidance"}
    targets = [suite_target(p, s) for s in p.suites.values()]
    used = {n for t in targets if local & set(t.models) for n in t.prompt_names}
    return used | {d.prompt for d in p.deployments.values() if d.model in local}


def _keyword_path(schema: Any, names: list[str], path: tuple = ()) -> tuple | None:
    """Where in a schema the first of `names` appears as a keyword."""
    from llmspec.jsonschemas import subschemas

    for p, sub in subschemas(schema, path):
        if isinstance(sub, dict):
            for k in sub:
                if k in names:
                    return p + (k,)
    return None


def _check_enforceable(c: Any, prompt: str, output: Any, schemas: dict) -> None:
    from llmspec.constraints import from_output

    data = output.model_dump(mode="json", by_alias=True)
    if output.schema_ is not None:
        schema = schemas.get(output.schema_)
        if not schema or output.schema_ in c.invalid_schemas:
            return
        constraint = from_output(data, schema)
    else:
        constraint = from_output(data)
        path = ("prompts", prompt, "output", "regex" if output.regex is not None else "choice")
    problem = constraint.enforceable()
    if not problem:
        return
    if output.schema_ is None:
        c.error("E036", f"output of prompt `{prompt}` cannot be enforced while decoding: "
                f"{problem}", path, "simplify the pattern")  # fmt: skip
        return
    from llmspec.relax import pointer
    from llmspec.resolve.schemas import schema_loc

    where, key, problem = _problem_path(constraint, problem)
    at = f" (at {pointer(where)})" if where else ""
    c.diags.append(
        Diagnostic(
            "E036",
            f"output of prompt `{prompt}` cannot be enforced while decoding: {problem}{at}",
            schema_loc(c, output.schema_, where, key=key),
            "simplify the schema or drop the keyword; or set `enforce: best_effort` on the "
            "prompt's output to enforce the rest and check this after the fact",
        )
    )


def _problem_path(constraint: Any, problem: str) -> tuple[tuple, bool, str]:
    """Where in the schema the engine's refusal comes from, whether that is a key, and the
    refusal as that part of the schema gets it."""
    names = re.findall(r'"([^"]+)"', problem.partition("Unimplemented keys:")[2])
    if problem.startswith("oneOf"):
        names = ["oneOf"]
    elif "min/maxProperties" in problem:
        names = ["minProperties", "maxProperties"]
    if names:
        # an older draft's keyword the grammar saw under its 2020-12 name
        old = {"dependentRequired": "dependencies", "dependentSchemas": "dependencies"}
        where = _keyword_path(constraint.value, names + [old[n] for n in names if n in old])
        if where:
            return where, True, problem
    node, problem = constraint.problem_path(problem)
    sub: Any = constraint.value
    try:
        for part in node:
            sub = sub[part]
    except (KeyError, IndexError, TypeError):
        return node, False, problem
    if isinstance(sub, dict) and ("regex" in problem.lower() or "pattern" in problem):
        if "pattern" in sub:
            return node + ("pattern",), False, problem
        if "patternProperties" in sub:
            return node + ("patternProperties",), True, problem
    return node, False, problem


def _template_loc(c: Any, path: KeyPath, lineno: int) -> Loc:
    """Where line `lineno` of the template at `path` is in its spec file (a block scalar
    starts on the line after its `|`)."""
    loc = c.loc(path)
    f = c.sources.file_for(path)
    line = loc.line
    if f is not None and loc.line:
        first = f.text.splitlines()[loc.line - 1][loc.col - 1 :] if loc.col else ""
        line = loc.line + (lineno or 1) - (0 if first.lstrip()[:1] in "|>" else 1)
    return Loc(loc.file, line, loc.col if line == loc.line else 1)


def _check_template(c: Any, source: str | None, path: KeyPath) -> None:
    if source is None:
        return
    from jinja2 import TemplateSyntaxError

    from llmspec import templating

    try:
        templating.variables(source)
        unsafe = templating.unsafe_constructs(source)
    except TemplateSyntaxError as e:
        c.diags.append(
            Diagnostic(
                "E040",
                f"template syntax error: {e.message}",
                _template_loc(c, path, e.lineno or 1),
                "templates are jinja2: `{{ variable }}`, `{% for x in xs %}...{% endfor %}`",
            )
        )
        return
    for lineno, message in unsafe:
        c.diags.append(
            Diagnostic(
                "E043",
                f"template uses an unsafe construct: {message}",
                _template_loc(c, path, lineno),
                "templates read the row's values; they may not reach into Python objects",
            )
        )
