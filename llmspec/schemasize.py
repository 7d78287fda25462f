"""How many characters of JSON a schema's output takes: the smallest valid instance, and a typical
one. They back validate's warnings that `max_tokens` is too small for a prompt's output.

Schemas come from spec files, which are untrusted, so the sizes are computed arithmetically and
never by building an instance (`minItems: 100000000` costs one multiplication), each subschema
is sized once however often it is referenced, the work per schema is capped, and a schema
llmspec cannot size (an external `$ref`, a keyword of the wrong type, a recursion with no way
out) gives None instead of an error. Sizes count JSON written with `", "` and `": "` between
items, the way most models write it.

    >>> smallest_instance_chars({"type": "array", "minItems": 3, "items": {"type": "integer"}})
    9
    >>> smallest_instance_chars({"type": "string", "minLength": 10_000_000_000})
    10000000002
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

MAX_STEPS = 20_000  # subschemas sized per schema; a hand-written schema has a few hundred
MAX_DEPTH = 100  # nesting of subschemas and `$ref` chains followed
TYPICAL_STRING_CHARS = 16  # a string with no `maxLength`: a few words
TYPICAL_NUMBER_CHARS = 4  # `1234`, `0.75`

# The shortest and a typical value of the string formats models are asked for most.
_FORMATS = {
    "date": (10, 10),
    "date-time": (20, 25),
    "time": (8, 8),
    "duration": (3, 8),
    "email": (5, 20),
    "hostname": (1, 15),
    "ipv4": (7, 13),
    "ipv6": (2, 39),
    "uri": (3, 30),
    "uuid": (36, 36),
}
_ANY: dict = {}  # the schema `true`
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_OBJECT_KEYS = ("properties", "required", "minProperties", "additionalProperties")
_ARRAY_KEYS = ("items", "prefixItems", "minItems")
_STRING_KEYS = ("minLength", "maxLength", "pattern", "format")
_NUMBER_KEYS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


class _Unknown(Exception):
    """The schema cannot be sized within the limits: the answer is None."""


class _Unresolved(_Unknown):
    """A `$ref` llmspec does not follow; a union sizes its other branches."""


def smallest_instance_chars(schema: Any) -> int | None:
    """Characters of the smallest valid instance (not always the very smallest: `pattern`,
    `multipleOf` and `not` are not read); None when unknown.

    >>> smallest_instance_chars({"type": "object", "required": ["a"],
    ...                          "properties": {"a": {"type": "string", "minLength": 3},
    ...                                         "b": {"type": "string"}}})
    12
    >>> print(smallest_instance_chars({"$ref": "https://example.com/s.json"}))
    None
    """
    return _Sizer(schema, typical=False).total()


def typical_instance_chars(schema: Any) -> int | None:
    """Characters of a typical valid instance; None when unknown.

    Typical means: strings of `TYPICAL_STRING_CHARS` characters (within `minLength` and
    `maxLength`), numbers of `TYPICAL_NUMBER_CHARS`, arrays of max(minItems, 1) items (at most
    maxItems), objects with their optional properties too, enums and unions as large as their
    largest member (a nullable object is typically the object).

    >>> typical_instance_chars({"type": "object", "required": ["a"],
    ...                         "properties": {"a": {"type": "string", "minLength": 3},
    ...                                        "b": {"type": "string", "maxLength": 5}}})
    39
    >>> typical_instance_chars({"type": "array", "items": {"type": "integer", "maximum": 9}})
    3
    """
    return _Sizer(schema, typical=True).total()


@dataclass
class _Sizer:
    """One sizing of one schema. Mutable on purpose: it counts its steps and remembers the
    size of each subschema (by identity) so that shared and recursive parts are sized once."""

    root: Any
    typical: bool
    steps: int = 0
    memo: dict[int, int | None] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)
    merged: dict[tuple[int, Any], dict] = field(default_factory=dict)  # see `merge`

    def total(self) -> int | None:
        try:
            return self.size(self.root, 0)
        except (_Unknown, RecursionError):
            return None

    def size(self, schema: Any, depth: int) -> int | None:
        """The size of an instance of `schema`, None when it has none; raises `_Unknown`."""
        self.steps += 1
        if self.steps > MAX_STEPS or depth > MAX_DEPTH:
            raise _Unknown
        if schema is True:
            schema = _ANY
        if not isinstance(schema, dict):
            return None  # `false`, or not a schema at all
        key = id(schema)
        if key in self.memo:
            return self.memo[key]
        if key in self.active:
            return None  # a recursion: the smallest way out does not go through here again
        self.active.add(key)
        try:
            result = self._size(schema, depth)
        finally:
            self.active.discard(key)
        self.memo[key] = result
        return result

    def _size(self, schema: dict, depth: int) -> int | None:
        if "$ref" in schema:
            return self.size(self.resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return _json_chars(schema["const"])
        if isinstance(schema.get("enum"), list):
            sizes = [_json_chars(v) for v in schema["enum"]]
            if not sizes:
                return None
            return max(sizes) if self.typical else min(sizes)
        if isinstance(schema.get("allOf"), list):
            if (id(schema), "allOf") not in self.merged:
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                for sub in schema["allOf"]:
                    sub = self.follow(sub)
                    if sub is False:
                        return None
                    if isinstance(sub, dict):
                        rest = _merge(rest, sub)
                self.merged[id(schema), "allOf"] = rest
            return self.size(self.merged[id(schema), "allOf"], depth + 1)
        for union in ("anyOf", "oneOf"):
            if isinstance(schema.get(union), list):
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                options = []
                for i, sub in enumerate(schema[union]):
                    try:
                        sub = self.follow(sub)
                        if isinstance(sub, dict) and rest:
                            sub = self.merge((id(schema), i), rest, sub)
                        options.append(self.size(sub, depth + 1))
                    except _Unresolved:
                        continue
                known = [s for s in options if s is not None]
                if not known:
                    return None
                return max(known) if self.typical else min(known)
        sizes = [s for s in (self.typed(t, schema, depth) for t in _types(schema)) if s is not None]
        if not sizes:
            return None
        return max(sizes) if self.typical else min(sizes)

    def resolve(self, ref: Any) -> Any:
        """The target of a `$ref` inside the same document (`#`, `#/$defs/x`)."""
        if not isinstance(ref, str) or not (ref == "#" or ref.startswith("#/")):
            raise _Unresolved  # another document, or an `#anchor`
        target = self.root
        for part in ref[2:].split("/") if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                raise _Unresolved
        return target

    def follow(self, sub: Any) -> Any:
        """A subschema with its `$ref`s followed, so that it can be merged."""
        for _ in range(MAX_DEPTH):
            if not (isinstance(sub, dict) and "$ref" in sub):
                return sub
            self.steps += 1
            extra = {k: v for k, v in sub.items() if k != "$ref"}
            target = self.resolve(sub["$ref"])
            sub = (
                self.merge((id(sub), "$ref"), target, extra)
                if isinstance(target, dict) and extra
                else target
            )
        raise _Unknown

    def merge(self, key: tuple[int, Any], a: dict, b: dict) -> dict:
        """`_merge(a, b)`, made once per place in the schema: the same merged dict each time,
        so that its size is remembered and a recursion through it is seen."""
        if key not in self.merged:
            self.merged[key] = _merge(a, b)
        return self.merged[key]

    def typed(self, t: str, schema: dict, depth: int) -> int | None:
        if t == "null":
            return 4
        if t == "boolean":
            return 5 if self.typical else 4
        if t in ("integer", "number"):
            return _number_chars(schema, t == "integer", self.typical)
        if t == "string":
            return self.string(schema)
        if t == "array":
            return self.array(schema, depth)
        return self.object(schema, depth)

    def string(self, schema: dict) -> int | None:
        lo = _count(schema.get("minLength"), 0)
        hi = _count(schema.get("maxLength"), None)
        fmt = _FORMATS.get(schema.get("format")) if isinstance(schema.get("format"), str) else None
        if fmt is not None:
            lo = max(lo, fmt[0])
        if hi is not None and hi < lo:
            return None
        n = lo
        if self.typical:
            n = max(lo, fmt[1] if fmt else TYPICAL_STRING_CHARS)
            n = min(n, hi) if hi is not None else n
        return n + 2

    def array(self, schema: dict, depth: int) -> int | None:
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # the draft-4 spelling of prefixItems
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        n = _count(schema.get("minItems"), 0)
        hi = _count(schema.get("maxItems"), None)
        if hi is not None and hi < n:
            return None
        if self.typical:
            n = max(n, 1) if hi is None else min(max(n, 1), hi)
        if n == 0:
            return 2
        total = 2 + 2 * (n - 1)
        for sub in prefix[:n]:
            s = self.size(sub, depth + 1)
            if s is None:
                return None
            total += s
        rest = n - min(n, len(prefix))
        if rest:
            s = self.size(items, depth + 1)
            if s is None:
                return None
            total += rest * s
        return total

    def object(self, schema: dict, depth: int) -> int | None:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        names = list(dict.fromkeys(r for r in required if isinstance(r, str)))
        other = schema.get("additionalProperties", True)
        other = other if isinstance(other, (dict, bool)) else True
        entries: list[int] = []
        for name in names:
            s = self.size(props.get(name, other), depth + 1)
            if s is None:
                return None
            entries.append(_json_chars(name) + 2 + s)
        if self.typical:
            for name, sub in props.items():
                if name in names:
                    continue
                s = self.size(sub, depth + 1)
                if s is not None:  # an optional property that cannot be sized is left out
                    entries.append(_json_chars(name) + 2 + s)
        extra = _count(schema.get("minProperties"), 0) - len(entries)
        if extra > 0:
            s = self.size(other if other is not False else True, depth + 1)
            if s is None:
                return None
            entries.append(extra * (3 + 2 + s) + 2 * (extra - 1))  # `"a": 0` and so on
        if not entries:
            return 2
        return 2 + sum(entries) + 2 * (len(entries) - 1)


def _types(schema: dict) -> list[str]:
    """The JSON types a schema allows, from `type` or else from the keywords it uses."""
    t = schema.get("type")
    if isinstance(t, str):
        return [t] if t in _TYPES else []
    if isinstance(t, list):
        return [x for x in _TYPES if x in t]
    for keys, kind in (
        (_OBJECT_KEYS, "object"),
        (_ARRAY_KEYS, "array"),
        (_STRING_KEYS, "string"),
        (_NUMBER_KEYS, "number"),
    ):
        if any(k in schema for k in keys):
            return [kind]
    return list(_TYPES)


def _merge(a: dict, b: dict) -> dict:
    """Two schemas that both apply, as one (close enough for sizing): required names and
    properties are joined, types intersected, other keywords taken from `b`."""
    out = dict(a)
    for k, v in b.items():
        if k == "required" and isinstance(v, list) and isinstance(out.get(k), list):
            out[k] = list(dict.fromkeys([*out[k], *v]))
        elif k == "properties" and isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        elif k == "type" and k in out:
            left, right = _type_set(out[k]), _type_set(v)
            if "number" in left and "integer" in right or "number" in right and "integer" in left:
                left |= {"integer"}
                right |= {"integer"}
            out[k] = [t for t in _TYPES if t in left & right]
        else:
            out[k] = v
    return out


def _type_set(t: Any) -> set[str]:
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    return set(_TYPES)


def _count(v: Any, default: int | None) -> int | None:
    """A `minLength`-like keyword as a count; the default when it is of the wrong type."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        return default
    return math.ceil(v)


def _json_chars(v: Any) -> int:
    try:
        return len(json.dumps(v, separators=(", ", ": ")))
    except (TypeError, ValueError, RecursionError, OverflowError):
        raise _Unknown from None


def _int_chars(n: int) -> int:
    if n.bit_length() < 10_000:
        return len(str(n))
    return int(n.bit_length() * math.log10(2)) + 1 + (n < 0)  # str() refuses such digits


def _bound(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        raise _Unknown
    return v


def _number_chars(schema: dict, integer: bool, typical: bool) -> int | None:
    """Digits of the number nearest to 0 within the bounds (a typical one is a few digits)."""
    lo, hi = _bound(schema.get("minimum")), _bound(schema.get("maximum"))
    xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    # draft 4 spelled an exclusive bound as `minimum` with `exclusiveMinimum: true`
    xlo, lo = (lo, None) if xlo is True else (_bound(xlo), lo)
    xhi, hi = (hi, None) if xhi is True else (_bound(xhi), hi)
    lows = [math.ceil(lo)] if lo is not None else []
    lows += [math.floor(xlo) + 1] if xlo is not None else []
    highs = [math.floor(hi)] if hi is not None else []
    highs += [math.ceil(xhi) - 1] if xhi is not None else []
    ilo, ihi = max(lows, default=None), min(highs, default=None)
    if ilo is not None and ihi is not None and ilo > ihi:
        return None if integer else 3  # no integer fits: something like `0.5`
    if (ilo is None or ilo <= 0) and (ihi is None or ihi >= 0):
        nearest = 0
    else:
        nearest = ilo if ilo is not None and ilo > 0 else ihi
    smallest = _int_chars(nearest)  # type: ignore[arg-type]
    if not typical:
        return smallest
    widest = max((_int_chars(v) for v in (ilo, ihi) if v is not None), default=None)
    return max(smallest, min(TYPICAL_NUMBER_CHARS, widest or TYPICAL_NUMBER_CHARS))
