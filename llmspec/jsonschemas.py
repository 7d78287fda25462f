"""JSON Schema checks and validators, safe to run on untrusted schemas.

- A schema is checked, and its outputs validated, under the draft its `$schema` names
  (draft-04, -06, -07, 2019-09 or 2020-12; 2020-12 when it names none); `to_2020` rewrites an
  older draft's keywords for the grammar, which speaks 2020-12.
- `$ref` resolves inside the schema only: to `#...` pointers and anchors, to resources the
  schema embeds with `$id` (`urn:` ids included) and to the metaschemas jsonschema ships; files
  of the project are bundled into it at resolve (`bundle`), and nothing is ever fetched or read
  from outside the project.
- `pattern` and `patternProperties` follow ECMA-262, as JSON Schema says (`ecma_pattern`), on
  the `regex` engine with a time limit, so a pathological pattern cannot hang a run.
  Validators are built once per schema and cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

PATTERN_TIMEOUT_S = 0.1

# `$schema` values (without a trailing "#") -> the draft llmspec checks the schema under.
DRAFTS = {
    "http://json-schema.org/draft-04/schema": "draft-04",
    "http://json-schema.org/draft-06/schema": "draft-06",
    "http://json-schema.org/draft-07/schema": "draft-07",
    "https://json-schema.org/draft/2019-09/schema": "2019-09",
    "https://json-schema.org/draft/2020-12/schema": "2020-12",
}
_VALIDATORS = {
    "draft-04": "Draft4Validator",
    "draft-06": "Draft6Validator",
    "draft-07": "Draft7Validator",
    "2019-09": "Draft201909Validator",
    "2020-12": "Draft202012Validator",
}
LATEST = "2020-12"
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_ONE = (
    "additionalProperties", "unevaluatedProperties", "additionalItems", "unevaluatedItems",
    "contains", "propertyNames", "not", "if", "then", "else", "contentSchema",
)  # fmt: skip


def draft_of(schema: Any) -> str:
    """The draft a schema declares with `$schema` (2020-12 when none). Raises ValueError for
    a `$schema` llmspec does not know.

    >>> draft_of({"$schema": "http://json-schema.org/draft-07/schema#"}), draft_of({})
    ('draft-07', '2020-12')
    """
    if not isinstance(schema, dict) or "$schema" not in schema:
        return LATEST
    uri = schema["$schema"]
    if not isinstance(uri, str):
        raise ValueError("`$schema` must be a URI string")
    key = uri.removesuffix("#")
    if key.startswith("https://json-schema.org/draft-0"):
        key = "http" + key[5:]  # the old drafts' ids are http; https is a common spelling
    elif key.startswith("http://json-schema.org/draft/"):
        key = "https" + key[4:]
    if key not in DRAFTS:
        raise ValueError(
            f"unknown `$schema` {uri!r}: llmspec checks draft-04, draft-06, draft-07, 2019-09 "
            "and 2020-12 schemas"
        )
    return DRAFTS[key]


def _validator_class(draft: str) -> Any:
    import jsonschema

    return getattr(jsonschema, _VALIDATORS[draft])


def subschemas(schema: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """Every subschema of a schema (itself first) with its path, walking only the keywords
    that hold schemas (so a property named `pattern` is not taken for the keyword)."""
    yield path, schema
    for p, sub in children(schema, path):
        yield from subschemas(sub, p)


def children(schema: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """The direct subschemas of a schema, with their paths."""
    if not isinstance(schema, dict):
        return
    for k, v in schema.items():
        if k in _SUBSCHEMA_MAPS and isinstance(v, dict):
            for name, sub in v.items():
                yield path + (k, name), sub
        elif (k in _SUBSCHEMA_LISTS or k == "items") and isinstance(v, list):
            for i, sub in enumerate(v):
                yield path + (k, i), sub
        elif k == "dependencies" and isinstance(v, dict):
            for name, sub in v.items():
                if isinstance(sub, dict | bool):
                    yield path + (k, name), sub
        elif (k in _SUBSCHEMA_ONE or k == "items") and isinstance(v, dict | bool):
            yield path + (k,), v


def refs(schema: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every `$ref` in a schema with its path."""
    for p, sub in subschemas(schema, path):
        if isinstance(sub, dict) and isinstance(sub.get("$ref"), str):
            yield p + ("$ref",), sub["$ref"]


def refs_with_base(schema: Any) -> Iterator[tuple[tuple, str, str]]:
    """Every `$ref` with its path and the base URI it resolves against (the nearest `$id`)."""
    from urllib.parse import urljoin

    id_key = "id" if _safe_draft(schema) == "draft-04" else "$id"

    def walk(node: Any, path: tuple, base: str) -> Iterator[tuple[tuple, str, str]]:
        if not isinstance(node, dict):
            return
        own = node.get(id_key)
        if isinstance(own, str) and not own.startswith("#"):
            base = urljoin(base, own) if base else own
        if isinstance(node.get("$ref"), str):
            yield path + ("$ref",), node["$ref"], base
        for p, sub in children(node, path):
            yield from walk(sub, p, base)

    yield from walk(schema, (), "")


def _safe_draft(schema: Any) -> str:
    try:
        return draft_of(schema)
    except ValueError:
        return LATEST


def patterns(schema: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every `pattern` and `patternProperties` key of a schema, with its path."""
    for p, sub in subschemas(schema, path):
        if not isinstance(sub, dict):
            continue
        if isinstance(sub.get("pattern"), str):
            yield p + ("pattern",), sub["pattern"]
        if isinstance(sub.get("patternProperties"), dict):
            for key in sub["patternProperties"]:
                yield p + ("patternProperties", key), key


def strict_problem(schema: Any) -> str | None:
    """Why OpenAI's strict structured outputs would reject `schema`, or None: every object
    must set `additionalProperties: false` and list all its properties in `required`.

    >>> strict_problem({"type": "object", "properties": {"a": {"type": "string"}}})
    'the object at `/` does not set `additionalProperties: false`'
    >>> strict_problem({"type": "object", "additionalProperties": False,
    ...                 "properties": {"a": {}}, "required": []})
    'the object at `/` does not list `a` in `required`'
    >>> strict_problem({"type": "object", "additionalProperties": False, "required": ["a"],
    ...                 "properties": {"a": {"type": "array", "items": {"type": "string"}}}})
    """
    for path, sub in subschemas(schema):
        if not isinstance(sub, dict):
            continue
        kind = sub.get("type")
        if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in sub:
            where = "/" + "/".join(map(str, path))
            if sub.get("additionalProperties") is not False:
                return f"the object at `{where}` does not set `additionalProperties: false`"
            props = sub.get("properties", {})
            missing = [p for p in props if p not in sub.get("required", [])]
            if missing:
                return f"the object at `{where}` does not list `{missing[0]}` in `required`"
    return None


@lru_cache(maxsize=64)
def _resources(schema_json: str) -> Any:
    """A registry of the schema's own resources (its `$id`s, anchors) and the metaschemas."""
    from jsonschema_specifications import REGISTRY
    from referencing import Resource
    from referencing.jsonschema import specification_with

    schema = json.loads(schema_json)
    draft = _safe_draft(schema)
    uri = next(k for k, v in DRAFTS.items() if v == draft)
    spec = specification_with(uri + ("#" if draft.startswith("draft") else ""))
    resource = Resource(contents=schema, specification=spec)
    return REGISTRY.with_resource(resource.id() or "", resource).crawl()


def resolves_inside(schema: Any, ref: str, base_uri: str) -> bool:
    """Whether `ref` (found under base URI `base_uri`) names a part of `schema` itself (an
    embedded `$id`, an anchor, a pointer) or a metaschema jsonschema ships."""
    from referencing.exceptions import Unresolvable

    try:
        registry = _resources(json.dumps(schema, sort_keys=True))
        registry.resolver(base_uri=base_uri).lookup(ref)
        return True
    except (Unresolvable, ValueError, TypeError, KeyError, AttributeError):
        return False


def ref_problem(
    ref: str, base: Path, root: Path, schema: Any = None, base_uri: str = ""
) -> str | None:
    """Why a `$ref` may not be followed, or None when it is local: a pointer, a part of
    `schema` itself or a metaschema (when `schema` is given), or a file of the project."""
    if ref.startswith("#"):
        return None
    if schema is not None and resolves_inside(schema, ref, base_uri):
        return None
    if "://" in ref or ref.startswith(("file:", "urn:", "//")):
        return f"`$ref` to `{ref}` would leave the project: only `#...` and relative files"
    if any(ord(ch) < 32 for ch in ref):
        return f"`$ref` to `{ref!r}` holds a control character"
    try:
        target = (base / ref.split("#", 1)[0]).resolve()
        target.relative_to(root.resolve())
    except ValueError:
        return f"`$ref` to `{ref}` points outside the project folder"
    except OSError as e:
        return f"`$ref` to `{ref[:80]}`: {e.strerror}"
    try:
        if not target.is_file():
            return f"`$ref` to `{ref}`: no such file"
    except OSError as e:
        return f"`$ref` to `{ref[:80]}`: {e.strerror}"
    return None


def check_schema(schema: Any) -> list[tuple[tuple, str]]:
    """Metaschema problems of a schema under the draft it declares, as (path, message)."""
    from llmspec.errors import did_you_mean

    try:
        draft = draft_of(schema)
    except ValueError as e:
        return [(("$schema",), str(e))]
    cls = _validator_class(draft)
    validator = cls(cls.META_SCHEMA)
    out = []
    for err in sorted(validator.iter_errors(schema), key=lambda e: [str(p) for p in e.path]):
        path = tuple(err.path)
        message = err.message
        if path and path[-1] == "type" and isinstance(err.instance, str):
            hint = did_you_mean(err.instance, JSON_TYPES)
            message = f"`{err.instance}` is not a JSON Schema type" + (f" ({hint})" if hint else "")
        if draft != LATEST:
            message += f" (under {draft}, the draft its `$schema` names)"
        elif (
            path
            and path[-1] in ("exclusiveMinimum", "exclusiveMaximum")
            and isinstance(err.instance, bool)
        ):
            message += (
                " (a boolean here is draft-04: declare "
                '`"$schema": "http://json-schema.org/draft-04/schema#"` to check it as one)'
            )
        out.append((path, message))
    return out


JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")

# ECMA-262 white space and line terminators: what `\s` matches in a JSON Schema pattern.
_ECMA_SPACE = (
    "\\t\\n\\v\\f\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
_WORD = "A-Za-z0-9_"
# Escapes whose ECMA meaning differs from Python's: (outside a class, inside a class or None).
_ESCAPES = {
    "d": ("[0-9]", "0-9"),
    "D": ("[^0-9]", None),
    "w": (f"[{_WORD}]", _WORD),
    "W": (f"[^{_WORD}]", None),
    "s": (f"[{_ECMA_SPACE}]", _ECMA_SPACE),
    "S": (f"[^{_ECMA_SPACE}]", None),
    "b": (f"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))", None),
    "B": (f"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))", None),
}


def ecma_pattern(pattern: str) -> str:
    """A JSON Schema pattern (ECMA-262, no flags) as a `regex` pattern with its meaning:
    `$` matches only at the very end (Python's also before a final newline), `.` matches no
    line terminator, `\\d`, `\\w` and `\\b` are ASCII and `\\s` is ECMA's white space. Inside
    a character class `\\d`, `\\w` and `\\s` are translated too; `\\D`, `\\W`, `\\S` there keep
    Python's (Unicode) meaning. Everything else passes through.

    >>> ecma_pattern(r"^\\d+$")
    '^[0-9]+\\\\Z'
    """
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            outside, inside = _ESCAPES.get(nxt, (None, None))
            repl = inside if in_class else outside
            out.append(repl if repl is not None else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
        elif ch == "[":
            in_class = True
            out.append(ch)
        elif ch == "$":
            out.append("\\Z")
        elif ch == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> Any:
    """The compiled ECMA-262 meaning of a JSON Schema pattern. Raises `regex.error`."""
    import regex

    return regex.compile(ecma_pattern(pattern))


def pattern_search(pattern: str, text: str) -> bool:
    """Whether a JSON Schema pattern matches somewhere in `text`. Raises TimeoutError."""
    return compile_pattern(pattern).search(text, timeout=PATTERN_TIMEOUT_S) is not None


def _safe_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not isinstance(instance, str):
        return
    try:
        found = pattern_search(pattern, instance)
    except TimeoutError:
        yield ValidationError(f"pattern {pattern!r} took too long on {instance[:40]!r}")
        return
    except Exception as e:  # noqa: BLE001 - a pattern resolve did not see (a bundled file)
        yield ValidationError(f"pattern {pattern!r} cannot be compiled: {e}")
        return
    if not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _matches(pattern: str, key: str) -> bool:
    try:
        return pattern_search(pattern, key)
    except Exception:  # noqa: BLE001 - a key that cannot be checked matches nothing
        return False


def _pattern_properties(validator: Any, pp: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pp.items():
        for k, v in instance.items():
            if _matches(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    props = schema.get("properties", {})
    pats = list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in props and not any(_matches(p, k) for p in pats)]
    if validator.is_type(ap, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], ap, path=extra)
    elif ap is False and extras:
        shown = ", ".join(repr(e) for e in sorted(extras))
        if pats:
            yield ValidationError(f"{shown} do not match any of the regexes: {sorted(pats)}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({shown} unexpected)")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    from jsonschema import validators
    from referencing import Registry

    schema = json.loads(schema_json)
    cls = validators.extend(
        _validator_class(_safe_draft(schema)),
        {
            "pattern": _safe_pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )
    # An empty registry that retrieves nothing: resolve bundles every file a schema refers to,
    # the schema's own `$id`s and the metaschemas resolve without it, and a URL is never fetched.
    return cls(schema, registry=Registry())


def validator_for(schema: Any) -> Any:
    """A cached validator for a (bundled) schema, of the draft it declares."""
    return _validator(json.dumps(schema, sort_keys=True))


def validation_errors(schema: Any, instance: Any) -> list[str]:
    return [e.message for e in validator_for(schema).iter_errors(instance)]


def to_2020(schema: Any) -> Any:
    """An older draft's schema with the same meaning in 2020-12 keywords, for the grammar.

    draft-04 boolean `exclusiveMinimum`/`exclusiveMaximum` become numbers and `id` becomes
    `$id`; before 2020-12, an array `items` becomes `prefixItems` (and `additionalItems`
    `items`); before 2019-09, `dependencies` splits into `dependentRequired` and
    `dependentSchemas`, and a `$ref`'s siblings are dropped (those drafts ignore them).
    `$schema` itself is dropped.

    >>> to_2020({"$schema": "http://json-schema.org/draft-04/schema#",
    ...          "minimum": 3, "exclusiveMinimum": True})
    {'exclusiveMinimum': 3}
    """
    draft = _safe_draft(schema)
    if draft == LATEST:
        return schema
    out = _rewrite(schema, draft)
    if isinstance(out, dict):
        out.pop("$schema", None)
    return out


_KEEP_WITH_REF = ("$ref", "definitions", "$defs", "$id", "id", "$schema", "$comment", "title",
                  "description")  # fmt: skip


def _rewrite(node: Any, draft: str) -> Any:
    if not isinstance(node, dict):
        return node
    old = draft.startswith("draft-")
    d = dict(node)
    if old and "$ref" in d:
        d = {k: v for k, v in d.items() if k in _KEEP_WITH_REF}
    if draft == "draft-04":
        for bound, excl in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if isinstance(d.get(excl), bool):
                if d.pop(excl) and bound in d:
                    d[excl] = d.pop(bound)
        if isinstance(d.get("id"), str) and "$id" not in d:
            d["$id"] = d.pop("id")
    if isinstance(d.get("items"), list):
        d["prefixItems"] = d.pop("items")
        if "additionalItems" in d:
            d["items"] = d.pop("additionalItems")
    else:
        d.pop("additionalItems", None)
    if old and isinstance(d.get("dependencies"), dict):
        for name, dep in d.pop("dependencies").items():
            kind = "dependentRequired" if isinstance(dep, list) else "dependentSchemas"
            d.setdefault(kind, {})[name] = dep
    for k, v in list(d.items()):
        if k in _SUBSCHEMA_MAPS and isinstance(v, dict):
            d[k] = {name: _rewrite(sub, draft) for name, sub in v.items()}
        elif (k in _SUBSCHEMA_LISTS or k == "prefixItems") and isinstance(v, list):
            d[k] = [_rewrite(sub, draft) for sub in v]
        elif k in _SUBSCHEMA_ONE or k == "items":
            d[k] = _rewrite(v, draft)
    return d


def bundle(schema: Any, base: Path, root: Path) -> Any:
    """`schema` with every `$ref` to a file of the project inlined under `$defs`, so it is
    self-contained: one value a job key can hash and a server or grammar can take whole.
    Refs must have passed `ref_problem` already; refs to the schema's own `$id`s and to
    metaschemas stay as they are.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "c.json").write_text('{"$defs": {"n": {"type": "integer"}}}')
    >>> bundle({"$ref": "c.json#/$defs/n"}, d, d)["$ref"]
    '#/$defs/file__c.json/$defs/n'
    """
    defs: dict[str, Any] = {}
    internal = {(p, ref) for p, ref, b in refs_with_base(schema)
                if not ref.startswith("#") and resolves_inside(schema, ref, b)}  # fmt: skip

    def key_of(path: Path) -> str:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        return "file__" + rel.replace("/", "__").replace("~", "_")

    def load(path: Path) -> Any:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            from llmspec.load import load_text

            return load_text(text, str(path)).data
        return json.loads(text)

    def rewrite(node: Any, here: Path, key: str | None, path: tuple) -> Any:
        if isinstance(node, list):
            return [rewrite(v, here, key, path + (i,)) for i, v in enumerate(node)]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                target, _, frag = v.partition("#")
                if key is None and (path + (k,), v) in internal:
                    out[k] = v
                    continue
                if not target:
                    out[k] = v if key is None else f"#/$defs/{key}{frag}"
                    continue
                problem = ref_problem(v, here, root)
                if problem:
                    raise ValueError(problem)
                file = (here / target).resolve()
                sub = key_of(file)
                if sub not in defs:
                    defs[sub] = {}  # placeholder: a cycle of files refers back to it
                    defs[sub] = rewrite(load(file), file.parent, sub, ())
                out[k] = f"#/$defs/{sub}{frag}"
            else:
                out[k] = rewrite(v, here, key, path + (k,))
        return out

    out = rewrite(schema, base, None, ())
    if defs and isinstance(out, dict):
        out = dict(out)
        out["$defs"] = {**(out.get("$defs") or {}), **defs}
    return out
