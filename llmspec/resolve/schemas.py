"""Schemas: loaded (inline or `{file: ...}`), checked against the metaschema of the draft they
declare, their `$ref`s kept inside the schema or the project and bundled, their patterns
compiled. A problem inside a schema file is reported at its line in that file."""

from __future__ import annotations

import json
from typing import Any

from llmspec.errors import Diagnostic, LlmspecError, Loc
from llmspec.hashing import has_lone_surrogate
from llmspec.load import KeyPath


def check_schemas(c: Any) -> None:
    for name, raw in c.p.schemas.items():
        c.schemas[name] = _load(c, name, raw)


def schema_loc(c: Any, name: str, path: tuple, key: bool = False) -> Loc:
    """Where `path` of schema `name` is written: in its schema file, or in the spec."""
    f = c.schema_files.get(name)
    if f is not None:
        return f.loc(tuple(path), key=key)
    return c.loc(("schemas", name) + tuple(path), key=key)


def _load(c: Any, name: str, raw: dict[str, Any]) -> Any:
    from llmspec import jsonschemas

    base: KeyPath = ("schemas", name)
    schema_dir = c.root
    if set(raw) == {"file"}:
        rel = raw["file"]
        if not isinstance(rel, str):
            c.error("E011", "`file` must be a path", base + ("file",))
            return {}
        target = c.check_path(rel, base + ("file",), "schema file")
        if target is None:
            return {}
        source = _read(c, target, rel, base)
        if source is None:
            return {}
        if not isinstance(source.data, dict):
            c.error("E033", f"schema file `{rel}` must hold a JSON object", base + ("file",))
            return {}
        if has_lone_surrogate(source.data):
            c.error(
                "E033",
                f"schema file `{rel}` holds a lone surrogate (a `\\ud800`-`\\udfff` escape "
                "without its pair), which is not Unicode text",
                base + ("file",),
                "write the character itself, or both halves of its surrogate pair",
            )
            return {}
        c.schema_files[name] = source
        raw = source.data
        schema_dir = target.parent

    def error(code: str, message: str, path: tuple, hint: str | None = None) -> None:
        c.diags.append(Diagnostic(code, message, schema_loc(c, name, path), hint))

    bad = False
    for p, msg in jsonschemas.check_schema(raw):
        bad = True
        error(
            "E033",
            f"schema `{name}` is not a valid JSON Schema: {msg}",
            p,
            "see https://json-schema.org/specification for the keywords of each draft",
        )
    for p, ref, base_uri in jsonschemas.refs_with_base(raw):
        problem = jsonschemas.ref_problem(ref, schema_dir, c.root, raw, base_uri)
        if problem:
            bad = True
            error(
                "E034",
                problem,
                p,
                "llmspec never fetches schemas: copy it into the project and use a relative path",
            )
    for p, pat in jsonschemas.patterns(raw):
        check_pattern(c, pat, schema_loc(c, name, p, key=p[-2:-1] == ("patternProperties",)))
    _check_unevaluated(c, name, raw)
    if bad:
        c.invalid_schemas.add(name)
        return raw
    try:
        return jsonschemas.bundle(raw, schema_dir, c.root)
    except (OSError, ValueError, LlmspecError, RecursionError) as e:
        error("E034", f"cannot bundle the files schema `{name}` refers to: {e}", ())
        c.invalid_schemas.add(name)
        return raw


def _read(c: Any, target: Any, rel: str, base: KeyPath) -> Any:
    """The schema file as a `SourceFile` (data and positions), or None after a diagnostic."""
    from llmspec.jsonpos import json_source
    from llmspec.load import load_text, shown_path

    shown = shown_path(target)
    try:
        text = target.read_text(encoding="utf-8")
        if target.suffix in (".yaml", ".yml"):
            return load_text(text, shown)
        return json_source(text, shown)
    except LlmspecError as e:
        c.diags.extend(e.diagnostics)
    except json.JSONDecodeError as e:
        c.diags.append(
            Diagnostic(
                "E033",
                f"cannot read schema file `{rel}`: {e.msg}",
                Loc(shown, e.lineno, e.colno),
            )
        )
    except (ValueError, OSError, RecursionError) as e:
        c.error("E033", f"cannot read schema file `{rel}`: {e}", base + ("file",))
    return None


def _check_unevaluated(c: Any, name: str, schema: Any) -> None:
    """jsonschema checks `unevaluatedProperties` with Python's `re`: a `patternProperties`
    key that `re` cannot compile would fail the check at run time, so it is refused now."""
    import re

    from llmspec import jsonschemas

    subs = [s for _, s in jsonschemas.subschemas(schema) if isinstance(s, dict)]
    if not any("unevaluatedProperties" in s for s in subs):
        return
    for p, pat in jsonschemas.patterns(schema):
        if p[-2:-1] != ("patternProperties",):
            continue
        try:
            re.compile(pat)
        except re.error as e:
            c.diags.append(
                Diagnostic(
                    "E035",
                    f"`patternProperties` key {pat!r} uses syntax Python's `re` lacks ({e}), "
                    "which checking `unevaluatedProperties` needs",
                    schema_loc(c, name, p, key=True),
                    "write the pattern without it (e.g. a character class for `\\p{...}`)",
                )
            )


def check_pattern(c: Any, pattern: str, loc: Loc) -> None:
    """A JSON Schema `pattern` (ECMA-262) must compile as llmspec runs it."""
    import regex

    from llmspec.jsonschemas import compile_pattern

    try:
        regex.compile(pattern)  # its own error names positions in the pattern as written
        compile_pattern(pattern)
    except Exception as e:  # noqa: BLE001 - regex.error and the translation's own errors
        c.diags.append(Diagnostic("E035", f"invalid regular expression {pattern!r}: {e}", loc))


def check_regex(c: Any, pattern: str, path: KeyPath) -> None:
    import regex

    try:
        regex.compile(pattern)
    except regex.error as e:
        c.error("E035", f"invalid regular expression: {e}", path)
