"""Schemas from the wild: `enforce: best_effort` for keywords the engine refuses, drafts by
`$schema`, ECMA-262 patterns, `$ref`s to embedded `$id`s, `urn:` ids and metaschemas, boolean
schemas through the API, and where validate points inside schema files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.constraints import Constraint, check_output, from_output
from llmspec.jsonschemas import (
    bundle,
    check_schema,
    draft_of,
    ref_problem,
    refs_with_base,
    to_2020,
    validation_errors,
)

# The keywords JSONSchemaBench schemas most often use that llguidance refuses, one schema each,
# with an instance that satisfies it and one that breaks only that keyword.
REFUSED = {
    "oneOf": (
        {"oneOf": [{"type": "integer", "multipleOf": 2}, {"type": "integer", "multipleOf": 3}]},
        4,
        6,
    ),
    "dependencies": (
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "dependencies": {"card": ["billing"]},
        },
        {"card": 1, "billing": 2},
        {"card": 1},
    ),
    "uniqueItems": ({"type": "array", "uniqueItems": True}, [1, 2], [1, 1]),
    "not": ({"type": "integer", "not": {"const": 3}}, 4, 3),
    "if/then": (
        {
            "type": "object",
            "if": {"properties": {"country": {"const": "US"}}, "required": ["country"]},
            "then": {"required": ["zip"]},
        },
        {"country": "US", "zip": "12345"},
        {"country": "US"},
    ),
    "propertyNames": (
        {"type": "object", "propertyNames": {"maxLength": 3}},
        {"abc": 1},
        {"abcd": 1},
    ),
    "look-around pattern": (
        {"type": "string", "pattern": "^(?=.*[0-9])[a-z0-9]{4}$"},
        "ab12",
        "abcd",
    ),
    "unevaluatedProperties": (
        {"allOf": [{"properties": {"a": {"type": "integer"}}}], "unevaluatedProperties": False},
        {"a": 1},
        {"a": 1, "b": 2},
    ),
    "min/maxProperties": (
        {
            "type": "object",
            "properties": {k: {"type": "integer"} for k in "abcd"},
            "minProperties": 2,
            "maxProperties": 3,
            "additionalProperties": False,
        },
        {"a": 1, "b": 2},
        {"a": 1},
    ),  # fmt: skip
    "contains": ({"type": "array", "contains": {"const": 1}}, [2, 1], [2, 3]),
    "metaschema": (
        {"$ref": "https://json-schema.org/draft/2020-12/schema"},
        {"type": "string"},
        {"type": "x"},
    ),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_best_effort_accepts_what_strict_refuses_and_still_checks_it_all(name: str) -> None:
    schema, good, bad = REFUSED[name]
    strict = Constraint("json_schema", schema)
    relaxed = Constraint("json_schema", schema, enforce="best_effort")
    assert relaxed.enforceable() is None
    assert strict.enforceable() is not None, name
    enforced, left = relaxed.enforced_schema()
    assert left, "what is not enforced is named"
    # the check after the fact is of the full schema
    assert relaxed.check(json.dumps(good)) is None
    assert relaxed.check(json.dumps(bad)) is not None, name
    # widening only: the enforced schema still admits the good instance
    assert validation_errors(enforced, good) == []


def test_best_effort_widens_a_part_the_engine_calls_unsatisfiable() -> None:
    never = {"allOf": [{"type": "string"}, {"type": "integer"}]}
    schema = {"type": "object", "required": ["x"], "properties": {"x": never}}
    assert "Unsatisfiable" in Constraint("json_schema", schema).enforceable()
    c = Constraint("json_schema", schema, enforce="best_effort")
    enforced, left = c.enforced_schema()
    assert c.enforceable() is None and enforced["properties"]["x"] == {}
    assert left == ("the subschema at /properties/x (Unsatisfiable schema: incompatible types; "
                    "checked after the fact)",)  # fmt: skip
    assert c.check('{"x": 1}') is not None  # and every output is still checked in full


def test_best_effort_names_what_it_leaves_to_the_check() -> None:
    c = Constraint(
        "json_schema",
        {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True},
                                          "code": {"type": "string", "pattern": "(a)\\1"}}},
        enforce="best_effort",
    )  # fmt: skip
    _, left = c.enforced_schema()
    assert any(n.startswith("uniqueItems") for n in left)
    assert any(n.startswith("pattern at /properties/code") for n in left)


def test_constraint_settings_round_trip_and_refuse_nonsense() -> None:
    c = Constraint.of(
        {"json_schema": {"type": "object"}, "on_budget": "truncate", "enforce": "best_effort",
         "retries": 5, "options": {"whitespace_flexible": True}}
    )  # fmt: skip
    assert (c.on_budget, c.enforce, c.retries, c.options) == (
        "truncate", "best_effort", 5, {"whitespace_flexible": True}
    )  # fmt: skip
    assert Constraint.of(c.to_json()) == c
    assert Constraint.of({"regex": "a+"}).to_json() == {"regex": "a+"}
    for bad in (
        {"regex": "a", "enforce": "best_effort"},
        {"choice": ["a"], "options": {"whitespace_flexible": True}},
        {"json_schema": {}, "on_budget": "never"},
        {"json_schema": {}, "retries": 99},
        {"json_schema": {}, "options": {"lenient": True}},
        {"json_schema": {}, "colour": "red"},
    ):
        with pytest.raises(ValueError):
            Constraint.of(bad)


def test_prompt_output_settings_reach_the_constraint() -> None:
    out = {"schema": "s", "on_budget": "truncate", "separators": [",", ":"],
           "whitespace_flexible": False, "enforce": "strict", "retries": 3}  # fmt: skip
    c = from_output(out, {"type": "object", "properties": {"a": {"type": "integer"}}})
    assert c.on_budget == "truncate"
    assert c.options == {"whitespace_flexible": False, "item_separator": ",",
                         "key_separator": ":"}  # fmt: skip
    assert '","' in c.grammar() or "," in c.grammar()


def test_boolean_schemas_through_the_api() -> None:
    c = Constraint.of({"json_schema": True})
    assert c.value == {} and c.enforceable() is None
    assert check_output({"json_schema": True}, "[1, 2]") is None
    with pytest.raises(ValueError, match="allows no output"):
        Constraint.of({"json_schema": False})


def test_drafts_are_honoured() -> None:
    d4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer",
          "minimum": 3, "exclusiveMinimum": True}  # fmt: skip
    assert draft_of(d4) == "draft-04" and check_schema(d4) == []
    assert validation_errors(d4, 3) and not validation_errors(d4, 4)
    assert to_2020(d4) == {"type": "integer", "exclusiveMinimum": 3}
    # without `$schema` it is 2020-12, and the message says what the boolean means
    (path, message), = check_schema({"minimum": 3, "exclusiveMinimum": True})  # fmt: skip
    assert path == ("exclusiveMinimum",) and "draft-04" in message
    d7 = {"$schema": "http://json-schema.org/draft-07/schema#",
          "definitions": {"n": {"type": "integer"}},
          "properties": {"a": {"$ref": "#/definitions/n", "type": "string"}}}  # fmt: skip
    # draft-07 ignores a $ref's siblings: the value must be an integer, not a string
    assert validation_errors(d7, {"a": 1}) == [] and validation_errors(d7, {"a": "x"})
    assert Constraint("json_schema", d7).enforceable() is None
    assert to_2020(d7)["properties"]["a"] == {"$ref": "#/definitions/n"}
    items = {"$schema": "http://json-schema.org/draft-07/schema#",
             "items": [{"type": "integer"}], "additionalItems": False}  # fmt: skip
    assert to_2020(items) == {"prefixItems": [{"type": "integer"}], "items": False}
    assert validation_errors(items, [1, 2])
    assert check_schema({"$schema": "https://example.com/my-draft"})[0][0] == ("$schema",)
    assert draft_of({"$schema": "https://json-schema.org/draft-07/schema"}) == "draft-07"


def test_patterns_follow_ecma_262() -> None:
    assert validation_errors({"type": "string", "pattern": "^abc$"}, "abc\n")
    assert validation_errors({"type": "string", "pattern": "^abc$"}, "abc") == []
    assert validation_errors({"type": "string", "pattern": "^\\d+$"}, "١٢")  # Arabic digits
    assert validation_errors({"type": "string", "pattern": "^\\w+$"}, "été")
    assert validation_errors({"type": "string", "pattern": "^a.b$"}, "a\u2028b")
    assert validation_errors({"type": "string", "pattern": "^\\s$"}, "\u00a0") == []
    # patternProperties runs on the same engine as pattern: \p{L} works, in both keywords
    schema = {"type": "object", "patternProperties": {"^\\p{L}+$": {"type": "integer"}},
              "additionalProperties": False}  # fmt: skip
    assert validation_errors(schema, {"été": 1}) == []
    assert validation_errors(schema, {"été": "x"}) and validation_errors(schema, {"12": 1})


def test_refs_inside_the_schema_are_followed(tmp_path: Path) -> None:
    embedded = {"$id": "http://example.com/root.json",
                "$defs": {"item": {"$id": "item.json", "type": "integer"}},
                "properties": {"a": {"$ref": "item.json"},
                               "b": {"$ref": "http://example.com/item.json"}}}  # fmt: skip
    urn = {"$id": "urn:example:root", "$defs": {"n": {"type": "integer"}},
           "properties": {"a": {"$ref": "urn:example:root#/$defs/n"}}}  # fmt: skip
    meta = {"properties": {"s": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}}
    for schema in (embedded, urn, meta):
        for _, ref, base in refs_with_base(schema):
            assert ref_problem(ref, tmp_path, tmp_path, schema, base) is None, ref
        assert bundle(schema, tmp_path, tmp_path) == schema
    assert validation_errors(embedded, {"a": "x"}) and validation_errors(embedded, {"b": "x"})
    assert validation_errors(urn, {"a": "x"}) and validation_errors(urn, {"a": 1}) == []
    assert validation_errors(meta, {"s": {"type": 3}})
    assert Constraint("json_schema", embedded).enforceable() is None
    # a ref to a file that is not there is still refused, and so is one to a URL
    assert "no such file" in ref_problem("other.json", tmp_path, tmp_path, embedded, "")
    assert "leave the project" in ref_problem("https://x.org/s", tmp_path, tmp_path, urn, "")


PROJECT = """\
version: 1
name: modes
models:
  local: {{provider: transformers, path: tiny}}
schemas:
  tags: {{file: schemas/tags.json}}
prompts:
  tag: {{template: "Tags: {{{{ question }}}}", output: {{schema: tags{mode}}}}}
deployments:
  prod: {{model: local, prompt: tag}}
"""


def _validate(tmp_path: Path, mode: str, schema: dict) -> tuple[int, str]:
    root = tmp_path / f"p{abs(hash(mode)) % 1000}"
    (root / "schemas").mkdir(parents=True)
    (root / "tiny").mkdir()
    (root / "tiny" / "config.json").write_text("{}")
    (root / "llmspec.yaml").write_text(PROJECT.format(mode=mode))
    (root / "schemas" / "tags.json").write_text(json.dumps(schema, indent=2))
    r = CliRunner().invoke(main, ["validate", str(root)])
    return r.exit_code, r.stderr


def test_validate_takes_best_effort_where_strict_is_refused(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    code, err = _validate(tmp_path, "", schema)
    assert code == 1 and "E036" in err and "tags.json:6:7:" in err, err
    code, err = _validate(tmp_path, ", enforce: best_effort", schema)
    assert code == 0, err


def test_unevaluated_properties_with_a_pattern_re_cannot_read(tmp_path: Path) -> None:
    schema = {"type": "object", "patternProperties": {"^\\p{L}+$": {"type": "integer"}},
              "unevaluatedProperties": False}  # fmt: skip
    code, err = _validate(tmp_path, ", enforce: best_effort", schema)
    assert code == 1 and "E035" in err and "unevaluatedProperties" in err, err


def test_openai_gets_the_enforced_part_of_a_best_effort_schema() -> None:
    from llmspec.providers import Request
    from llmspec.providers.openai import OpenAIProvider
    from llmspec.spec import OpenAIModel

    spec = OpenAIModel(provider="openai", base_url="http://127.0.0.1:9/v1", model="m")
    provider = OpenAIProvider(spec)
    schema = {"type": "object", "properties": {"s": {"$ref": "#/$defs/x"}},
              "$defs": {"x": {"type": "string", "pattern": "(a)\\1"}}}  # fmt: skip
    c = Constraint("json_schema", schema, enforce="best_effort")
    body = provider._body(Request(system=None, prompt="p", constraint=c, max_tokens=8))
    sent = body["response_format"]["json_schema"]["schema"]
    assert "pattern" not in json.dumps(sent) and sent["$defs"]["x"] == {"type": "string"}


def test_json_positions() -> None:
    from llmspec.jsonpos import json_source

    text = '{"a": [1, {"b\\"c": "é"}],\n "d": {"e": [true, null]}}'
    f = json_source(text, "s.json")
    assert f.data == json.loads(text)
    assert str(f.loc(("a", 1, 'b"c'))) == "s.json:1:20"
    assert str(f.loc(("a", 1, 'b"c'), key=True)) == "s.json:1:12"
    assert str(f.loc(("d", "e", 1))) == "s.json:2:20"
    assert str(f.loc(("d", "missing"))) == "s.json:2:7"  # the nearest parent


def test_best_effort_resamples_a_violating_row_with_derived_seeds() -> None:
    from llmspec.jobs.generate import guarantee_of, resample, resample_seed
    from llmspec.providers import Request, Result

    c = Constraint("json_schema", {"type": "array", "uniqueItems": True}, enforce="best_effort")
    calls: list[list[tuple[int, float]]] = []

    class Provider:
        def generate(self, requests):
            calls.append([(r.seed, r.temperature) for r in requests])
            good = resample_seed(7, 2)
            return [Result("[1, 2]" if r.seed == good else "[1, 1]", "stop", "token")
                    for r in requests]  # fmt: skip

    requests = [Request(None, "p", c, 8, seed=7), Request(None, "q", c, 8, seed=9)]
    first = [Result("[1, 1]", "stop", "token"), Result("[3]", "stop", "token")]
    out, attempts = resample(Provider(), requests, first, c)
    assert [r.text for r in out] == ["[1, 2]", "[3]"] and attempts == [3, 1]
    # only the violating row, at a greedy model's resample temperature, seeds from its own
    assert calls == [[(resample_seed(7, 1), 1.0)], [(resample_seed(7, 2), 1.0)]]
    assert guarantee_of(c, "token") == "token+checked"
    assert guarantee_of(Constraint("json_schema", {}), "token") == "token"
    # a row that never satisfies it keeps its last output after `retries` resamples
    never = Constraint("json_schema", {"type": "array", "uniqueItems": True},
                       enforce="best_effort", retries=2)  # fmt: skip
    calls.clear()
    out, attempts = resample(Provider(), requests[1:], first[:1], never)
    assert attempts == [3] and len(calls) == 2 and out[0].text == "[1, 1]"


@pytest.mark.slow
def test_best_effort_grammars_admit_the_valid_instances(tiny_model_dir: Path) -> None:
    # Widening only: every instance the full schema accepts can still be decoded.
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from llmspec.providers.transformers.masks import llg_tokenizer_for, new_matcher

    llg = llg_tokenizer_for(AutoTokenizer.from_pretrained(tiny_model_dir))
    for name, (schema, good, _) in REFUSED.items():
        c = Constraint("json_schema", schema, enforce="best_effort")
        text = json.dumps(good, separators=(", ", ": "))
        tokens = llg.tokenize_str(text)
        m = new_matcher(c.grammar(), llg)
        assert m.validate_tokens([*tokens, llg.eos_token]) == len(tokens) + 1, (name, text)
