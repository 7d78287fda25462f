"""The one jinja2 environment of llmspec: sandboxed, strict, bounded, never re-rendering data.

Templates come from spec files; data values (dataset rows, retrieved chunks) are passed as
variables and inserted as text, so a row that contains `{{ ... }}` is printed, not executed.

    >>> render_string("Q: {{ question }}", {"question": "{{ 7 * 7 }}"})
    'Q: {{ 7 * 7 }}'

Spec files are untrusted input, so three things hold whatever a template says:

- analysing a template (`variables`, `attribute_uses`, `unsafe_constructs`) never evaluates any
  of it: `llmspec validate` reads `{{ 7 ** 10**8 }}` in microseconds;
- a render is capped in output size, time and integer size (see `llmspec.renderlimits`) and
  ends with `RenderLimit`, a `jinja2.TemplateError`, when it goes past a cap;
- the obvious escape attempts are found at validate time by `unsafe_constructs`.

    >>> unsafe_constructs("{{ x.__class__ }}")
    [(1, 'attribute `__class__` reaches Python internals')]
"""

from __future__ import annotations

import sys
import time
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import TemplateRuntimeError

from llmspec.renderlimits import (
    MAX_RENDER_CHARS,
    MAX_RENDER_SECONDS,
    BoundedEnvironment,
    Budget,
    RenderLimit,
    budget,
    guard,
)

__all__ = [
    "ENV",
    "MAX_RENDER_CHARS",
    "MAX_RENDER_SECONDS",
    "RenderLimit",
    "attribute_uses",
    "compile_template",
    "render_string",
    "unsafe_constructs",
    "variables",
]

ENV = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


def _parse(source: str) -> nodes.Template:
    """Parse without compiling; a template nested past Python's recursion limit is a syntax
    error like any other."""
    try:
        return ENV.parse(source)
    except RecursionError:
        raise TemplateSyntaxError("template nests too deeply", 1) from None


class _Tracker(CodeGenerator):
    """jinja2's own scoping rules find the variables a template reads (as `jinja2.meta` does),
    but with the optimizer off and no code written, so no expression is ever evaluated."""

    def __init__(self) -> None:
        super().__init__(ENV, "<analysis>", "<analysis>", optimized=False)
        self.undeclared: set[str] = set()

    def write(self, x: str) -> None:
        pass

    def enter_frame(self, frame: Frame) -> None:
        super().enter_frame(frame)
        for _, (action, param) in frame.symbols.loads.items():
            if action == "resolve" and param not in ENV.globals:
                self.undeclared.add(param)


@lru_cache(maxsize=1024)
def variables(source: str) -> frozenset[str]:
    """The top-level variables a template reads; raises jinja2.TemplateSyntaxError, also for a
    template that does not compile (an unknown filter, blocks nested past Python's limit).

    >>> sorted(variables("{% for c in context %}{{ c }}{% endfor %}{{ question }}"))
    ['context', 'question']
    """
    tree = _parse(source)
    tracker = _Tracker()
    try:
        tracker.visit(tree)
    except RecursionError:
        raise TemplateSyntaxError("template nests too deeply", 1) from None
    compile_template(source)
    return frozenset(tracker.undeclared)


def attribute_uses(source: str) -> dict[str, set[str]]:
    """For each variable, the attributes read from it (`row.question` -> {"row": {"question"}})."""
    out: dict[str, set[str]] = {}
    for node in _parse(source).find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name):
            out.setdefault(node.node.name, set()).add(node.attr)
    return out


# Filters whose first argument, and any filter's `attribute=`, names an attribute to read.
_ATTRIBUTE_FILTERS = frozenset({"attr", "selectattr", "rejectattr", "groupby"})
_FORMAT_METHODS = frozenset({"format", "format_map"})


def _static_str(node: nodes.Node | None) -> str | None:
    """The string an expression always is (literals joined with `~` or `+`), else None."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return node.value
    if isinstance(node, nodes.Concat):
        parts = [_static_str(n) for n in node.nodes]
        return None if None in parts else "".join(parts)  # type: ignore[arg-type]
    if isinstance(node, nodes.Add):
        left, right = _static_str(node.left), _static_str(node.right)
        return None if left is None or right is None else left + right
    return None


def _is_dunder(name: str | None) -> bool:
    return name is not None and name.startswith("__")


def _attribute_names(node: nodes.Filter) -> list[str | None]:
    names = [_static_str(k.value) for k in node.kwargs if k.key == "attribute"]
    if node.name in _ATTRIBUTE_FILTERS and node.args:
        names.append(_static_str(node.args[0]))
    return names


def _called_name(node: nodes.Call) -> str | None:
    """The attribute a call goes through: `x.format(...)`, `x['format'](...)`,
    `(x | attr('format'))(...)`."""
    target = node.node
    if isinstance(target, nodes.Getattr):
        return target.attr
    if isinstance(target, nodes.Getitem):
        return _static_str(target.arg)
    if isinstance(target, nodes.Filter) and target.name == "attr" and target.args:
        return _static_str(target.args[0])
    return None


def unsafe_constructs(source: str) -> list[tuple[int, str]]:
    """The template's obvious sandbox-escape attempts, as (line in the template, message),
    sorted. Raises jinja2.TemplateSyntaxError like `variables`.

    Found: attribute or item access to a name starting with `__` (`x.__class__`,
    `x['__init__']`), `attr`, `selectattr`, `rejectattr`, `groupby` or `attribute=` with such
    a name, and calls of `format`/`format_map` (which read attributes of their arguments:
    `'{0.__class__}'.format(x)`). The `format` filter is `%` formatting, which cannot reach
    attributes, so it is not reported. The sandbox refuses all of these at render time anyway;
    reporting them at validate time puts the attempt in front of the reviewer.

    >>> unsafe_constructs("{{ q }}\\n{{ '{0.__class__}'.format(q) }}\\n{{ q | attr('__doc__') }}")
    [(2, 'call of `format`: str.format reads attributes of its arguments'), \
(3, "filter `attr('__doc__')` reaches Python internals")]
    """
    found: set[tuple[int, str]] = set()
    try:
        for node in _parse(source).find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
            if isinstance(node, nodes.Getattr) and _is_dunder(node.attr):
                found.add((node.lineno, f"attribute `{node.attr}` reaches Python internals"))
            elif isinstance(node, nodes.Getitem) and _is_dunder(_static_str(node.arg)):
                key = _static_str(node.arg)
                found.add((node.lineno, f"item `[{key!r}]` reaches Python internals"))
            elif isinstance(node, nodes.Filter):
                for name in filter(_is_dunder, _attribute_names(node)):
                    shown = f"filter `{node.name}({name!r})`"
                    found.add((node.lineno, f"{shown} reaches Python internals"))
        for call in _parse(source).find_all(nodes.Call):
            name = _called_name(call)
            if name in _FORMAT_METHODS:
                found.add(
                    (call.lineno, f"call of `{name}`: str.{name} reads attributes of its arguments")
                )
    except RecursionError:
        raise TemplateSyntaxError("template nests too deeply", 1) from None
    return sorted(found)


@lru_cache(maxsize=1024)
def compile_template(source: str) -> Any:
    """The template, guarded for `BoundedEnvironment`; raises jinja2.TemplateSyntaxError."""
    tree = _parse(source)
    try:
        code = ENV.compile(guard(tree, ENV))
    except RecursionError:
        raise TemplateSyntaxError("template nests too deeply", 1) from None
    except SyntaxError as e:  # Python's own limits, e.g. more than 20 nested blocks
        raise TemplateSyntaxError(f"template cannot be compiled: {e.msg}", 1) from None
    return ENV.template_class.from_code(ENV, code, ENV.make_globals(None), None)


def render_string(
    source: str,
    context: dict[str, Any],
    *,
    max_chars: int = MAX_RENDER_CHARS,
    max_seconds: float = MAX_RENDER_SECONDS,
) -> str:
    """Render a template; raises jinja2 errors (UndefinedError, SecurityError, RenderLimit
    past `max_chars` characters or `max_seconds` seconds) on bad use.

    Every failure is a `jinja2.TemplateError`, also arithmetic on row values (`{{ a / b }}`
    with b = 0), so a caller that catches that records a per-row error and goes on.

    >>> render_string("{{ 'ab' * 3 }}", {})
    'ababab'
    >>> render_string("{{ 'x' * 10**9 }}", {})
    Traceback (most recent call last):
    ...
    llmspec.renderlimits.RenderLimit: `*` by 1,000,000,000 would be larger than 8,388,608 \
characters, the size cap of a render
    """
    b = Budget(max_chars, max_seconds, time.monotonic() + max_seconds)
    token = budget().set(b)
    try:
        pieces: list[str] = []
        size = 0
        for piece in compile_template(source).generate(**context):
            size += len(piece)
            if size > max_chars:
                b.emit(max_chars + 1)
            pieces.append(piece)
        return "".join(pieces)
    except TemplateError:
        raise
    except RecursionError:
        raise RenderLimit(
            "depth",
            sys.getrecursionlimit(),
            "template recursion is too deep: a macro or loop that calls itself",
        ) from None
    except MemoryError:
        raise RenderLimit("size", max_chars, "template render ran out of memory") from None
    except Exception as e:
        raise TemplateRuntimeError(f"{type(e).__name__}: {e}") from None
    finally:
        budget().reset(token)
