from __future__ import annotations

import math
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec.errors import LlmspecError, Loc
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
