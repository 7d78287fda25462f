"""The one jinja2 environment of llmspec: sandboxed, strict, never re-rendering data.

Templates come from spec files; data values (dataset rows, retrieved chunks) are passed as
variables and inserted as text, so a row that contains `{{ ... }}` is printed, not executed.

    >>> render_string("Q: {{ question }}", {"question": "{{ 7 * 7 }}"})
    'Q: {{ 7 * 7 }}'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


@lru_cache(maxsize=1024)
def variables(source: str) -> frozenset[str]:
    """The top-level variables a template reads; raises jinja2.TemplateSyntaxError."""
    tree = ENV.parse(source)
    found = set(meta.find_undeclared_variables(tree))
    # `loop`, `range` and friends are globals, not data
    return frozenset(v for v in found if v not in ENV.globals)


def attribute_uses(source: str) -> dict[str, set[str]]:
    """For each variable, the attributes read from it (`row.question` -> {"row": {"question"}})."""
    out: dict[str, set[str]] = {}
    for node in ENV.parse(source).find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            out.setdefault(node.node.name, set()).add(node.attr)
    return out


@lru_cache(maxsize=1024)
def compile_template(source: str) -> Any:
    return ENV.from_string(source)


def render_string(source: str, context: dict[str, Any]) -> str:
    """Render a template; raises jinja2 errors (UndefinedError, SecurityError) on bad use."""
    return compile_template(source).render(**context)
