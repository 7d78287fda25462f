"""Which real-world JSON Schemas llmspec can enforce while decoding, and whether every output
of an enforced schema validates.

37 schemas in the style of API payloads and LLM extraction targets (nested objects, arrays with
minItems/maxItems, enums, numeric bounds, patterns, anyOf/oneOf, $defs/$ref, additionalProperties
true/false/schema, string formats, const, nullable types, recursive refs, uniqueItems,
if/then/else, ...), all valid Draft 2020-12 and, where they compile, of bounded size (one
exception, listed in UNBOUNDED and reported apart). For each:

1. `check_enforceable({"json_schema": schema})` (what `llmspec validate` runs, error E036);
2. if it compiles, `generate_batch` with the tiny random Llama (4 layers x 256 wide) on
   --rows rows per schema (temperature 1.0, a seed per row, max_tokens --max-tokens), all
   schemas' rows in one call with batch_size 16;
3. every output parsed and validated with jsonschema's `Draft202012Validator` (format as an
   annotation, the 2020-12 default and what llmspec's own check does), and again with format
   assertion on (`FORMAT_CHECKER`), shown apart.

A random-weight model is the harshest user of a grammar: it takes any branch the mask allows.
Then `llmspec validate` runs on a tiny project whose schema uses a keyword the engine cannot
enforce, to show the diagnostic naming it.

    .venv/bin/python bench/schema_coverage.py [--quick] [--rows 16] [--max-tokens 512]

Goal: every output of a schema that compiles validates (100%).
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


# Compiled schemas whose outputs have no size bound: a random model may run out of max_tokens.
UNBOUNDED = {
    "settings_map_plain": "property names have no length bound (propertyNames is not enforceable)"
}


def keyword(reason: str) -> str:
    """The keyword a check_enforceable reason names."""
    m = re.search(r"Unimplemented keys: \[(.*?)\]", reason)
    if m:
        return ", ".join(k.strip().strip('"') for k in m.group(1).split(","))
    m = re.search(r"Unknown format: (\S+)", reason)
    if m:
        return f"format: {m.group(1)}"
    if reason.startswith("oneOf"):
        return "oneOf"
    if "look-around" in reason:
        return "pattern (look-around)"
    if "backreference" in reason:
        return "pattern (backreference)"
    return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rows per schema")
    ap.add_argument("--rows", type=int, default=16, help="rows per compiled schema")
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    if args.quick:
        args.rows = 3
    t_all = time.perf_counter()
    print(f"load average at start: {load_avg()}", flush=True)

    import torch
    from jsonschema import Draft202012Validator
    from llmspec.providers.constrained import check_enforceable, engine_version, generate_batch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)

    # 1. every schema is valid Draft 2020-12; which ones compile
    verdicts: dict[str, str | None] = {}
    t0 = time.perf_counter()
    for name, _, schema in SCHEMAS:
        Draft202012Validator.check_schema(schema)
        verdicts[name] = check_enforceable({"json_schema": schema})
    check_s = time.perf_counter() - t0
    compiled = [(n, s) for n, _, s in SCHEMAS if verdicts[n] is None]

    # 2. generate
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = build_model(Path(tmp) / "model")
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        prompts, constraints, owners = [], [], []
        for name, schema in compiled:
            for i in range(args.rows):
                prompts.append(f"Reply with a JSON value for `{name}` (example {i}):\n")
                constraints.append({"json_schema": schema})
                owners.append(name)
        t0 = time.perf_counter()
        gens = generate_batch(
            model,
            tok,
            prompts,
            constraints,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            seeds=list(range(len(prompts))),
            batch_size=16,
        )
        gen_s = time.perf_counter() - t0

        # 3. validate
        by_name = {n: s for n, _, s in SCHEMAS}
        stats: dict[str, dict] = {
            n: {
                "rows": 0,
                "valid": 0,
                "fmt": 0,
                "length": 0,
                "error": 0,
                "tokens": 0,
                "first_problem": None,
                "example": None,
            }
            for n, _ in compiled
        }
        for name, g in zip(owners, gens, strict=True):
            st = stats[name]
            st["rows"] += 1
            st["tokens"] = max(st["tokens"], g.tokens)
            if g.finish == "length":
                st["length"] += 1
            if g.finish == "error":
                st["error"] += 1
            problem = None
            try:
                value = json.loads(g.text)
            except ValueError as e:
                problem = f"not JSON ({g.finish}): {e.msg}"
            if problem is None:
                errs = list(Draft202012Validator(by_name[name]).iter_errors(value))
                if errs:
                    problem = f"{errs[0].message[:70]} at {list(errs[0].absolute_path)}"
                else:
                    st["valid"] += 1
                    st["example"] = st["example"] or g.text
                checker = Draft202012Validator(
                    by_name[name], format_checker=Draft202012Validator.FORMAT_CHECKER
                )
                st["fmt"] += not list(checker.iter_errors(value))
            if problem and st["first_problem"] is None:
                st["first_problem"] = f"{problem}: {g.text[:80]!r}"

        # 4. llmspec validate on a project with a schema the engine cannot enforce
        demo = write_demo_project(Path(tmp) / "demo")
        llmspec = Path(sys.executable).parent / "llmspec"
        proc = subprocess.run(
            [str(llmspec), "validate", str(demo)], capture_output=True, text=True, cwd=tmp
        )

    # -- report -----------------------------------------------------------------------------
    n_all = len(SCHEMAS)
    print(
        f"\n{engine_version()}; model {_tiny.ARCH} {_tiny.LAYERS}x{_tiny.HIDDEN}; "
        f"{args.rows} rows per compiled schema, temperature {args.temperature}, "
        f"max_tokens {args.max_tokens}, batch_size 16"
    )
    print(
        f"\n{'schema':24} {'compiles':8} {'rows':>4} {'valid':>5} {'+fmt':>4} {'trunc':>5} "
        f"{'err':>3} {'max tok':>7}  features / reason"
    )
    for name, features, _ in SCHEMAS:
        reason = verdicts[name]
        if reason is not None:
            print(
                f"{name:24} {'no':8} {'':>4} {'':>5} {'':>4} {'':>5} {'':>3} {'':>7}  "
                f"{keyword(reason)}: {reason}"
            )
            continue
        st = stats[name]
        print(
            f"{name:24} {'yes':8} {st['rows']:4d} {st['valid']:5d} {st['fmt']:4d} "
            f"{st['length']:5d} {st['error']:3d} {st['tokens']:7d}  {features}"
        )
    rows = sum(st["rows"] for st in stats.values())
    valid = sum(st["valid"] for st in stats.values())
    fmt = sum(st["fmt"] for st in stats.values())
    trunc = sum(st["length"] for st in stats.values())
    bounded = {n: st for n, st in stats.items() if n not in UNBOUNDED}
    b_rows = sum(st["rows"] for st in bounded.values())
    b_valid = sum(st["valid"] for st in bounded.values())
    b_trunc = sum(st["length"] for st in bounded.values())
    print(
        f"\nschemas that compile: {len(compiled)}/{n_all} ({100 * len(compiled) / n_all:.0f}%)"
        f"\noutputs of compiled schemas that validate (Draft 2020-12): {valid}/{rows} "
        f"({100 * valid / rows:.1f}%); truncated at max_tokens: {trunc}"
        f"\n  of size-bounded schemas: {b_valid}/{b_rows} ({100 * b_valid / b_rows:.1f}%) "
        f"(goal 100%); truncated: {b_trunc}"
        f"\n  with format assertion on: {fmt}/{rows} ({100 * fmt / rows:.1f}%); formats jsonschema "
        f"can assert here: {', '.join(sorted(Draft202012Validator.FORMAT_CHECKER.checkers))}"
        f"\ncompiled schemas with every output valid: "
        f"{sum(st['valid'] == st['rows'] for st in stats.values())}/{len(compiled)}"
    )
    for n, why in UNBOUNDED.items():
        if n in stats:
            st = stats[n]
            print(
                f"  not size-bounded: {n} ({why}): {st['valid']}/{st['rows']} valid, "
                f"{st['length']} truncated, longest {st['tokens']} tokens"
            )
    bad = [(n, st) for n, st in stats.items() if st["first_problem"]]
    if bad:
        print("\nfirst failing output of each schema with one:")
        for n, st in bad:
            print(f"  {n}: {st['first_problem']}")
    print("\nnot compiled, with the keyword check_enforceable names:")
    for name, _, _ in SCHEMAS:
        if verdicts[name] is not None:
            print(f"  {name:24} {keyword(verdicts[name])}")
    print("\nan example output per schema (first valid one):")
    for n, st in stats.items():
        if st["example"]:
            print(f"  {n:24} {st['example'][:100]}")
    print(
        f"\ncheck_enforceable, all {n_all} schemas: {check_s * 1000:.0f} ms; generate_batch, "
        f"{rows} rows: {gen_s:.1f} s ({rows / gen_s:.1f} rows/s)"
    )
    print(f"\n$ llmspec validate demo   (exit {proc.returncode})")
    print((proc.stdout + proc.stderr).rstrip())
    print(f"\nload average at end: {load_avg()}; total {time.perf_counter() - t_all:.0f} s")


DEMO = """version: 1
name: demo
models:
  tiny: {provider: echo}
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
"""


def write_demo_project(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "llmspec.yaml").write_text(DEMO)
    return dest


if __name__ == "__main__":
    main()
