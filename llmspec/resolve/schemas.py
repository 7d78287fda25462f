"""Schemas: loaded (inline or `{file: ...}`), checked against Draft 2020-12, their `$ref`s kept
inside the project and bundled, their patterns compiled."""

from __future__ import annotations

import json
from typing import Any

from llmspec.errors import LlmspecError
from llmspec.hashing import has_lone_surrogate
from llmspec.load import KeyPath


def check_schemas(c: Any) -> None:
    for name, raw in c.p.schemas.items():
        c.schemas[name] = _load(c, name, raw)


def _load(c: Any, name: str, raw: dict[str, Any]) -> Any:
    from llmspec import jsonschemas

    base: KeyPath = ("schemas", name)
    schema_dir = c.root
    in_file = False
    if set(raw) == {"file"}:
        rel = raw["file"]
        if not isinstance(rel, str):
            c.error("E011", "`file` must be a path", base + ("file",))
            return {}
        target = c.check_path(rel, base + ("file",), "schema file")
        if target is None:
            return {}
        try:
            text = target.read_text(encoding="utf-8")
            if target.suffix in (".yaml", ".yml"):
                from llmspec.load import load_text

                raw = load_text(text, rel).data
            else:
                raw = json.loads(text)
        except LlmspecError as e:
            c.diags.extend(e.diagnostics)
            return {}
        except (ValueError, OSError, RecursionError) as e:
            c.error("E033", f"cannot read schema file `{rel}`: {e}", base + ("file",))
            return {}
        if not isinstance(raw, dict):
            c.error("E033", f"schema file `{rel}` must hold a JSON object", base + ("file",))
            return {}
        if has_lone_surrogate(raw):
            c.error(
                "E033",
                f"schema file `{rel}` holds a lone surrogate (a `\\ud800`-`\\udfff` escape "
                "without its pair), which is not Unicode text",
                base + ("file",),
                "write the character itself, or both halves of its surrogate pair",
            )
            return {}
        schema_dir = target.parent
        in_file = True

    def where(p: tuple) -> KeyPath:
        return base + ("file",) if in_file else base + p

    bad = False
    for p, msg in jsonschemas.check_schema(raw):
        bad = True
        c.error(
            "E033",
            f"schema `{name}` is not a valid JSON Schema: {msg}",
            where(p),
            "see https://json-schema.org/draft/2020-12 for the keywords",
        )
    for p, ref in jsonschemas.refs(raw):
        problem = jsonschemas.ref_problem(ref, schema_dir, c.root)
        if problem:
            bad = True
            c.error(
                "E034",
                problem,
                where(p),
                "llmspec never fetches schemas: copy it into the project and use a relative path",
            )
    for p, pat in jsonschemas.patterns(raw):
        check_regex(c, pat, where(p))
    if bad:
        return raw
    try:
        return jsonschemas.bundle(raw, schema_dir, c.root)
    except (OSError, ValueError, LlmspecError, RecursionError) as e:
        c.error("E034", f"cannot bundle the files schema `{name}` refers to: {e}", where(()))
        return raw


def check_regex(c: Any, pattern: str, path: KeyPath) -> None:
    import regex

    try:
        regex.compile(pattern)
    except regex.error as e:
        c.error("E035", f"invalid regular expression: {e}", path)
