from __future__ import annotations

import math
import os
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec.errors import LlmspecError, Loc, render
from llmspec.load import MAX_FILE_BYTES, load_files, load_text, resolve_scalar


def test_locations_of_keys_and_values() -> None:
    f = load_text("models:\n  base:\n    provider: echo\n", "x.yaml")
    assert f.data == {"models": {"base": {"provider": "echo"}}}
    assert f.locs[("models", "base", "provider")] == Loc("x.yaml", 3, 15, 19)
    assert f.key_locs[("models", "base")] == Loc("x.yaml", 2, 3, 7)
    # a missing path falls back to its nearest parent
    assert f.loc(("models", "base", "params", "seed")).line == 3


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-3", -3),
        ("0x1f", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("true", True),
        ("False", False),
        ("null", None),
        ("~", None),
        ("", None),
        # YAML 1.1 surprises stay strings under the 1.2 core schema
        ("NO", "NO"),
        ("yes", "yes"),
        ("on", "on"),
        ("2024-01-01", "2024-01-01"),
        ("012", 12),
        ("1_000", "1_000"),
        ("0b101", "0b101"),
    ],
)
def test_core_schema_scalars(text: str, value: object) -> None:
    assert resolve_scalar(text) == value


def test_special_floats() -> None:
    assert resolve_scalar(".inf") == math.inf
    assert math.isnan(resolve_scalar(".nan"))


def test_quoted_scalars_stay_strings() -> None:
    assert load_text("a: \"1.10\"\nb: 'true'\n").data == {"a": "1.10", "b": "true"}


def test_merge_keys_and_aliases() -> None:
    f = load_text("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert f.data["other"] == {"x": 1, "y": 3}


def test_billion_laughs_refused_fast_with_bounded_memory() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    assert len(text) < 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(LlmspecError) as e:
        load_text(text, "bomb.yaml")
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert e.value.diagnostics[0].code == "E004"
    assert elapsed < 0.5
    assert peak < 50 * 1024 * 1024


@pytest.mark.parametrize("depth", [65, 5000, 100_000])
def test_deep_nesting_is_a_diagnostic(depth: int) -> None:
    for text in ("[" * depth + "]" * depth, "{a: " * depth + "}" * depth):
        with pytest.raises(LlmspecError) as e:
            load_text(text, "deep.yaml")
        assert e.value.diagnostics[0].code == "E005"
        assert e.value.diagnostics[0].loc.line == 1


def test_file_over_size_cap(tmp_path) -> None:
    p = tmp_path / "big.yaml"
    p.write_text("version: 1\nname: big\ndescription: " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(LlmspecError) as e:
        load_files(p)
    assert e.value.diagnostics[0].code == "E007"


def test_multiple_documents_refused() -> None:
    with pytest.raises(LlmspecError) as e:
        load_text("a: 1\n---\nb: 2\n", "two.yaml")
    assert e.value.diagnostics[0].loc.line == 2


def test_errors_of_all_files_reported_together(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text("a: [\n")
    (tmp_path / "b.yaml").write_text("b: !!binary aGk=\n")
    with pytest.raises(LlmspecError) as e:
        load_files(tmp_path)
    assert [d.code for d in e.value.diagnostics] == ["E001", "E003"]


def test_not_utf8(tmp_path) -> None:
    (tmp_path / "a.yaml").write_bytes(b"name: ok\ndescription: \xff\xfe\n")
    with pytest.raises(LlmspecError) as e:
        load_files(tmp_path)
    assert e.value.diagnostics[0].loc.line == 2


@pytest.mark.parametrize(
    "text",
    ["%YAML 1.11\n---\na: 1\n", "%YAML 1.2\n---\na: 1\n", "%TAG ! tag:x,2000:\n---\na: 1\n",
     "# intro\n\n%YAML 1.1\n---\na: 1\n", "a: 1\n...\n%YAML 1.11\n---\nb: 2\n",
     "%FOO bar\n---\na: 1\n"],
)  # fmt: skip
def test_directives_refused_at_their_line(text: str) -> None:
    with pytest.raises(LlmspecError) as e:
        load_text(text, "d.yaml")
    d = e.value.diagnostics[0]
    assert d.code == "E006" and text.split("\n")[d.loc.line - 1].startswith("%")


def test_directive_like_text_inside_values_is_text() -> None:
    assert load_text("a: |\n  %YAML 1.1\n").data == {"a": "%YAML 1.1\n"}


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [("a: 1\nb: x\x00y\n", 2, 5), ("a: \x1b[31mred\n", 1, 4), ("a: b\x07\n", 1, 5),
     ("a: \x9b\n", 1, 4), ("a: \ud800\n", 1, 4), ("a: \ufffe\n", 1, 4)],
)  # fmt: skip
def test_control_characters_are_located(text: str, line: int, col: int) -> None:
    with pytest.raises(LlmspecError) as e:
        load_text(text, "c.yaml")
    d = e.value.diagnostics[0]
    assert (d.code, d.loc.line, d.loc.col) == ("E001", line, col)
    assert "\n" not in d.message


def test_tabs_newlines_and_unicode_are_fine() -> None:
    assert load_text('a: "x\ty"\r\nb: é\u2028\U0001f600\n').data["b"] == "é\u2028\U0001f600"


@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/passwd", "../outside.yaml"])
def test_spec_file_linked_outside_the_project_is_refused_unread(
    tmp_path, monkeypatch, target: str
) -> None:
    monkeypatch.setenv("LLMSPEC_TEST_SECRET", "hunter2")
    (tmp_path / "outside.yaml").write_text("secret: hunter2\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "llmspec.yaml").symlink_to(target)
    for root in (project, project / "llmspec.yaml"):
        with pytest.raises(LlmspecError) as e:
            load_files(root)
        d = e.value.diagnostics[0]
        assert d.code == "E009" and d.loc.line == 0 and target in d.message
        assert "hunter2" not in render(e.value.diagnostics)


def test_links_inside_the_project_are_followed(tmp_path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "real.yml").write_text("a: 1\n")
    (tmp_path / "llmspec.yaml").symlink_to("specs/real.yml")
    assert [f.data for f in load_files(tmp_path)] == [{"a": 1}]


@pytest.mark.timeout(10)
def test_a_fifo_spec_file_is_refused_without_blocking(tmp_path) -> None:
    os.mkfifo(tmp_path / "llmspec.yaml")
    for root in (tmp_path, tmp_path / "llmspec.yaml"):
        with pytest.raises(LlmspecError) as e:
            load_files(root)
        d = e.value.diagnostics[0]
        assert d.code == "E008" and "named pipe" in d.message
        render(e.value.diagnostics)  # never opens it either


def test_a_dangling_link_is_reported(tmp_path) -> None:
    (tmp_path / "llmspec.yaml").symlink_to("gone.yaml")
    with pytest.raises(LlmspecError) as e:
        load_files(tmp_path)
    assert e.value.diagnostics[0].code == "E008"


# -- property-based: the loader only ever raises LlmspecError, with a location ----------------

YAML_BITS = [
    "a",
    ":",
    " ",
    "\n",
    "  ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "&x ",
    "*x",
    "!!str ",
    "!tag ",
    "!!python/object:os.system ",
    '"',
    "'",
    "#",
    "|",
    ">",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
    "<<: ",
    "? ",
    "\t",
    "1.10",
    "NO",
    "~",
    "@",
    "`",
    "\\",
    "\x00",
    "\ufeff",
    "é",
    "\U0001f600",
    "\x01",
    "\x1b",
    "\x7f",
    "\x85",
    "\x9b",
    "\ud800",
    "\u2028",
    "%YAML 1.11\n",
    "%TAG ! x\n",
]


def _assert_only_llmspec_errors(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except LlmspecError as e:
        assert e.diagnostics
        for d in e.diagnostics:
            assert d.loc is not None and d.loc.file == "fuzz.yaml" and d.loc.line >= 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(YAML_BITS), max_size=60).map("".join))
def test_fuzz_yaml_fragments(text: str) -> None:
    _assert_only_llmspec_errors(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_random_text(text: str) -> None:
    _assert_only_llmspec_errors(text)


SPEC = (
    "version: 1\nname: demo\nmodels:\n  base: {provider: echo, params: {seed: 1}}\n"
    "prompts:\n  qa:\n    template: |\n      Q: {{ question }}\n    output: {choice: [a, b]}\n"
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_spec(data: st.DataObject) -> None:
    text = SPEC
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        bit = data.draw(st.sampled_from(YAML_BITS))
        if op == "insert":
            text = text[:i] + bit + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + data.draw(st.integers(1, 5)) :]
        else:
            text = text[:i] + bit + text[i + len(bit) :]
    _assert_only_llmspec_errors(text)
