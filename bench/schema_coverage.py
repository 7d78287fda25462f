"""Which real-world JSON Schemas llmspec accepts, in each enforcement mode, and whether every
output of an accepted schema validates.

45 schemas in the style of API payloads and LLM extraction targets (nested objects, arrays with
minItems/maxItems, enums, numeric bounds, patterns, anyOf/oneOf, $defs/$ref, additionalProperties
true/false/schema, string formats, const, nullable types, recursive refs, ...) and the keywords
and drafts JSONSchemaBench schemas use that the engine refuses (oneOf, draft-04 `dependencies`,
uniqueItems, not, if/then, min/maxProperties, propertyNames, look-around patterns) or that
llmspec refused itself before (draft-04/07 semantics, `$ref` to an embedded `$id` or a `urn:`
id, `patternProperties` with `\\p{L}`). For each schema and each mode:

1. `Constraint(..., enforce=mode).enforceable()` (what `llmspec validate` runs, error E036):
   `strict` refuses what llguidance cannot enforce whole; `best_effort` enforces the rest;
2. for an accepted schema, `generate_batch` with the tiny random Llama (4 layers x 256 wide)
   on --rows rows per schema (temperature 1.0, a seed per row, max_tokens --max-tokens with
   `on_budget: close`), all schemas' rows in one call with batch_size 16; in `best_effort` a
   violating row is resampled (`llmspec.jobs.generate.resample`, --retries times);
3. every output parsed and validated as `apply` does (jsonschema's validator for the draft the
   schema declares, patterns as ECMA-262, format as an annotation: the 2020-12 default), and
   again with jsonschema's format assertion on, shown apart.

A random-weight model is the harshest user of a grammar: it takes any branch the mask allows.
Then `llmspec validate` runs on a tiny project whose schema uses a keyword the engine cannot
enforce, in a prompt a suite runs on the tiny model (E036 applies only to prompts decoded with
token masks), to show the diagnostic naming it.

    .venv/bin/python bench/schema_coverage.py [--quick | --smoke] [--rows 16] [--max-tokens 512]

`--smoke` (1 row per schema, max_tokens 96) checks in seconds that the benchmark runs; with so
few tokens many outputs are closed early or cut short, so its figures mean little.

Goals: every schema accepted in `best_effort`; every output of an accepted schema validates
(100%) in `strict`, and in `best_effort` after its resamples.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _tiny  # noqa: F401  (sets HF_HUB_OFFLINE and sys.path)
from _tiny import build_model, load_avg

S = "string"

SCHEMAS: list[tuple[str, str, dict]] = [
    (
        "support_ticket",
        "flat object, enum, integer bounds, maxLength, boolean, additionalProperties false",
        {
            "type": "object",
            "properties": {
                "category": {"enum": ["billing", "shipping", "refund", "account", "other"]},
                "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                "summary": {"type": S, "maxLength": 24},
                "needs_human": {"type": "boolean"},
            },
            "required": ["category", "priority", "summary", "needs_human"],
            "additionalProperties": False,
        },
    ),
    (
        "postal_address",
        "nested object, anchored patterns, optional properties",
        {
            "type": "object",
            "properties": {
                "street": {"type": S, "minLength": 3, "maxLength": 20},
                "city": {"type": S, "minLength": 2, "maxLength": 12},
                "postcode": {"type": S, "pattern": "^[0-9]{5}$"},
                "country": {"enum": ["DE", "FR", "NL", "US"]},
                "geo": {
                    "type": "object",
                    "properties": {
                        "lat": {"type": "number", "minimum": -90, "maximum": 90},
                        "lon": {"type": "number", "minimum": -180, "maximum": 180},
                    },
                    "required": ["lat", "lon"],
                    "additionalProperties": False,
                },
            },
            "required": ["street", "city", "postcode", "country"],
            "additionalProperties": False,
        },
    ),
    (
        "user_profile",
        "string formats email/date/uuid, nullable type list",
        {
            "type": "object",
            "properties": {
                "id": {"type": S, "format": "uuid"},
                "email": {"type": S, "format": "email", "maxLength": 32},
                "born": {"type": S, "format": "date"},
                "nickname": {"type": [S, "null"], "maxLength": 10},
            },
            "required": ["id", "email", "born", "nickname"],
            "additionalProperties": False,
        },
    ),
    (
        "order_lines",
        "array of objects, minItems/maxItems, sku pattern, number bounds",
        {
            "type": "object",
            "properties": {
                "order_id": {"type": "integer", "minimum": 1, "maximum": 999999},
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "properties": {
                            "sku": {"type": S, "pattern": "^[A-Z]{2}-[0-9]{4}$"},
                            "qty": {"type": "integer", "minimum": 1, "maximum": 10},
                            "price": {"type": "number", "minimum": 0, "maximum": 1000},
                        },
                        "required": ["sku", "qty", "price"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["order_id", "lines"],
            "additionalProperties": False,
        },
    ),
    (
        "product_defs_ref",
        "$defs and $ref, enum currency, integer amount",
        {
            "$defs": {
                "money": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "integer", "minimum": 0, "maximum": 100000},
                        "currency": {"enum": ["EUR", "USD", "GBP"]},
                    },
                    "required": ["amount", "currency"],
                    "additionalProperties": False,
                }
            },
            "type": "object",
            "properties": {
                "name": {"type": S, "maxLength": 16},
                "price": {"$ref": "#/$defs/money"},
                "was": {"$ref": "#/$defs/money"},
            },
            "required": ["name", "price"],
            "additionalProperties": False,
        },
    ),
    (
        "calendar_event",
        "date-time and time formats, duration, exclusive bounds",
        {
            "type": "object",
            "properties": {
                "title": {"type": S, "maxLength": 16},
                "start": {"type": S, "format": "date-time"},
                "reminder": {"type": S, "format": "time"},
                "length": {"type": S, "format": "duration", "maxLength": 12},
                "attendees": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 50},
            },
            "required": ["title", "start", "attendees"],
            "additionalProperties": False,
        },
    ),
    (
        "payment_anyof",
        "anyOf of objects told apart by const",
        {
            "type": "object",
            "properties": {
                "payment": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {
                                "kind": {"const": "card"},
                                "last4": {"type": S, "pattern": "^[0-9]{4}$"},
                            },
                            "required": ["kind", "last4"],
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "properties": {
                                "kind": {"const": "bank"},
                                "iban": {"type": S, "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{4,10}$"},
                            },
                            "required": ["kind", "iban"],
                            "additionalProperties": False,
                        },
                    ]
                }
            },
            "required": ["payment"],
            "additionalProperties": False,
        },
    ),
    (
        "payment_oneof",
        "oneOf told apart by const (disjoint branches, the OpenAPI way)",
        {
            "oneOf": [
                {
                    "type": "object",
                    "properties": {"kind": {"const": "card"}, "last4": {"type": S, "maxLength": 4}},
                    "required": ["kind", "last4"],
                    "additionalProperties": False,
                },
                {
                    "type": "object",
                    "properties": {"kind": {"const": "cash"}},
                    "required": ["kind"],
                    "additionalProperties": False,
                },
            ]
        },
    ),
    (
        "contact_oneof",
        "oneOf: exactly one of email or phone (overlapping branches)",
        {
            "type": "object",
            "properties": {
                "email": {"type": S, "format": "email", "maxLength": 24},
                "phone": {"type": S, "pattern": "^[0-9]{6,10}$"},
            },
            "oneOf": [{"required": ["email"]}, {"required": ["phone"]}],
            "additionalProperties": False,
        },
    ),
    (
        "settings_map",
        "additionalProperties as a schema, maxProperties",
        {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
            "minProperties": 1,
            "maxProperties": 3,
            "propertyNames": {"maxLength": 12},
        },
    ),
    (
        "settings_map_plain",
        "additionalProperties as a schema, maxProperties (no propertyNames)",
        {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100},
            "minProperties": 1,
            "maxProperties": 3,
        },
    ),
    (
        "open_record",
        "additionalProperties true with maxProperties, required fields",
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "minimum": 0, "maximum": 99},
                "label": {"type": S, "maxLength": 8},
            },
            "required": ["id", "label"],
            "additionalProperties": True,
            "maxProperties": 2,
        },
    ),
    (
        "envelope_const",
        "const strings and const number",
        {
            "type": "object",
            "properties": {
                "version": {"const": "1.0"},
                "kind": {"const": "invoice"},
                "schema": {"const": 3},
                "body": {"type": S, "maxLength": 12},
            },
            "required": ["version", "kind", "schema", "body"],
            "additionalProperties": False,
        },
    ),
    (
        "nullable_anyof",
        "nullable through anyOf [T, null], arrays of nullable",
        {
            "type": "object",
            "properties": {
                "middle_name": {"anyOf": [{"type": S, "maxLength": 10}, {"type": "null"}]},
                "scores": {
                    "type": "array",
                    "maxItems": 4,
                    "items": {
                        "anyOf": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "null"}]
                    },
                },
            },
            "required": ["middle_name", "scores"],
            "additionalProperties": False,
        },
    ),
    (
        "category_tree",
        "recursive $ref through $defs, bounded fan-out",
        {
            "$defs": {
                "node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": S, "maxLength": 6},
                        "children": {
                            "type": "array",
                            "maxItems": 2,
                            "items": {"$ref": "#/$defs/node"},
                        },
                    },
                    "required": ["name"],
                    "additionalProperties": False,
                }
            },
            "$ref": "#/$defs/node",
        },
    ),
    (
        "comment_thread",
        "recursive $ref to the root (#)",
        {
            "type": "object",
            "properties": {
                "text": {"type": S, "maxLength": 10},
                "replies": {"type": "array", "maxItems": 2, "items": {"$ref": "#"}},
            },
            "required": ["text"],
            "additionalProperties": False,
        },
    ),
    (
        "tags_unique",
        "array with uniqueItems",
        {
            "type": "object",
            "properties": {
                "tags": {
                    "type": "array",
                    "items": {"enum": ["new", "sale", "eco", "gift"]},
                    "minItems": 1,
                    "maxItems": 3,
                    "uniqueItems": True,
                }
            },
            "required": ["tags"],
            "additionalProperties": False,
        },
    ),
    (
        "shipping_if_then",
        "if/then/else: US addresses need a ZIP",
        {
            "type": "object",
            "properties": {
                "country": {"enum": ["US", "DE"]},
                "zip": {"type": S, "pattern": "^[0-9]{5}$"},
            },
            "required": ["country"],
            "if": {"properties": {"country": {"const": "US"}}},
            "then": {"required": ["zip"]},
            "else": {"not": {"required": ["zip"]}},
        },
    ),
    (
        "not_empty_not",
        "not: a username that is not 'admin'",
        {
            "type": "object",
            "properties": {"user": {"type": S, "maxLength": 8, "not": {"const": "admin"}}},
            "required": ["user"],
        },
    ),
    (
        "dependent_required",
        "dependentRequired: a card number needs an expiry",
        {
            "type": "object",
            "properties": {
                "card": {"type": S, "pattern": "^[0-9]{16}$"},
                "expiry": {"type": S, "pattern": "^[0-9]{2}/[0-9]{2}$"},
            },
            "dependentRequired": {"card": ["expiry"]},
            "additionalProperties": False,
        },
    ),
    (
        "extension_fields",
        "patternProperties with additionalProperties false",
        {
            "type": "object",
            "properties": {"name": {"type": S, "maxLength": 8}},
            "patternProperties": {"^x-[a-z]{1,6}$": {"type": S, "maxLength": 6}},
            "required": ["name"],
            "additionalProperties": False,
            "maxProperties": 3,
        },
    ),
    (
        "csv_row_tuple",
        "prefixItems tuple, items false",
        {
            "type": "array",
            "prefixItems": [
                {"type": S, "maxLength": 8},
                {"type": "integer", "minimum": 0, "maximum": 120},
                {"type": "boolean"},
            ],
            "items": False,
            "minItems": 3,
        },
    ),
    (
        "mixed_enum",
        "enum of mixed types (number, string, null, boolean, object)",
        {"enum": [1, "two", None, True, 3.5, {"k": "v"}, [1, 2]]},
    ),
    (
        "discount_multiple_of",
        "integer multipleOf, number multipleOf",
        {
            "type": "object",
            "properties": {
                "percent": {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 5},
                "step": {"type": "number", "minimum": 0, "maximum": 10, "multipleOf": 0.25},
            },
            "required": ["percent", "step"],
            "additionalProperties": False,
        },
    ),
    (
        "network_formats",
        "formats ipv4, ipv6, hostname",
        {
            "type": "object",
            "properties": {
                "v4": {"type": S, "format": "ipv4"},
                "v6": {"type": S, "format": "ipv6", "maxLength": 39},
                "host": {"type": S, "format": "hostname", "maxLength": 24},
            },
            "required": ["v4", "host"],
            "additionalProperties": False,
        },
    ),
    (
        "webhook_uri",
        "format uri (standard 2020-12 format)",
        {
            "type": "object",
            "properties": {
                "url": {"type": S, "format": "uri", "maxLength": 40},
                "secret": {"type": S, "maxLength": 16},
            },
            "required": ["url"],
            "additionalProperties": False,
        },
    ),
    (
        "openapi_password",
        "OpenAPI-style format password / int64",
        {
            "type": "object",
            "properties": {
                "user": {"type": S, "maxLength": 12},
                "password": {"type": S, "format": "password", "minLength": 8, "maxLength": 16},
                "uid": {"type": "integer", "format": "int64", "minimum": 0, "maximum": 99999},
            },
            "required": ["user", "password"],
            "additionalProperties": False,
        },
    ),
    (
        "allof_compose",
        "allOf of a base object and an extension",
        {
            "allOf": [
                {
                    "type": "object",
                    "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999}},
                    "required": ["id"],
                },
                {
                    "type": "object",
                    "properties": {"name": {"type": S, "maxLength": 10}},
                    "required": ["name"],
                },
            ],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": S},
            },
            "additionalProperties": False,
        },
    ),
    (
        "fixed_pair",
        "array with minItems = maxItems, items an enum",
        {"type": "array", "items": {"enum": ["yes", "no", "maybe"]}, "minItems": 2, "maxItems": 2},
    ),
    (
        "invoice_nested",
        "three levels of nesting, arrays inside objects inside arrays",
        {
            "type": "object",
            "properties": {
                "customer": {
                    "type": "object",
                    "properties": {
                        "name": {"type": S, "maxLength": 12},
                        "address": {
                            "type": "object",
                            "properties": {
                                "city": {"type": S, "maxLength": 10},
                                "lines": {
                                    "type": "array",
                                    "items": {"type": S, "maxLength": 10},
                                    "maxItems": 2,
                                },
                            },
                            "required": ["city"],
                            "additionalProperties": False,
                        },
                    },
                    "required": ["name", "address"],
                    "additionalProperties": False,
                },
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 2,
                    "items": {
                        "type": "object",
                        "properties": {
                            "desc": {"type": S, "maxLength": 10},
                            "cents": {"type": "integer", "minimum": 0, "maximum": 99999},
                        },
                        "required": ["desc", "cents"],
                        "additionalProperties": False,
                    },
                },
                "paid": {"type": "boolean"},
            },
            "required": ["customer", "items", "paid"],
            "additionalProperties": False,
        },
    ),
    (
        "must_contain",
        "contains: at least one admin role",
        {
            "type": "array",
            "items": {"enum": ["admin", "user", "guest"]},
            "contains": {"const": "admin"},
            "maxItems": 3,
        },
    ),
    (
        "strict_unevaluated",
        "unevaluatedProperties false with allOf",
        {
            "allOf": [
                {
                    "type": "object",
                    "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 9}},
                }
            ],
            "unevaluatedProperties": False,
        },
    ),
    (
        "password_lookahead",
        "pattern with look-ahead (password policy)",
        {
            "type": "object",
            "properties": {"pw": {"type": S, "pattern": "^(?=.*[0-9])[A-Za-z0-9]{8,12}$"}},
            "required": ["pw"],
        },
    ),
    (
        "union_type_list",
        "type list [integer, string] with bounds for each",
        {
            "type": "object",
            "properties": {
                "ref": {"type": ["integer", S], "minimum": 0, "maximum": 999, "maxLength": 6}
            },
            "required": ["ref"],
            "additionalProperties": False,
        },
    ),
    (
        "code_unanchored_pattern",
        "unanchored pattern, minLength/maxLength together",
        {
            "type": "object",
            "properties": {
                "code": {"type": S, "pattern": "[A-Z]{3}", "minLength": 3, "maxLength": 6}
            },
            "required": ["code"],
            "additionalProperties": False,
        },
    ),
    (
        "annotations_only",
        "title, description, default, examples, deprecated, readOnly",
        {
            "title": "Note",
            "description": "A short note",
            "type": "object",
            "properties": {
                "text": {
                    "type": S,
                    "maxLength": 12,
                    "default": "",
                    "examples": ["hi"],
                    "description": "body",
                },
                "old": {"type": "boolean", "deprecated": True, "readOnly": True},
            },
            "required": ["text"],
            "additionalProperties": False,
        },
    ),
    (
        "ref_chain",
        "$ref -> $ref -> $ref, a def used twice",
        {
            "$defs": {
                "a": {"$ref": "#/$defs/b"},
                "b": {"$ref": "#/$defs/c"},
                "c": {
                    "type": "object",
                    "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9}},
                    "required": ["v"],
                    "additionalProperties": False,
                },
            },
            "type": "object",
            "properties": {"first": {"$ref": "#/$defs/a"}, "second": {"$ref": "#/$defs/c"}},
            "required": ["first", "second"],
            "additionalProperties": False,
        },
    ),
]


# Keywords and drafts real schemas use that llmspec refused before `enforce: best_effort` and
# `$schema` were honoured (JSONSchemaBench counts: oneOf 537, draft-04 `dependencies` 124,
# uniqueItems 104, not 90, if/then 35, min/maxProperties 31, propertyNames 22), and `$ref`s
# it refused as "no such file".
SCHEMAS += [
    (
        "oneof_overlapping",
        "oneOf whose branches overlap (exactly one must match)",
        {
            "type": "object",
            "properties": {
                "n": {
                    "oneOf": [
                        {"type": "integer", "minimum": 0, "maximum": 50},
                        {"type": "integer", "minimum": 40, "maximum": 99},
                    ]
                }
            },
            "required": ["n"],
            "additionalProperties": False,
        },
    ),
    (
        "draft04_dependencies",
        "draft-04: dependencies (array form), exclusiveMinimum true, id",
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "id": "http://example.com/payment.json",
            "type": "object",
            "properties": {
                "card": {"type": S, "pattern": "^[0-9]{4}$"},
                "billing": {"type": S, "maxLength": 10},
                "amount": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "maximum": 1000,
                },
            },
            "required": ["amount"],
            "dependencies": {"card": ["billing"]},
            "additionalProperties": False,
        },
    ),
    (
        "draft07_ref_siblings",
        "draft-07: a $ref beside other keywords (which that draft ignores)",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {"count": {"type": "integer", "minimum": 0, "maximum": 9}},
            "type": "object",
            "properties": {"count": {"$ref": "#/definitions/count", "type": S}},
            "required": ["count"],
            "additionalProperties": False,
        },
    ),
    (
        "min_max_properties",
        "minProperties/maxProperties over optional properties",
        {
            "type": "object",
            "properties": {k: {"type": "integer", "minimum": 0, "maximum": 9} for k in "abcd"},
            "minProperties": 2,
            "maxProperties": 3,
            "additionalProperties": False,
        },
    ),
    (
        "embedded_id_ref",
        "$ref to a subschema by its embedded $id",
        {
            "$id": "https://example.com/order.json",
            "$defs": {"sku": {"$id": "sku.json", "type": S, "pattern": "^[A-Z]{3}[0-9]{2}$"}},
            "type": "object",
            "properties": {
                "sku": {"$ref": "sku.json"},
                "qty": {"type": "integer", "minimum": 1, "maximum": 9},
            },
            "required": ["sku", "qty"],
            "additionalProperties": False,
        },
    ),
    (
        "urn_id_ref",
        "a urn: $id and a $ref through it",
        {
            "$id": "urn:example:ticket",
            "$defs": {"level": {"enum": ["low", "high"]}},
            "type": "object",
            "properties": {"level": {"$ref": "urn:example:ticket#/$defs/level"}},
            "required": ["level"],
            "additionalProperties": False,
        },
    ),
    (
        "unicode_pattern_properties",
        "patternProperties with \\p{L} (ECMA-262 with the u flag)",
        {
            "type": "object",
            "patternProperties": {"^\\p{L}{1,8}$": {"type": "integer", "minimum": 0, "maximum": 9}},
            "additionalProperties": False,
            "maxProperties": 2,
        },
    ),
    (
        "unique_not_if",
        "uniqueItems, not and if/then together",
        {
            "type": "object",
            "properties": {
                "tags": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 3,
                    "uniqueItems": True,
                    "items": {"enum": ["a", "b", "c", "d"]},
                },
                "user": {"type": S, "maxLength": 6, "not": {"enum": ["root", "admin"]}},
                "plan": {"enum": ["free", "pro"]},
                "seats": {"type": "integer", "minimum": 1, "maximum": 9},
            },
            "required": ["tags", "user", "plan"],
            "if": {"properties": {"plan": {"const": "pro"}}},
            "then": {"required": ["seats"]},
            "additionalProperties": False,
        },
    ),
]


def keyword(reason: str) -> str:
    """The keyword a check_enforceable reason names."""
    m = re.search(r"Unimplemented keys: \[(.*?)\]", reason)
    if m:
        return ", ".join(k.strip().strip('"') for k in m.group(1).split(","))
    m = re.search(r"Unknown format: (\S+)", reason)
    if m:
        return f"format: {m.group(1)}"
    if "min/maxProperties" in reason:
        return "minProperties/maxProperties"
    if reason.startswith("Unsatisfiable"):
        return "unsatisfiable to llguidance"
    if reason.startswith("oneOf"):
        return "oneOf"
    if "look-around" in reason:
        return "pattern (look-around)"
    if "backreference" in reason:
        return "pattern (backreference)"
    return "?"


class _Provider:
    """`generate_batch` behind the provider protocol, so `enforce: best_effort` resamples
    through llmspec's own `jobs.generate.resample`."""

    def __init__(self, model, tok, llg, batch_size: int = 16):
        self.model, self.tok, self.llg, self.batch_size = model, tok, llg, batch_size

    def generate(self, requests):
        from llmspec.providers import Result
        from llmspec.providers.transformers.decode import generate_batch

        r0 = requests[0]
        gens = generate_batch(
            self.model, self.tok, [r.prompt for r in requests],
            [r.constraint for r in requests], max_tokens=r0.max_tokens,
            temperature=r0.temperature, seeds=[r.seed for r in requests],
            llg_tokenizer=self.llg, batch_size=self.batch_size,
        )  # fmt: skip
        return [Result(g.text, g.finish, g.guarantee, g.error, g.tokens) for g in gens]


def _outcomes(by_name, owners, results, attempts, fmt_checker):
    """Per schema: rows, finished rows, valid ones (llmspec's check: jsonschema under the
    schema's own draft, ECMA-262 patterns), valid with jsonschema's format assertion too,
    truncated, closed early, the longest row, resampled rows, the first problem."""
    from jsonschema import validators

    from llmspec.jsonschemas import validation_errors

    stats: dict[str, dict] = {}
    for name, r, tries in zip(owners, results, attempts, strict=True):
        st = stats.setdefault(name, {"rows": 0, "finished": 0, "valid": 0, "fmt": 0, "length": 0,
                                     "budget": 0, "tokens": 0, "resampled": 0, "problem": None,
                                     "example": None})  # fmt: skip
        schema = by_name[name]
        st["rows"] += 1
        st["tokens"] = max(st["tokens"], r.tokens or 0)
        st["length"] += r.finish == "length"
        st["budget"] += r.finish == "budget"
        st["resampled"] += tries > 1
        if r.finish in ("stop", "budget"):
            st["finished"] += 1
        problem = None
        try:
            value = json.loads(r.text)
        except ValueError as e:
            problem = f"not JSON ({r.finish}): {e.msg}"
        if problem is None:
            errors = validation_errors(schema, value)
            if errors:
                problem = errors[0][:70]
            else:
                st["valid"] += 1
                st["example"] = st["example"] or r.text
            cls = validators.validator_for(schema, default=validators.Draft202012Validator)
            try:
                st["fmt"] += not list(cls(schema, format_checker=fmt_checker).iter_errors(value))
            except re.error:  # a pattern Python's re cannot read (\p{L}): llmspec's check only
                st["fmt"] += not errors
        if problem and st["problem"] is None:
            st["problem"] = f"{problem}: {r.text[:80]!r}"
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3 rows per schema")
    size.add_argument("--smoke", action="store_true", help="1 row per schema, max_tokens 96")
    ap.add_argument("--rows", type=int, default=16, help="rows per accepted schema")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--retries", type=int, default=3, help="best_effort resamples")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    if args.quick:
        args.rows = 3
    if args.smoke:
        args.rows, args.max_tokens = 1, 96
    t_all = time.perf_counter()
    print(f"load average at start: {load_avg()}", flush=True)

    import torch
    from jsonschema import Draft202012Validator
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.constraints import Constraint
    from llmspec.jobs.generate import resample
    from llmspec.jsonschemas import check_schema
    from llmspec.providers import Request
    from llmspec.providers.transformers.masks import llg_tokenizer_for

    torch.set_num_threads(args.threads)
    modes = ("strict", "best_effort")

    # 1. every schema is valid under its own draft; which ones each mode accepts
    verdicts: dict[str, dict[str, str | None]] = {m: {} for m in modes}
    left: dict[str, tuple] = {}
    t0 = time.perf_counter()
    for name, _, schema in SCHEMAS:
        assert check_schema(schema) == [], (name, check_schema(schema))
        for mode in modes:
            c = Constraint("json_schema", schema, enforce=mode, retries=args.retries)
            verdicts[mode][name] = c.enforceable()
        left[name] = Constraint("json_schema", schema, enforce="best_effort").enforced_schema()[1]
    check_s = time.perf_counter() - t0
    by_name = {n: s for n, _, s in SCHEMAS}

    # 2. generate the accepted schemas' rows in each mode, all schemas in one call
    stats: dict[str, dict] = {}
    gen_s: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = build_model(Path(tmp) / "model")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        provider = _Provider(model, tok, llg_tokenizer_for(tok))
        for mode in modes:
            accepted = [n for n, _, _ in SCHEMAS if verdicts[mode][n] is None]
            requests, owners = [], []
            for name in accepted:
                c = Constraint("json_schema", by_name[name], enforce=mode, retries=args.retries)
                for i in range(args.rows):
                    prompt = f"Reply with a JSON value for `{name}` (example {i}):\n"
                    requests.append(Request(None, prompt, c, args.max_tokens,
                                            args.temperature, seed=len(requests)))  # fmt: skip
                    owners.append(name)
            t0 = time.perf_counter()
            results = provider.generate(requests)
            attempts = [1] * len(results)
            if mode == "best_effort":
                # rows of one schema share a constraint; resample schema by schema
                for name in accepted:
                    idx = [i for i, o in enumerate(owners) if o == name]
                    c = requests[idx[0]].constraint
                    again, tries = resample(provider, [requests[i] for i in idx],
                                            [results[i] for i in idx], c)  # fmt: skip
                    for i, r, t in zip(idx, again, tries, strict=True):
                        results[i], attempts[i] = r, t
            gen_s[mode] = time.perf_counter() - t0
            stats[mode] = _outcomes(by_name, owners, results, attempts,
                                    Draft202012Validator.FORMAT_CHECKER)  # fmt: skip

        # 3. llmspec validate on a project with a schema the engine cannot enforce
        demo = write_demo_project(Path(tmp) / "demo", path)
        proc = subprocess.run(
            [sys.executable, "-m", "llmspec", "validate", str(demo)],
            capture_output=True, text=True, cwd=tmp,
        )  # fmt: skip

    _report(args, verdicts, left, stats, check_s, gen_s)
    print(f"\n$ llmspec validate demo   (exit {proc.returncode})")
    print((proc.stdout + proc.stderr).rstrip())
    print(f"\nload average at end: {load_avg()}; total {time.perf_counter() - t_all:.0f} s")


def _report(args, verdicts, left, stats, check_s, gen_s) -> None:
    from jsonschema import Draft202012Validator

    from llmspec.constraints import engine_version

    n_all = len(SCHEMAS)
    print(
        f"\n{engine_version()}; model {_tiny.ARCH} {_tiny.LAYERS}x{_tiny.HIDDEN}; "
        f"{args.rows} rows per accepted schema, temperature {args.temperature}, "
        f"max_tokens {args.max_tokens} (on_budget: close), batch_size 16, best_effort "
        f"retries {args.retries}"
    )
    print(f"\n{'schema':26} {'strict':>11} {'best_effort':>16}  features / left to the check")
    for name, features, _ in SCHEMAS:
        cells = []
        for mode in ("strict", "best_effort"):
            st = stats[mode].get(name)
            if verdicts[mode][name] is not None:
                cells.append("refused")
            else:
                cells.append(f"{st['valid']}/{st['rows']}" + (f" r{st['resampled']}"
                             if mode == "best_effort" and st["resampled"] else ""))  # fmt: skip
        note = features
        if verdicts["strict"][name] is not None:
            note = f"{keyword(verdicts['strict'][name])}; left: {', '.join(left[name])}"
        print(f"{name:26} {cells[0]:>11} {cells[1]:>16}  {note[:110]}")

    for mode in ("strict", "best_effort"):
        st_all = stats[mode].values()
        accepted = sum(v is None for v in verdicts[mode].values())
        rows = sum(st["rows"] for st in st_all)
        finished = sum(st["finished"] for st in st_all)
        valid = sum(st["valid"] for st in st_all)
        fmt = sum(st["fmt"] for st in st_all)
        trunc = sum(st["length"] for st in st_all)
        early = sum(st["budget"] for st in st_all)
        resampled = sum(st["resampled"] for st in st_all)
        print(
            f"\n{mode}: schemas accepted {accepted}/{n_all} ({100 * accepted / n_all:.0f}%); "
            f"outputs that validate (the schema's own draft): {valid}/{rows} "
            f"({100 * valid / max(rows, 1):.1f}%); finished (stop or budget) {finished}, "
            f"closed early {early}, truncated {trunc}"
            f"\n  with format assertion on: {fmt}/{rows} ({100 * fmt / max(rows, 1):.1f}%)"
            + (
                f"\n  rows resampled: {resampled}; generate {gen_s[mode]:.1f} s"
                if mode == "best_effort"
                else f"\n  generate {gen_s[mode]:.1f} s"
            )  # fmt: skip
        )
    print(f"  formats jsonschema can assert here: "
          f"{', '.join(sorted(Draft202012Validator.FORMAT_CHECKER.checkers))}")  # fmt: skip
    for mode in ("strict", "best_effort"):
        bad = [(n, st) for n, st in stats[mode].items() if st["problem"]]
        if bad:
            print(f"\nfirst failing output of each schema with one ({mode}):")
            for n, st in bad:
                print(f"  {n}: {st['problem']}")
    print("\nan example output per schema (first valid one, best_effort):")
    for n, st in stats["best_effort"].items():
        if st["example"]:
            print(f"  {n:26} {st['example'][:100]}")
    print(f"\nenforceable(), all {n_all} schemas in both modes: {check_s * 1000:.0f} ms")


DEMO = """version: 1
name: demo
models:
  tiny: {provider: transformers, path: models/tiny}
schemas:
  shipping:
    type: object
    required: [country]
    properties:
      country: {enum: [US, DE]}
      zip: {type: string, pattern: "^[0-9]{5}$"}
    if: {properties: {country: {const: US}}}
    then: {required: [zip]}
prompts:
  ship:
    template: "Where to? {{ question }}"
    output: {schema: shipping}
datasets:
  orders: {path: orders.jsonl}
suites:
  shipping: {prompt: ship, models: [tiny], dataset: orders, metrics: [schema_valid]}
"""


def write_demo_project(dest: Path, model: Path) -> Path:
    import shutil

    dest.mkdir(parents=True)
    (dest / "llmspec.yaml").write_text(DEMO)
    (dest / "orders.jsonl").write_text('{"question": "order 1"}\n')
    shutil.copytree(model, dest / "models" / "tiny")
    return dest


if __name__ == "__main__":
    main()
