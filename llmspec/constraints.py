"""Checking an output against its constraint, after the fact, whatever enforced it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def check_output(
    constraint: dict[str, Any] | None, text: str, root: Path | str = "."
) -> str | None:
    """Why `text` does not satisfy `constraint`, or None when it does.

    >>> check_output({"choice": ["yes", "no"]}, "yes") is None
    True
    >>> check_output({"json_schema": {"type": "object", "required": ["a"]}}, '{"b": 1}')
    "'a' is a required property"
    """
    if constraint is None:
        return None
    if "json_schema" in constraint:
        try:
            value = json.loads(text)
        except ValueError as e:
            return f"not JSON: {e.msg} at char {e.pos}"
        from llmspec.jsonschemas import validation_errors

        errors = validation_errors(constraint["json_schema"], value, root)
        return errors[0] if errors else None
    if "regex" in constraint:
        import regex

        try:
            ok = regex.fullmatch(constraint["regex"], text, timeout=0.1)
        except TimeoutError:
            return "regex check timed out"
        return None if ok else f"does not match /{constraint['regex']}/"
    if "choice" in constraint:
        return None if text in constraint["choice"] else f"{text[:40]!r} is not one of the choices"
    return None
