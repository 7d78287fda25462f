"""Resolve: references, files that must stay inside the project, caps, gates."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmspec.errors import LlmspecError
from llmspec.project import load_project

BASE = """\
version: 1
name: r
models:
  m: {provider: echo}
prompts:
  p: {template: "Q: {{ question }} {{ context }}"}
datasets:
  d: {path: d.jsonl}
"""


def _project(tmp_path: Path, extra: str) -> Path:
    root = tmp_path / "p"
    root.mkdir(exist_ok=True)
    (root / "llmspec.yaml").write_text(BASE + extra)
    (root / "d.jsonl").write_text('{"question": "q", "expected": "a"}\n')
    return root


def _codes(root: Path) -> list[tuple[str, str]]:
    with pytest.raises(LlmspecError) as e:
        load_project(root)
    return [(d.code, d.message) for d in e.value.diagnostics if d.severity == "error"]


def test_a_symlink_in_a_knowledge_folder_that_leaves_the_project_is_refused(tmp_path: Path):
    outside = tmp_path / "secret.md"
    outside.write_text("root:x:0:0")
    root = _project(tmp_path, "knowledge:\n  k: {source: {path: kb}}\n")
    (root / "kb").mkdir()
    (root / "kb" / "ok.md").write_text("fine")
    os.symlink(outside, root / "kb" / "p.md")
    [(code, msg)] = _codes(root)
    assert code == "E030" and "kb/p.md" in msg and "links outside" in msg


def test_include_globs_must_stay_in_the_source_folder(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'knowledge:\n  k: {source: {path: kb, include: ["/etc/*.conf", "../**/*.md"]}}\n',
    )
    (root / "kb").mkdir()
    codes = _codes(root)
    assert [c for c, _ in codes] == ["E030", "E030"]
    assert "is absolute" in codes[0][1] and "`..`" in codes[1][1]


def test_knowledge_files_are_capped(tmp_path: Path, monkeypatch) -> None:
    from llmspec.resolve import knowledge

    monkeypatch.setattr(knowledge, "MAX_FILES", 3)
    root = _project(tmp_path, "knowledge:\n  k: {source: {path: kb}}\n")
    (root / "kb").mkdir()
    for i in range(5):
        (root / "kb" / f"{i}.md").write_text("x")
    [(code, msg)] = _codes(root)
    assert code == "E037" and "more than 3 files" in msg


def test_a_fifo_is_not_a_dataset(tmp_path: Path) -> None:
    root = _project(tmp_path, "")
    (root / "d.jsonl").unlink()
    os.mkfifo(root / "d.jsonl")
    [(code, msg)] = _codes(root)
    assert code == "E038" and "not a regular file" in msg


def test_an_embedding_model_outside_the_project_is_refused(tmp_path: Path) -> None:
    (tmp_path / "emb").mkdir()
    root = _project(tmp_path, "knowledge:\n  k: {source: {path: kb}, embed: ../emb}\n")
    (root / "kb").mkdir()
    [(code, msg)] = _codes(root)
    assert code == "E030" and "embedding model `../emb`" in msg


def _with_model(root: Path, line: str) -> None:
    text = (root / "llmspec.yaml").read_text()
    (root / "llmspec.yaml").write_text(text.replace("  m: {provider: echo}\n", line + "\n"))


@pytest.mark.parametrize("model", ["/abs/path", "../models/tiny", "a/../../b"])
def test_a_hub_model_id_is_not_a_path(tmp_path: Path, model: str) -> None:
    root = _project(tmp_path, "")
    _with_model(root, f"  m: {{provider: transformers, model: '{model}'}}")
    [(code, msg)] = _codes(root)
    assert code == "E030" and "not a path" in msg


def test_a_hub_model_must_be_in_the_local_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    root = _project(tmp_path, "")
    _with_model(root, "  m: {provider: transformers, model: acme/tiny}")
    [(code, msg)] = _codes(root)
    assert code == "E031" and "not in the local Hugging Face cache" in msg


def test_gates_are_parsed_once_with_their_location(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "suites:\n  s: {prompt: p, models: [m], dataset: d, metrics: [exact_match],\n"
        '      gates: ["exact_match.p95 >= 0.5", "m.exact_match - m.exact_match >= 0"]}\n',
    )
    text = (root / "llmspec.yaml").read_text().replace("{{ context }}", "")
    (root / "llmspec.yaml").write_text(text)
    rp = load_project(root)
    [a, b] = rp.gates["s"]
    assert (a.left.metric, a.left.stat, a.threshold) == ("exact_match", "p95", 0.5)
    assert (b.left.variant, b.right.variant) == ("m", "m")


@pytest.mark.parametrize(
    ("gate", "code", "words"),
    [
        ("exact_match >> 1", "E042", "cannot read gate"),
        ("rouge_l >= 0.3", "E020", "did you mean"),
        ("exact_match.p99 >= 0.3", "E020", "unknown statistic `p99`"),
        ("nobody.exact_match >= 0.3", "E020", "does not compute"),
        ("x/y.exact_match >= 0.3", "E020", "variant `x/y`"),
    ],
)
def test_bad_gates_are_located_errors(tmp_path: Path, gate: str, code: str, words: str) -> None:
    root = _project(
        tmp_path,
        "suites:\n  s: {prompt: p, models: [m], dataset: d, metrics: [exact_match, rouge_1],\n"
        f'      gates: ["{gate}"]}}\n',
    )
    text = (root / "llmspec.yaml").read_text().replace("{{ context }}", "")
    (root / "llmspec.yaml").write_text(text)
    with pytest.raises(LlmspecError) as e:
        load_project(root)
    [d] = e.value.diagnostics
    assert d.code == code and (words in d.message or words in (d.hint or "")), d
    assert d.loc.line == 11  # the gates line


def test_schema_file_refs_are_bundled_into_one_value(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        "schemas:\n  s: {file: schemas/s.json}\n",
    )
    (root / "schemas").mkdir()
    (root / "schemas" / "s.json").write_text(
        '{"type": "object", "properties": {"a": {"$ref": "common.json#/$defs/n"}}}'
    )
    (root / "schemas" / "common.json").write_text('{"$defs": {"n": {"type": "integer"}}}')
    rp = load_project(root)
    s = rp.schemas["s"]
    assert s["properties"]["a"]["$ref"] == "#/$defs/file__schemas__common.json/$defs/n"
    assert s["$defs"]["file__schemas__common.json"]["$defs"]["n"] == {"type": "integer"}


def test_a_bad_include_pattern_is_located(tmp_path: Path) -> None:
    root = _project(tmp_path, 'knowledge:\n  k: {source: {path: kb, include: ["a**/*.md"]}}\n')
    (root / "kb").mkdir()
    [(code, msg)] = _codes(root)
    assert code == "E013" and "`a**/*.md`" in msg


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"type": "string", "description": "\\udc00"}', "lone surrogate"),
        (b'{"$ref": "' + b"x" * 5000 + b'.json"}', "File name too long"),
        (b'{"$ref": "a\\u0000.json"}', "control character"),
    ],
)
def test_schema_files_that_cannot_be_text_or_paths_are_located(
    tmp_path: Path, content: bytes, words: str
) -> None:
    root = _project(tmp_path, "schemas:\n  s: {file: s.json}\n")
    (root / "s.json").write_bytes(content)
    [(code, msg)] = _codes(root)
    assert code in ("E033", "E034") and words in msg


def test_dynamic_refs_and_embedded_ids_check_outputs(tmp_path: Path) -> None:
    """`$dynamicRef` and a `$ref` to an embedded `$id` pass validate and check outputs."""
    import json

    from llmspec.jsonschemas import validation_errors

    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.com/tree",
        "$dynamicAnchor": "node",
        "type": "object",
        "properties": {
            "data": {"type": "string"},
            "children": {"type": "array", "items": {"$dynamicRef": "#node"}},
            "item": {"$ref": "item.json"},
        },
        "$defs": {"item": {"$id": "item.json", "type": "integer"}},
    }
    root = _project(tmp_path, "schemas:\n  s: {file: s.json}\n")
    (root / "s.json").write_text(json.dumps(schema))
    bundled = load_project(root).schemas["s"]
    assert validation_errors(bundled, {"data": "x", "children": [{"data": "y"}], "item": 3}) == []
    assert validation_errors(bundled, {"data": "x", "children": [{"data": 5}]})
    assert validation_errors(bundled, {"data": "x", "item": "s"})
