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
    """`schema` with the part at `path` widened, and what was widened, in words: a pattern
    without its look-arounds (or no pattern), else without the keyword the message names,
    else the subschema replaced by `{}`."""
    out = copy.deepcopy(schema)
    node = _get(out, path)
    where = pointer(path)
    if isinstance(node, dict) and ("regex" in message.lower() or "pattern" in message):
        if isinstance(node.get("pattern"), str) and _bad_regex(node["pattern"]):
            loose = without_lookaround(node["pattern"])
            if loose is not None and not _bad_regex(loose):
                node["pattern"] = loose
                return out, f"the look-arounds of the pattern at {where}"
            del node["pattern"]
            return out, f"pattern at {where}"
        pp = node.get("patternProperties")
        if isinstance(pp, dict) and any(_bad_regex(k) for k in pp):
            loose_keys = {k: (k if not _bad_regex(k) else without_lookaround(k)) for k in pp}
            if all(v is not None and not _bad_regex(v) for v in loose_keys.values()):
                node["patternProperties"] = {loose_keys[k]: v for k, v in pp.items()}
                return out, f"the look-arounds of patternProperties at {where}"
            node.pop("patternProperties")
            node.pop("additionalProperties", None)
            return out, f"patternProperties at {where}"
    if isinstance(node, dict):
        named = [k for k in node if k in _ASSERTIONS and re.search(rf"\b{k}\b", message)]
        if named:
            for k in named:
                node.pop(k)
            return out, f"{', '.join(named)} at {where}"
    if not path:
        return {}, "the whole schema"
    parent = _get(out, path[:-1])
    parent[path[-1]] = {}
    return out, f"the subschema at {where}"


# Keywords that only narrow what a schema accepts: dropping one widens it.
_ASSERTIONS = (
    "minProperties", "maxProperties", "minItems", "maxItems", "minLength", "maxLength",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "required",
    "minContains", "maxContains", "uniqueItems", "dependentRequired", "format",
)  # fmt: skip


def without_lookaround(pattern: str) -> str | None:
    """A pattern with its look-ahead and look-behind groups removed: zero-width conditions,
    so the pattern without them matches every string it matched, and more. None when the
    pattern cannot be read (an unbalanced group).

    >>> without_lookaround("^(?=.*[0-9])(?!x)[a-z0-9]{8}$")
    '^[a-z0-9]{8}$'
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
        elif pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            end = _group_end(pattern, i)
            if end is None:
                return None
            i = end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _group_end(pattern: str, start: int) -> int | None:
    """The index of the `)` that closes the group opening at `start`."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


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
    rewritten, notes = approximate(schema)
    if notes and (_problem(build, rewritten)[0] is None or _problem(build, schema)[0]):
        schema, left = rewritten, notes
    for _ in range(MAX_WIDENINGS):
        err, warnings = _problem(build, schema)
        if err is None:
            rewritten = {n.split(" at ")[0] for n in left}
            notes = [k if "(" in k else f"{k} (checked after the fact)"
                     for k in _left(warnings) if k not in rewritten]  # fmt: skip
            return schema, tuple(dict.fromkeys(notes + left))
        path = locate_failure(schema, build, err)
        if path:
            err = _problem(build, _standalone(schema, _get(schema, path)))[0] or err
        schema, what = _widen(schema, path, err)
        from llmspec.constraints import shorten

        left.append(f"{what} ({shorten(err)}; checked after the fact)")
    return {}, tuple(left + ["the whole schema (checked after the fact)"])


def approximate(schema: Any) -> tuple[Any, list[str]]:
    """Keywords lenient compilation would ignore, rewritten into ones the engine enforces,
    each rewrite admitting every document the original does:

    - `unevaluatedProperties` of an object whose in-place subschemas (`allOf`, `anyOf`,
      `oneOf`, `if`/`then`/`else`, `dependentSchemas`) declare their properties plainly
      becomes `additionalProperties` over all the properties they name;
    - `propertyNames` that only constrains a string (pattern, lengths, enum, const) becomes a
      `patternProperties` regex with `additionalProperties: false`;
    - `contains` implies `minItems: minContains` (1 by default), which the engine enforces.

    >>> approximate({"allOf": [{"properties": {"a": {"type": "integer"}}}],
    ...              "unevaluatedProperties": False})[0]
    {'allOf': [{'properties': {'a': {'type': 'integer'}}}], 'properties': {'a': {}}, \
'additionalProperties': False}
    """
    from llmspec.jsonschemas import subschemas

    out = copy.deepcopy(schema)
    notes: list[str] = []
    for path, node in [(p, n) for p, n in subschemas(out) if isinstance(n, dict)]:
        if _unevaluated(node):
            notes.append(f"unevaluatedProperties at {pointer(path)} (as additionalProperties)")
        if _property_names(node):
            notes.append(f"propertyNames at {pointer(path)} (as patternProperties)")
        if _contains(node):
            notes.append(f"contains at {pointer(path)} (its minItems enforced)")
    return out, notes


def _contains(node: dict) -> bool:
    """`contains` needs `minContains` (1 by default) items at least: say so with minItems,
    which every document the schema accepts satisfies anyway."""
    if "contains" not in node or node["contains"] is False:
        return False
    need = node.get("minContains", 1)
    if not isinstance(need, int) or need < 1 or node.get("minItems", 0) >= need:
        return False
    node["minItems"] = need
    return True


_IN_PLACE = ("allOf", "anyOf", "oneOf")
_OPAQUE = ("$ref", "$dynamicRef", "patternProperties", "additionalProperties",
           "unevaluatedProperties")  # fmt: skip


def _named_properties(node: Any, names: set[str]) -> bool:
    """Collect the property names `node` and its in-place subschemas declare; False when one
    of them evaluates properties some other way (a `$ref`, patterns, additionalProperties)."""
    if isinstance(node, bool):
        return True
    if not isinstance(node, dict) or any(k in node for k in _OPAQUE):
        return False
    names |= set(node.get("properties") or {})
    subs = [b for k in _IN_PLACE for b in (node.get(k) or [])]
    subs += [node[k] for k in ("if", "then", "else") if k in node]
    subs += list((node.get("dependentSchemas") or {}).values())
    return all(_named_properties(b, names) for b in subs)


def _unevaluated(node: dict) -> bool:
    if "unevaluatedProperties" not in node or any(
        k in node for k in ("additionalProperties", "patternProperties", "$ref")
    ):
        return False
    names: set[str] = set()
    inner = {k: v for k, v in node.items() if k != "unevaluatedProperties"}
    if not _named_properties(inner, names):
        return False
    props = dict(node.get("properties") or {})
    node["properties"] = {**{n: {} for n in sorted(names) if n not in props}, **props}
    node["additionalProperties"] = node.pop("unevaluatedProperties")
    return True


def _property_names(node: dict) -> bool:
    pn = node.get("propertyNames")
    if not isinstance(pn, dict) or "patternProperties" in node:
        return False
    if not set(pn) <= {"type", "pattern", "minLength", "maxLength", "enum", "const"}:
        return False
    extra = node.get("additionalProperties", True)
    if node.get("properties") and extra not in (True, {}):
        return False  # the pattern would add `extra` to the named properties too
    regex = _name_regex(pn)
    if regex is None:
        return False
    node["patternProperties"] = {regex: {} if extra is True else extra}
    node["additionalProperties"] = False
    return True


def _name_regex(pn: dict) -> str | None:
    """A regex matching (at least) the names a string-only `propertyNames` allows."""
    values = pn.get("enum", [pn["const"]] if "const" in pn else None)
    if values is not None:
        if not values or not all(isinstance(v, str) for v in values):
            return None
        return "^(" + "|".join(re.escape(v) for v in values) + ")$"
    if isinstance(pn.get("pattern"), str):
        return pn["pattern"]
    lo, hi = pn.get("minLength", 0), pn.get("maxLength")
    if not isinstance(lo, int) or (hi is not None and not isinstance(hi, int)):
        return None
    if lo == 0 and hi is None:
        return None
    return f"^[\\s\\S]{{{lo},{'' if hi is None else hi}}}$"
