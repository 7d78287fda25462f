from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec.schemasize import smallest_instance_chars, typical_instance_chars

ANSWER = {
    "type": "object",
    "required": ["answer", "sources"],
    "properties": {
        "answer": {"type": "string", "minLength": 20},
        "sources": {"type": "array", "minItems": 2, "items": {"type": "string", "minLength": 5}},
    },
}


def test_sizes_match_the_json_a_model_writes() -> None:
    smallest = {"answer": "x" * 20, "sources": ["x" * 5, "x" * 5]}
    assert smallest_instance_chars(ANSWER) == len(json.dumps(smallest, separators=(", ", ": ")))
    assert smallest_instance_chars({"enum": ["long one", "b"]}) == 3
    assert smallest_instance_chars({"const": {"a": [1, 2]}}) == len('{"a": [1, 2]}')
    assert smallest_instance_chars({"type": "integer", "minimum": 1000}) == 4
    assert smallest_instance_chars({"type": "integer", "exclusiveMinimum": 9}) == 2
    assert smallest_instance_chars({"type": "integer", "maximum": -50}) == 3
    assert smallest_instance_chars({"type": ["string", "null"]}) == 2
    assert smallest_instance_chars({"type": "string", "format": "date"}) == 12
    assert smallest_instance_chars(False) is None
    assert smallest_instance_chars({"type": "integer", "minimum": 5, "maximum": 1}) is None


def test_refs_unions_and_merges() -> None:
    schema = {
        "$defs": {"id": {"type": "string", "minLength": 4}},
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/id"}, "b": {"type": "integer"}},
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    assert smallest_instance_chars(schema) == len('{"b": 0}')
    merged = {"allOf": [{"$ref": "#/$defs/x"}, {"required": ["b"]}], "$defs": {"x": ANSWER}}
    assert smallest_instance_chars(merged) == smallest_instance_chars(ANSWER) + len(', "b": 0')
    assert smallest_instance_chars({"$ref": "other.json#/x"}) is None
    assert smallest_instance_chars({"anyOf": [{"$ref": "http://x/y"}, {"type": "null"}]}) == 4
    far = {"type": "array", "minItems": 1, "items": {"$ref": "file:///etc/x.json"}}
    assert smallest_instance_chars({"oneOf": [far, {"type": "string"}]}) == 2


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        # sized arithmetically: nothing of this size is ever built
        ({"type": "array", "minItems": 100_000_000}, 2 + 2 * (100_000_000 - 1) + 100_000_000),
        ({"type": "string", "minLength": 10_000_000_000}, 10_000_000_002),
        ({"type": "object", "minProperties": 10**9}, 2 + 10**9 * 6 + 2 * (10**9 - 1)),
        ({"type": "integer", "minimum": 10**5000}, 5001),
        # a recursion with four ways in and one way out
        (
            {
                "anyOf": [{"type": "array", "minItems": 1, "items": {"$ref": "#"}}] * 4
                + [{"const": 1}]
            },
            1,
        ),
        ({"anyOf": [{"$ref": "#"}] * 4}, None),
        (
            {
                "$defs": {"n": {"anyOf": [{"$ref": "#/$defs/n"}, {"$ref": "#/$defs/n"}]}},
                "$ref": "#/$defs/n",
            },
            None,
        ),
        # keywords of the wrong type are not sizes
        ({"type": "object", "properties": [], "required": ["a"]}, len('{"a": 0}')),
        ({"type": "object", "required": "a"}, 2),
        ({"type": "array", "items": [{"type": "null"}], "minItems": 1}, 6),
        ({"type": "string", "minLength": "3"}, 2),
        ({"type": 7}, 1),
        ({"type": [{}], "enum": "x"}, None),
        ({"minimum": float("inf")}, None),
        ({"allOf": [{"type": "string"}, {"type": "integer"}]}, None),
        ({"allOf": 3, "anyOf": {}}, 1),
        ({"$ref": "#/anyOf/1", "anyOf": [True, {"type": "null"}]}, 4),
        ({"$ref": "#/nope/~1x"}, None),
        ("not a schema", None),
        ([{"type": "null"}], None),
    ],
)
def test_smallest_size_is_total_and_bounded(schema: object, expected: int | None) -> None:
    t0 = time.monotonic()
    assert smallest_instance_chars(schema) == expected
    typical_instance_chars(schema)
    assert time.monotonic() - t0 < 2


def test_deep_schemas_and_ref_chains_are_unknown_not_errors() -> None:
    deep: dict = {"type": "null"}
    for _ in range(5000):
        deep = {"type": "array", "minItems": 1, "items": deep}
    assert smallest_instance_chars(deep) is None
    chain = {"$defs": {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(5000)}}
    chain["$ref"] = "#/$defs/d0"
    assert smallest_instance_chars(chain) is None


def test_typical_sizes() -> None:
    # strings of 16 characters unless bounded, optional properties in, one array item
    assert typical_instance_chars({"type": "string"}) == 18
    assert typical_instance_chars({"type": "string", "maxLength": 3}) == 5
    assert typical_instance_chars({"type": "string", "minLength": 40}) == 42
    assert typical_instance_chars({"type": "array", "items": {"type": "boolean"}}) == 7
    assert typical_instance_chars({"type": "array", "maxItems": 0}) == 2
    assert typical_instance_chars({"type": "integer"}) == 4
    assert typical_instance_chars({"type": "integer", "minimum": 0, "maximum": 10}) == 2
    assert typical_instance_chars({"enum": ["a", "longest"]}) == 9
    assert typical_instance_chars({"anyOf": [{"type": "null"}, ANSWER]}) == typical_instance_chars(
        ANSWER
    )
    expected = {"answer": "x" * 20, "sources": ["x" * 16, "x" * 16]}
    assert typical_instance_chars(ANSWER) == len(json.dumps(expected, separators=(", ", ": ")))
    node = {
        "$defs": {
            "node": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 4},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
            }
        },
        "$ref": "#/$defs/node",
    }
    assert typical_instance_chars(node) == len('{"name": "xxxx"}')


# -- property-based: any JSON value is sized or None, quickly ---------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=40,
)
KEYWORDS = [
    "type", "properties", "required", "items", "prefixItems", "minItems", "maxItems",
    "minLength", "maxLength", "anyOf", "oneOf", "allOf", "$ref", "$defs", "enum", "const",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minProperties",
    "additionalProperties", "format", "additionalItems",
]  # fmt: skip
VALUES = st.one_of(
    JSON,
    st.sampled_from(["object", "array", "string", "integer", "number", "null", "boolean"]),
    st.sampled_from(["#", "#/$defs/a", "#/properties/a", "#/anyOf/0", "#/items", "x#/a"]),
    st.integers(-3, 10**12),
)
SCHEMAS = st.recursive(
    st.booleans() | st.dictionaries(st.sampled_from(KEYWORDS), VALUES, max_size=4),
    lambda inner: st.dictionaries(
        st.sampled_from(KEYWORDS + ["a"]),
        inner | st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "b"]), inner),
        max_size=5,
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(JSON, SCHEMAS))
def test_fuzz_any_json_value(schema: object) -> None:
    for size in (smallest_instance_chars(schema), typical_instance_chars(schema)):
        assert size is None or (isinstance(size, int) and size >= 1)
