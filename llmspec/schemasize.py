"""The size of the smallest JSON document a schema accepts, for the `max_tokens` warning."""

from __future__ import annotations

import json
from typing import Any


def smallest_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A small (not always the smallest) instance of a schema, or raises ValueError.

    >>> smallest_instance({"type": "object", "required": ["a"],
    ...                    "properties": {"a": {"type": "string", "minLength": 3}}})
    {'a': 'xxx'}
    """
    root = schema if root is None else root
    if depth > 32 or schema is False:
        raise ValueError("no instance")
    if schema is True or not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("external ref")
        target: Any = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return smallest_instance(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return min(schema["enum"], key=lambda v: len(json.dumps(v)))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = []
            for sub in schema[key]:
                try:
                    options.append(smallest_instance(sub, root, depth + 1))
                except ValueError:
                    continue
            if not options:
                raise ValueError("no option")
            return min(options, key=lambda v: len(json.dumps(v)))
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            if isinstance(sub, dict):
                merged.update(sub)
        return smallest_instance(
            merged | {k: v for k, v in schema.items() if k != "allOf"}, root, depth + 1
        )
    t = schema.get("type")
    if isinstance(t, list):
        t = min(
            t,
            key=lambda x: (
                ["null", "boolean", "integer", "number", "string", "array", "object"].index(x)
                if x in ("null", "boolean", "integer", "number", "string", "array", "object")
                else 9
            ),
        )
    if t == "object" or (t is None and ("properties" in schema or "required" in schema)):
        props = schema.get("properties", {})
        return {
            k: smallest_instance(props.get(k, True), root, depth + 1)
            for k in schema.get("required", [])
        }
    if t == "array":
        item = schema.get("items", True)
        return [
            smallest_instance(item, root, depth + 1) for _ in range(int(schema.get("minItems", 0)))
        ]
    if t == "string":
        return "x" * int(schema.get("minLength", 0))
    if t in ("integer", "number"):
        lo = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        return int(lo) if t == "integer" else lo
    if t == "boolean":
        return False
    return None


def smallest_instance_chars(schema: Any) -> int | None:
    """Characters of compact JSON for a small valid instance; None when unknown."""
    try:
        return len(json.dumps(smallest_instance(schema), separators=(", ", ": ")))
    except (ValueError, KeyError, TypeError, IndexError):
        return None
