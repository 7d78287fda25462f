from __future__ import annotations

import time

from llmspec.constraints import check_output
from llmspec.jsonschemas import validation_errors


def test_pathological_pattern_does_not_hang() -> None:
    # with Python's re, each of these backtracks for hours on a 40-character input
    for pattern in ("^(a+)+$", r"^(\w+\s?)*$", "^(a|aa)+$", "^(.*a){20}$"):
        t0 = time.perf_counter()
        errors = validation_errors({"type": "string", "pattern": pattern}, "a" * 40 + "!")
        assert time.perf_counter() - t0 < 5, pattern
        assert errors, pattern  # no match, or "took too long": never a hang


def test_local_refs_resolve_and_remote_refs_are_never_fetched(tmp_path) -> None:
    (tmp_path / "name.json").write_text('{"type": "string", "minLength": 2}')
    schema = {"type": "object", "properties": {"n": {"$ref": "name.json"}}}
    assert validation_errors(schema, {"n": "ok"}, tmp_path) == []
    assert validation_errors(schema, {"n": "x"}, tmp_path)
    remote = {"$ref": "https://example.com/schema.json"}
    try:
        validation_errors(remote, {}, tmp_path)
    except Exception as e:  # refused, not fetched: no network access is attempted
        assert "example.com" in str(e) or "Unresolvable" in type(e).__name__
    else:
        raise AssertionError("a remote $ref must not resolve")


def test_check_output_kinds() -> None:
    assert check_output({"regex": "[0-9]{5}"}, "75001") is None
    assert check_output({"regex": "[0-9]{5}"}, "7500") is not None
    assert check_output({"json_schema": {"type": "object"}}, "{not json") is not None
    assert check_output(None, "anything") is None
