"""The one output constraint value: a JSON Schema, a regex or a list of choices.

Everything about a constraint lives here, outside the providers: its grammar for token-level
enforcement (llguidance), whether that grammar can be enforced, the check after the fact, and a
description for people. `resolve` asks whether a constraint is enforceable without importing a
provider; providers take `Constraint` values; jobs carry them as JSON (`to_json`).

    >>> c = Constraint("choice", ("yes", "no"))
    >>> c.check("yes") is None, c.check("maybe")
    (True, "'maybe' is not one of the choices")
    >>> Constraint.of({"regex": "[0-9]+"}).describe()
    'text matching /[0-9]+/'

Grammar building imports llguidance's core lazily and never torch, transformers or guidance.
JSON is generated compactly (`", "` and `": "` separators, no other whitespace) unless the
schema's `x-guidance` options say otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

ENGINE = "llguidance"
Kind = Literal["json_schema", "regex", "choice"]
KINDS: tuple[Kind, ...] = ("json_schema", "regex", "choice")

# Compact JSON: a model that may emit free whitespace can spend its whole token budget on
# newlines (random-weight test models do exactly that), and compact output is what most callers
# parse and hash anyway. A schema can still opt in through its own "x-guidance" options, which
# llguidance applies after these defaults.
_JSON_DEFAULTS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True, slots=True)
class Constraint:
    """What an output must satisfy. `value` is the schema (a dict), the pattern (matched
    against the whole output) or the tuple of allowed strings."""

    kind: Kind
    value: Any

    @classmethod
    def of(cls, obj: Constraint | Mapping[str, Any] | None) -> Constraint | None:
        """A constraint from its JSON form `{"json_schema": ...}`, `{"regex": ...}` or
        `{"choice": [...]}` (or a Constraint, or None). Raises ValueError for other shapes."""
        if obj is None or isinstance(obj, Constraint):
            return obj
        if not isinstance(obj, Mapping) or len(obj) != 1:
            raise ValueError(
                "a constraint is one of {json_schema: {...}}, {regex: '...'}, {choice: [...]}; "
                f"got {obj!r}"
            )
        ((kind, value),) = obj.items()
        if kind == "json_schema":
            if not isinstance(value, Mapping | bool):
                raise ValueError(f"json_schema must be an object, got {type(value).__name__}")
            return cls("json_schema", _plain(value))
        if kind == "regex":
            if not isinstance(value, str):
                raise ValueError(f"regex must be a string, got {type(value).__name__}")
            return cls("regex", value)
        if kind == "choice":
            if (
                isinstance(value, str)
                or not isinstance(value, Sequence)
                or not value
                or not all(isinstance(c, str) and c for c in value)
            ):
                raise ValueError("choice must be a non-empty list of non-empty strings")
            return cls("choice", tuple(value))
        raise ValueError(f"unknown constraint kind {kind!r}; known: {', '.join(KINDS)}")

    def to_json(self) -> dict[str, Any]:
        """The JSON form jobs carry in their inputs."""
        return {self.kind: list(self.value) if self.kind == "choice" else self.value}

    def describe(self) -> str:
        if self.kind == "json_schema":
            return "JSON matching the schema"
        if self.kind == "regex":
            return f"text matching /{self.value}/"
        return "one of " + ", ".join(repr(c) for c in self.value)

    # -- after the fact ------------------------------------------------------------------------

    def check(self, text: str) -> str | None:
        """Why `text` does not satisfy the constraint, or None when it does.

        >>> Constraint("json_schema", {"type": "object", "required": ["a"]}).check('{"b": 1}')
        "'a' is a required property"
        """
        if self.kind == "json_schema":
            try:
                value = json.loads(text)
            except ValueError as e:
                return f"not JSON: {e.msg} at char {e.pos}"
            from llmspec.jsonschemas import validation_errors

            errors = validation_errors(self.value, value)
            return errors[0] if errors else None
        if self.kind == "regex":
            import regex

            try:
                ok = regex.fullmatch(self.value, text, timeout=0.1)
            except TimeoutError:
                return "regex check timed out"
            return None if ok else f"does not match /{self.value}/"
        return None if text in self.value else f"{text[:40]!r} is not one of the choices"

    # -- token-level enforcement -----------------------------------------------------------------

    def grammar(self) -> str:
        """The llguidance grammar for this constraint (whether it compiles: `enforceable`)."""
        from llguidance import LLMatcher

        if self.kind == "json_schema":
            return LLMatcher.grammar_from_json_schema(
                json.dumps(drop_annotation_formats(self.value)), defaults=dict(_JSON_DEFAULTS)
            )
        if self.kind == "regex":
            return LLMatcher.grammar_from_regex(self.value)
        # Lark string literals take JSON escapes; ensure_ascii=False keeps non-ASCII verbatim.
        lark = "start: " + " | ".join(json.dumps(c, ensure_ascii=False) for c in self.value)
        return LLMatcher.grammar_from_lark(lark)

    def enforceable(self) -> str | None:
        """None when llguidance can enforce this constraint token by token, else a one-line
        reason such as ``Unimplemented keys: ["not"]``. Needs no tokenizer."""
        from llguidance import LLMatcher

        try:
            grammar = self.grammar()
        except ValueError as e:
            return str(e)
        is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
        if not is_error:
            return None  # warnings (e.g. an ignored "format") do not stop enforcement
        return shorten(messages[0] if messages else "llguidance rejected the grammar")


def check_output(constraint: Any, text: str) -> str | None:
    """Why `text` does not satisfy `constraint` (a Constraint or its JSON form), or None.

    >>> check_output({"choice": ["yes", "no"]}, "yes") is None
    True
    """
    c = Constraint.of(constraint)
    return None if c is None else c.check(text)


def grammar_for(constraint: Any) -> str | None:
    """The llguidance grammar of a constraint (or its JSON form); None for no constraint."""
    c = Constraint.of(constraint)
    return None if c is None else c.grammar()


def check_enforceable(constraint: Any) -> str | None:
    """None when llguidance can enforce `constraint`, else a one-line reason."""
    try:
        c = Constraint.of(constraint)
    except ValueError as e:
        return str(e)
    return None if c is None else c.enforceable()


def engine_version() -> str:
    """``llguidance <version>`` from package metadata (imports nothing); part of job keys."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{ENGINE} {version('llguidance')}"
    except PackageNotFoundError:
        return f"{ENGINE} (not installed)"


# `format` values llguidance enforces. In JSON Schema 2020-12 `format` is an annotation, and
# llmspec's after-the-fact check does not assert it either, so any other value is dropped
# rather than making the whole schema unenforceable.
ENFORCED_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_DATA_KEYWORDS = ("enum", "const", "default", "examples")


def drop_annotation_formats(schema: Any) -> Any:
    """A copy of `schema` without the `format`s llguidance cannot enforce.

    >>> drop_annotation_formats({"type": "string", "format": "uri"})
    {'type': 'string'}
    >>> drop_annotation_formats({"properties": {"format": {"format": "date"}}})
    {'properties': {'format': {'format': 'date'}}}
    """
    if isinstance(schema, list):
        return [drop_annotation_formats(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "format" and isinstance(value, str) and value not in ENFORCED_FORMATS:
            continue
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: drop_annotation_formats(sub) for name, sub in value.items()}
        else:
            out[key] = drop_annotation_formats(value)
    return out


def _plain(value: Any) -> Any:
    """Frozen spec values (mappings, tuples) as the dicts and lists json.dumps takes."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def shorten(message: str) -> str:
    """Make a llguidance error one line: regex errors carry a caret diagram before the reason."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    reason = next((ln[len("error:") :].strip() for ln in lines if ln.startswith("error:")), None)
    first = lines[0] if lines else message.strip()
    if reason is None:
        return first
    # Keep the part before the diagram when it says where (e.g. 'invalid regex "a(?=b)"'),
    # else name the pattern, the diagram's first line.
    head = first.split(": regex parse error", 1)[0].removesuffix("regex parse error:").strip()
    if head:
        return f"{head}: {reason}"
    return f"{reason} (pattern {lines[1]!r})" if len(lines) > 2 else reason
