"""JSON Schema checks and validators, safe to run on untrusted schemas.

- Only Draft 2020-12; a schema is checked against the metaschema before use.
- `$ref` resolves inside the schema only: files of the project it refers to are bundled into it
  at resolve (`bundle`), and nothing is ever fetched (jsonschema would otherwise fetch remote
  refs) or read from outside the project.
- `pattern` runs on the `regex` engine with a time limit, so a pathological pattern cannot hang
  a run; validators are built once per schema and cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

PATTERN_TIMEOUT_S = 0.1


def refs(schema: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every `$ref` in a schema with its path."""
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k == "$ref" and isinstance(v, str):
                yield path + (k,), v
            else:
                yield from refs(v, path + (k,))
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            yield from refs(v, path + (i,))


def patterns(schema: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(schema, dict):
        for k, v in schema.items():
            if k == "pattern" and isinstance(v, str):
                yield path + (k,), v
            elif k == "patternProperties" and isinstance(v, dict):
                for pk, pv in v.items():
                    yield path + (k, pk), pk
                    yield from patterns(pv, path + (k, pk))
            else:
                yield from patterns(v, path + (k,))
    elif isinstance(schema, list):
        for i, v in enumerate(schema):
            yield from patterns(v, path + (i,))


_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def strict_problem(schema: Any, path: str = "") -> str | None:
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
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema:
        where = path or "/"
        if schema.get("additionalProperties") is not False:
            return f"the object at `{where}` does not set `additionalProperties: false`"
        missing = [p for p in schema.get("properties", {}) if p not in schema.get("required", [])]
        if missing:
            return f"the object at `{where}` does not list `{missing[0]}` in `required`"
    subs: list[tuple[str, Any]] = []
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            subs += [(f"{key}/{name}", sub) for name, sub in schema[key].items()]
    for key in _SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            subs += [(f"{key}/{i}", sub) for i, sub in enumerate(schema[key])]
    for where, sub in subs:
        found = strict_problem(sub, f"{path}/{where}")
        if found:
            return found
    for key in _SUBSCHEMAS:
        found = strict_problem(schema.get(key), f"{path}/{key}")
        if found:
            return found
    return None


def ref_problem(ref: str, base: Path, root: Path) -> str | None:
    """Why a `$ref` may not be followed, or None when it is local."""
    if ref.startswith("#"):
        return None
    if "://" in ref or ref.startswith(("file:", "urn:", "//")):
        return f"`$ref` to `{ref}` would leave the project: only `#...` and relative files"
    target = (base / ref.split("#", 1)[0]).resolve()
    try:
        target.relative_to(root.resolve())
    except ValueError:
        return f"`$ref` to `{ref}` points outside the project folder"
    if not target.is_file():
        return f"`$ref` to `{ref}`: no such file"
    return None


def check_schema(schema: Any) -> list[tuple[tuple, str]]:
    """Metaschema problems of a Draft 2020-12 schema, as (path in schema, message)."""
    from jsonschema import Draft202012Validator

    from llmspec.errors import did_you_mean

    validator = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    out = []
    for err in sorted(validator.iter_errors(schema), key=lambda e: [str(p) for p in e.path]):
        path = tuple(err.path)
        message = err.message
        if path and path[-1] == "type" and isinstance(err.instance, str):
            hint = did_you_mean(err.instance, JSON_TYPES)
            message = f"`{err.instance}` is not a JSON Schema type" + (f" ({hint})" if hint else "")
        out.append((path, message))
    return out


JSON_TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")


def _safe_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    import regex
    from jsonschema.exceptions import ValidationError

    if not isinstance(instance, str):
        return
    try:
        found = regex.search(pattern, instance, timeout=PATTERN_TIMEOUT_S)
    except TimeoutError:
        yield ValidationError(f"pattern {pattern!r} took too long on {instance[:40]!r}")
        return
    if not found:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry

    cls = validators.extend(Draft202012Validator, {"pattern": _safe_pattern})
    # An empty registry that retrieves nothing: resolve bundles every file a schema refers to,
    # and anything else (a URL) is never fetched.
    return cls(json.loads(schema_json), registry=Registry())


def validator_for(schema: Any) -> Any:
    """A cached validator for a (bundled) schema."""
    return _validator(json.dumps(schema, sort_keys=True))


def validation_errors(schema: Any, instance: Any) -> list[str]:
    return [e.message for e in validator_for(schema).iter_errors(instance)]


def bundle(schema: Any, base: Path, root: Path) -> Any:
    """`schema` with every `$ref` to a file of the project inlined under `$defs`, so it is
    self-contained: one value a job key can hash and a server or grammar can take whole.
    Refs must have passed `ref_problem` already.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "c.json").write_text('{"$defs": {"n": {"type": "integer"}}}')
    >>> bundle({"$ref": "c.json#/$defs/n"}, d, d)["$ref"]
    '#/$defs/file__c.json/$defs/n'
    """
    defs: dict[str, Any] = {}

    def key_of(path: Path) -> str:
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        return "file__" + rel.replace("/", "__").replace("~", "_")

    def load(path: Path) -> Any:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yaml", ".yml"):
            from llmspec.load import load_text

            return load_text(text, str(path)).data
        return json.loads(text)

    def rewrite(node: Any, here: Path, key: str | None) -> Any:
        if isinstance(node, list):
            return [rewrite(v, here, key) for v in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                target, _, frag = v.partition("#")
                if not target:
                    out[k] = v if key is None else f"#/$defs/{key}{frag}"
                    continue
                problem = ref_problem(v, here, root)
                if problem:
                    raise ValueError(problem)
                path = (here / target).resolve()
                sub = key_of(path)
                if sub not in defs:
                    defs[sub] = {}  # placeholder: a cycle of files refers back to it
                    defs[sub] = rewrite(load(path), path.parent, sub)
                out[k] = f"#/$defs/{sub}{frag}"
            else:
                out[k] = rewrite(v, here, key)
        return out

    out = rewrite(schema, base, None)
    if defs and isinstance(out, dict):
        out = dict(out)
        out["$defs"] = {**(out.get("$defs") or {}), **defs}
    return out
