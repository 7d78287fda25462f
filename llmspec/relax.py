"""Which part of a JSON schema the grammar engine refuses, and a wider schema it takes.

`locate_failure` finds the deepest subschema whose grammar fails with the same message as the
whole schema's, so a diagnostic can point at it (`/properties/a/allOf`) instead of the root.
`relax` is what `enforce: best_effort` enforces: the schema compiled with llguidance's lenient
options (unimplemented keywords ignored, `oneOf` as `anyOf`), and where it still fails, the
failing part widened (a pattern the engine cannot parse dropped, else the subschema replaced
by `{}`) until it compiles. Widening only ever admits more documents, so every valid output
stays reachable; the full schema is checked after the fact.

    >>> from llmspec.constraints import Constraint
    >>> c = Constraint("json_schema", {"type": "array", "uniqueItems": True},
    ...                enforce="best_effort")
    >>> c.enforceable() is None, c.enforced_schema()[1]
    (True, ('uniqueItems (checked after the fact)',))
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

MAX_WIDENINGS = 16


def pointer(path: tuple) -> str:
    """A JSON Pointer for a path in a schema.

    >>> pointer(("properties", "a/b", "allOf", 0))
    '/properties/a~1b/allOf/0'
    """
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path) or "/"


def _problem(build: Callable[[Any], str], schema: Any) -> tuple[str | None, list[str]]:
    """(error or None, warnings) of the grammar of `schema`."""
    from llguidance import LLMatcher

    try:
        grammar = build(schema)
    except ValueError as e:
        return str(e), []
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        return (messages[0] if messages else "llguidance rejected the grammar"), []
    return None, messages


def _standalone(root: Any, sub: Any) -> Any:
    """A subschema with the root's definitions beside it, so its `$ref`s still resolve."""
    if not isinstance(sub, dict) or not isinstance(root, dict):
        return sub
    out = dict(sub)
    for key in ("$defs", "definitions"):
        if key in root and key not in out:
            out[key] = root[key]
    return out


def locate_failure(schema: Any, build: Callable[[Any], str], message: str) -> tuple:
    """The path of the deepest subschema whose grammar fails the way `message` says (the
    same kind of error: its first line up to a colon); () for the root."""
    from llmspec.jsonschemas import children

    first = _kind(message)
    path: tuple = ()
    node = schema
    for _ in range(256):  # depth bound: one step per level
        for p, sub in children(node, path):
            err, _ = _problem(build, _standalone(schema, sub))
            if err is not None and _kind(err) == first:
                path, node = p, sub
                break
        else:
            return path
    return path


def subschema_problem(schema: Any, path: tuple, build: Callable[[Any], str]) -> str | None:
    """The grammar error of the subschema at `path` compiled on its own (one line)."""
    from llmspec.constraints import shorten

    err = _problem(build, _standalone(schema, _get(schema, path)))[0]
    return shorten(err) if err else None


def _kind(message: str) -> str:
    """What kind of refusal a message is: its one-line form up to the first colon (regex
    errors say what is wrong first, their pattern after)."""
    from llmspec.constraints import shorten

    one = shorten(message)
    return one.split(":")[0].split(" (pattern")[0]


def _get(schema: Any, path: tuple) -> Any:
    for p in path:
        schema = schema[p]
    return schema


def _widen(schema: Any, path: tuple, message: str) -> tuple[Any, str]:
    """`schema` with the part at `path` widened, and what was widened, in words."""
    out = copy.deepcopy(schema)
    node = _get(out, path)
    where = pointer(path)
    if isinstance(node, dict) and "regex" in message.lower():
        if isinstance(node.get("pattern"), str) and _bad_regex(node["pattern"]):
            del node["pattern"]
            return out, f"pattern at {where}"
        if isinstance(node.get("patternProperties"), dict):
            node.pop("patternProperties")
            node.pop("additionalProperties", None)
            return out, f"patternProperties at {where}"
    if not path:
        return {}, "the whole schema"
    parent = _get(out, path[:-1])
    parent[path[-1]] = {}
    return out, f"the subschema at {where}"


def _bad_regex(pattern: str) -> bool:
    from llguidance import LLMatcher

    grammar = LLMatcher.grammar_from_regex(pattern)
    return LLMatcher.validate_grammar_with_warnings(grammar)[0]


_UNIMPLEMENTED = re.compile(r"Unimplemented keys: \[(.*?)\]")


def _left(warnings: list[str]) -> list[str]:
    """What lenient compilation left unenforced, from its warnings."""
    out = []
    for w in warnings:
        m = _UNIMPLEMENTED.search(w)
        if m:
            out += [json.loads(k) for k in m.group(1).split(", ") if k.startswith('"')]
        elif w.startswith("oneOf"):
            out.append("oneOf (enforced as anyOf)")
    return list(dict.fromkeys(out))


def relax(schema: Any, build: Callable[[Any], str]) -> tuple[Any, tuple[str, ...]]:
    """A schema llguidance compiles (with `build`, the lenient options), as close to
    `schema` as the widening allows, and what is left to the check after the fact."""
    left: list[str] = []
    for _ in range(MAX_WIDENINGS):
        err, warnings = _problem(build, schema)
        if err is None:
            notes = [k if "(" in k else f"{k} (checked after the fact)" for k in _left(warnings)]
            return schema, tuple(dict.fromkeys(notes + left))
        path = locate_failure(schema, build, err)
        if path:
            err = _problem(build, _standalone(schema, _get(schema, path)))[0] or err
        schema, what = _widen(schema, path, err)
        first = err.strip().splitlines()[0]
        left.append(f"{what} ({first.removesuffix(':')}; checked after the fact)")
    return {}, tuple(left + ["the whole schema (checked after the fact)"])
