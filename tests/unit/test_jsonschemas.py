from __future__ import annotations

import time

import pytest

from llmspec.constraints import check_output
from llmspec.jsonschemas import validation_errors


def test_pathological_pattern_does_not_hang() -> None:
    # with Python's re, each of these backtracks for hours on a 40-character input
    for pattern in ("^(a+)+$", r"^(\w+\s?)*$", "^(a|aa)+$", "^(.*a){20}$"):
        t0 = time.perf_counter()
        errors = validation_errors({"type": "string", "pattern": pattern}, "a" * 40 + "!")
        assert time.perf_counter() - t0 < 5, pattern
        assert errors, pattern  # no match, or "took too long": never a hang


def test_bundled_refs_resolve_and_remote_refs_are_never_fetched(tmp_path, monkeypatch) -> None:
    import socket
    import urllib.request

    from referencing.exceptions import Unresolvable

    from llmspec.jsonschemas import bundle

    (tmp_path / "name.json").write_text('{"type": "string", "minLength": 2}')
    schema = bundle({"type": "object", "properties": {"n": {"$ref": "name.json"}}}, tmp_path,
                    tmp_path)  # fmt: skip
    assert validation_errors(schema, {"n": "ok"}) == []
    assert validation_errors(schema, {"n": "x"})

    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("no connection may be attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    remote = {"$ref": "https://example.com/schema.json"}
    with pytest.raises(Unresolvable):
        validation_errors(remote, {})
    assert attempts == []


def test_check_output_kinds() -> None:
    assert check_output({"regex": "[0-9]{5}"}, "75001") is None
    assert check_output({"regex": "[0-9]{5}"}, "7500") is not None
    assert check_output({"json_schema": {"type": "object"}}, "{not json") is not None
    assert check_output(None, "anything") is None
