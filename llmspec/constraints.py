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
from functools import lru_cache
from typing import Any, Literal

ENGINE = "llguidance"
Kind = Literal["json_schema", "regex", "choice"]
KINDS: tuple[Kind, ...] = ("json_schema", "regex", "choice")
OnBudget = Literal["close", "truncate"]
Enforce = Literal["strict", "best_effort"]
# llguidance's JSON compile options a prompt may set (`llmspec.spec.Output`): they override
# both llmspec's compact defaults and the schema's own "x-guidance" object.
JSON_OPTIONS = ("whitespace_flexible", "whitespace_pattern", "item_separator", "key_separator")
SETTINGS = ("on_budget", "enforce", "retries", "options")

# Compact JSON: a model that may emit free whitespace can spend its whole token budget on
# newlines (random-weight test models do exactly that), and compact output is what most callers
# parse and hash anyway. A schema can still opt in through its own "x-guidance" options, which
# llguidance applies after these defaults.
_JSON_DEFAULTS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
# best_effort: unimplemented keywords are left to the check after the fact, oneOf is enforced
# as anyOf (a wider set: the check then finds outputs that match more than one branch).
_BEST_EFFORT = {"lenient": True, "coerce_one_of": True}


@dataclass(frozen=True, slots=True)
class Constraint:
    """What an output must satisfy. `value` is the schema (a dict), the pattern (matched
    against the whole output) or the tuple of allowed strings.

    `on_budget`: what decoding does when `max_tokens` is about to cut the output off:
    `close` steers it onto a shortest completion (where the provider can), `truncate` lets it
    be cut. `enforce` (schemas only): `strict` refuses a schema the engine cannot enforce
    whole; `best_effort` enforces what it can, checks the rest after the fact and resamples a
    violating row up to `retries` times. `options`: llguidance JSON compile options
    (`JSON_OPTIONS`)."""

    kind: Kind
    value: Any
    on_budget: OnBudget = "close"
    enforce: Enforce = "strict"
    retries: int = 3
    options: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, obj: Constraint | Mapping[str, Any] | None) -> Constraint | None:
        """A constraint from its JSON form `{"json_schema": ...}`, `{"regex": ...}` or
        `{"choice": [...]}`, with any of `SETTINGS` beside it (or a Constraint, or None).
        Raises ValueError for other shapes.

        >>> Constraint.of({"json_schema": True}).value
        {}
        """
        if obj is None or isinstance(obj, Constraint):
            return obj
        kinds = [k for k in obj if k in KINDS] if isinstance(obj, Mapping) else []
        if len(kinds) != 1 or any(k not in KINDS and k not in SETTINGS for k in obj):
            raise ValueError(
                "a constraint is one of {json_schema: {...}}, {regex: '...'}, {choice: [...]}"
                f" (with {', '.join(SETTINGS)} beside it); got {obj!r}"
            )
        kind, value = kinds[0], obj[kinds[0]]
        settings = _settings({k: v for k, v in obj.items() if k in SETTINGS}, kind)
        if kind == "json_schema":
            if value is True:
                value = {}  # the schema every JSON value satisfies
            if value is False:
                raise ValueError("json_schema `false` allows no output at all")
            if not isinstance(value, Mapping):
                raise ValueError(f"json_schema must be an object, got {type(value).__name__}")
            return cls("json_schema", _plain(value), **settings)
        if kind == "regex":
            if not isinstance(value, str):
                raise ValueError(f"regex must be a string, got {type(value).__name__}")
            return cls("regex", value, **settings)
        if (
            isinstance(value, str)
            or not isinstance(value, Sequence)
            or not value
            or not all(isinstance(c, str) and c for c in value)
        ):
            raise ValueError("choice must be a non-empty list of non-empty strings")
        return cls("choice", tuple(value), **settings)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (settings only where they differ from the defaults)."""
        out: dict[str, Any] = {self.kind: list(self.value) if self.kind == "choice" else self.value}
        for name in SETTINGS:
            value = getattr(self, name)
            if value != Constraint.__dataclass_fields__[name].default:
                out[name] = dict(value) if name == "options" else value
        return out

    def describe(self) -> str:
        if self.kind == "json_schema":
            return "JSON matching the schema"
        if self.kind == "regex":
            return f"text matching /{self.value}/"
        return "one of " + ", ".join(repr(c) for c in self.value)

    @property
    def best_effort(self) -> bool:
        return self.enforce == "best_effort"

    # -- after the fact ------------------------------------------------------------------------

    def check(self, text: str) -> str | None:
        """Why `text` does not satisfy the constraint, or None when it does. A schema is
        checked whole, under the draft its `$schema` names, whatever `enforce` says.

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
        """The llguidance grammar for this constraint (whether it compiles: `enforceable`).
        For `best_effort`, the grammar of `enforced_schema()`."""
        from llguidance import LLMatcher

        if self.kind == "json_schema":
            return _json_grammar(
                json.dumps(self.value, sort_keys=True),
                json.dumps(dict(self.options or {}), sort_keys=True),
                self.best_effort,
            )[0]
        if self.kind == "regex":
            return LLMatcher.grammar_from_regex(self.value)
        # Lark string literals take JSON escapes; ensure_ascii=False keeps non-ASCII verbatim.
        lark = "start: " + " | ".join(json.dumps(c, ensure_ascii=False) for c in self.value)
        return LLMatcher.grammar_from_lark(lark)

    def enforced_schema(self) -> tuple[Any, tuple[str, ...]]:
        """The schema token masks enforce (2020-12 keywords, annotation-only `format`s
        dropped; for `best_effort`, relaxed until the engine takes it) and what of the full
        schema is left to the check after the fact, in words."""
        _, schema, left = _json_grammar(
            json.dumps(self.value, sort_keys=True),
            json.dumps(dict(self.options or {}), sort_keys=True),
            self.best_effort,
        )
        return schema, left

    def problem_path(self, problem: str) -> tuple[tuple, str]:
        """Where in the (2020-12) schema the engine's refusal `problem` comes from (the
        deepest subschema that fails the same way, () for the root) and the refusal of that
        subschema on its own, which names what is wrong there."""
        from llguidance import LLMatcher

        from llmspec.jsonschemas import to_2020
        from llmspec.relax import locate_failure, subschema_problem

        options = dict(self.options or {})

        def build(s: Any) -> str:
            return LLMatcher.grammar_from_json_schema(
                json.dumps(s), defaults=dict(_JSON_DEFAULTS), overrides=options or None
            )

        schema = drop_annotation_formats(to_2020(self.value))
        path = locate_failure(schema, build, problem)
        return path, (subschema_problem(schema, path, build) if path else None) or problem

    def enforceable(self) -> str | None:
        """None when llguidance can enforce this constraint token by token, else a one-line
        reason such as ``Unimplemented keys: ["not"]``. Needs no tokenizer. A `best_effort`
        schema is always enforceable (in part)."""
        try:
            grammar = self.grammar()
        except ValueError as e:
            return str(e)
        problem = grammar_problem(grammar)
        if problem and self.kind == "json_schema":
            from llmspec.jsonschemas import LATEST, draft_of

            draft = draft_of(self.value) if isinstance(self.value, dict) else LATEST
            if draft != LATEST:
                problem += f" (its {draft} keywords read as their 2020-12 equivalents)"
        return problem


def grammar_problem(grammar: str) -> str | None:
    """Why llguidance refuses a grammar (one line), or None."""
    from llguidance import LLMatcher

    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if not is_error:
        return None  # warnings (e.g. an ignored "format") do not stop enforcement
    return shorten(messages[0] if messages else "llguidance rejected the grammar")


def _settings(raw: dict[str, Any], kind: str) -> dict[str, Any]:
    out = dict(raw)
    if out.get("on_budget", "close") not in ("close", "truncate"):
        raise ValueError(f"on_budget must be close or truncate, got {out['on_budget']!r}")
    if out.get("enforce", "strict") not in ("strict", "best_effort"):
        raise ValueError(f"enforce must be strict or best_effort, got {out['enforce']!r}")
    if out.get("enforce", "strict") != "strict" and kind != "json_schema":
        raise ValueError("enforce: best_effort applies to a JSON schema only")
    retries = out.get("retries", 3)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
        raise ValueError(f"retries must be an integer from 0 to 20, got {retries!r}")
    options = out.get("options")
    if options is not None:
        if not isinstance(options, Mapping) or any(k not in JSON_OPTIONS for k in options):
            raise ValueError(f"options may set {', '.join(JSON_OPTIONS)}; got {options!r}")
        if options and kind != "json_schema":
            raise ValueError("JSON options apply to a JSON schema only")
        out["options"] = dict(options) or None
    return out


@lru_cache(maxsize=256)
def _json_grammar(schema_json: str, options_json: str, best_effort: bool) -> tuple[str, Any, tuple]:
    """(grammar, the schema it enforces, what is left to the check) for a JSON schema."""
    from llguidance import LLMatcher

    from llmspec.jsonschemas import to_2020

    options = json.loads(options_json)
    schema = drop_annotation_formats(to_2020(json.loads(schema_json)))

    def build(s: Any) -> str:
        return LLMatcher.grammar_from_json_schema(
            json.dumps(s),
            defaults=dict(_JSON_DEFAULTS),
            overrides=(_BEST_EFFORT | options if best_effort else options) or None,
        )

    grammar = build(schema)
    if not best_effort:
        return grammar, schema, ()
    from llmspec.relax import relax

    schema, left = relax(schema, build)
    return build(schema), schema, left


def from_output(output: Mapping[str, Any] | None, schema: Any = None) -> Constraint | None:
    """The constraint a prompt's `output` asks for, from its JSON form (as the prompt fact
    holds it) and the (bundled) schema it names.

    >>> from_output({"regex": "[0-9]+", "on_budget": "truncate"}).on_budget
    'truncate'
    """
    if output is None:
        return None
    options: dict[str, Any] = {}
    for name in ("whitespace_flexible", "whitespace_pattern"):
        if output.get(name) is not None:
            options[name] = output[name]
    if output.get("separators") is not None:
        options["item_separator"], options["key_separator"] = output["separators"]
    settings = {
        "on_budget": output.get("on_budget", "close"),
        "enforce": output.get("enforce", "strict"),
        "retries": output.get("retries", 3),
        "options": options or None,
    }
    if output.get("schema") is not None:
        return Constraint.of({"json_schema": schema, **settings})
    if output.get("regex") is not None:
        return Constraint.of({"regex": output["regex"], **settings})
    return Constraint.of({"choice": list(output["choice"]), **settings})


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
