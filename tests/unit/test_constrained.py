"""Constrained generation fast path: grammars, token masks, batching, sampling, truncation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from llmspec.constraints import check_enforceable, grammar_for

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Every string and integer is bounded and every object forbids extra keys: a random-weight model
# left free would otherwise wander until max_tokens.
SCHEMAS = {
    "nested": {
        "type": "object",
        "properties": {
            "user": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 0, "maximum": 10000},
                    "email": {"type": "string", "maxLength": 12},
                    "meta": {
                        "type": "object",
                        "properties": {"vip": {"type": "boolean"}},
                        "required": ["vip"],
                        "additionalProperties": False,
                    },
                },
                "required": ["id", "email", "meta"],
                "additionalProperties": False,
            }
        },
        "required": ["user"],
        "additionalProperties": False,
    },
    "array_bounds": {
        "type": "array",
        "items": {"type": "integer", "minimum": -5, "maximum": 5},
        "minItems": 2,
        "maxItems": 4,
    },
    "enum_and_int_bounds": {
        "type": "object",
        "properties": {
            "label": {"enum": ["billing", "shipping", "other", 7, None]},
            "priority": {"type": "integer", "minimum": 1, "maximum": 5},
            "count": {"type": "integer", "exclusiveMinimum": 10, "maximum": 1000},
        },
        "required": ["label", "priority", "count"],
        "additionalProperties": False,
    },
    "pattern": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
            "day": {"type": "string", "pattern": "^2024-(0[1-9]|1[0-2])-[0-2][0-9]$"},
        },
        "required": ["code", "day"],
        "additionalProperties": False,
    },
    "any_of": {
        "type": "object",
        "properties": {
            "v": {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 99},
                    {"type": "boolean"},
                    {"type": "string", "maxLength": 4},
                    {"type": "null"},
                ]
            }
        },
        "required": ["v"],
        "additionalProperties": False,
    },
    "defs_ref": {
        "$defs": {
            "item": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1, "maximum": 999},
                    "ok": {"type": "boolean"},
                    "child": {"anyOf": [{"$ref": "#/$defs/leaf"}, {"type": "null"}]},
                },
                "required": ["id", "ok", "child"],
                "additionalProperties": False,
            },
            "leaf": {
                "type": "object",
                "properties": {"name": {"type": "string", "maxLength": 6}},
                "required": ["name"],
                "additionalProperties": False,
            },
        },
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "items": {"$ref": "#/$defs/item"},
                "minItems": 1,
                "maxItems": 3,
            }
        },
        "required": ["items"],
        "additionalProperties": False,
    },
}
PROMPTS = [
    "Answer in JSON: ",
    "Question: How do I reset my password?\nAnswer:",
    '{"status": "ok", "code": 200, "data": ',
]


# --------------------------------------------------------------------------------------------
# Grammars: no torch needed


def test_grammar_for_shapes():
    assert grammar_for(None) is None
    for constraint in (
        {"json_schema": SCHEMAS["nested"]},
        {"regex": "[0-9]{3}"},
        {"choice": ["yes", "no"]},
    ):
        assert isinstance(grammar_for(constraint), str)
    for bad in (
        {},
        {"regex": 3},
        {"choice": []},
        {"choice": "yes"},
        {"x": 1},
        {"regex": "a", "choice": ["b"]},
    ):
        with pytest.raises(ValueError):
            grammar_for(bad)


def test_check_enforceable():
    for schema in SCHEMAS.values():
        assert check_enforceable({"json_schema": schema}) is None
    assert check_enforceable({"regex": r"[A-Z]{2}-\d+"}) is None
    assert check_enforceable({"choice": ['he said "hi"', "naïve"]}) is None
    assert check_enforceable(None) is None

    message = check_enforceable({"json_schema": {"type": "array", "uniqueItems": True}})
    assert message is not None and "uniqueItems" in message and "\n" not in message
    message = check_enforceable({"json_schema": {"not": {"type": "string"}}})
    assert message is not None and '"not"' in message
    message = check_enforceable({"json_schema": {"type": "string", "pattern": "^(?!x)a+$"}})
    assert message is not None and "look-around" in message and "\n" not in message
    message = check_enforceable({"regex": r"(a)\1"})
    assert message is not None and "backreference" in message
    assert "non-empty" in check_enforceable({"choice": []})


def test_grammar_half_imports_no_heavy_modules():
    code = (
        "import sys\n"
        "from llmspec.constraints import check_enforceable, grammar_for\n"
        "assert check_enforceable({'json_schema': {'type': 'object'}}) is None\n"
        "assert check_enforceable({'json_schema': {'not': {}}})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'guidance', 'ray', 'numpy'))\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# Decoding: a tiny random model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.tinymodel import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=3)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    # Tensors of 64 floats gain nothing from intra-op threads, and on a busy machine the
    # threads' hand-offs cost milliseconds per op.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tokenizer
    torch.set_num_threads(threads)


def _gen(tiny, prompts, constraints, **kw):
    from llmspec.providers.transformers.decode import generate_batch

    model, tokenizer = tiny
    kw.setdefault("max_tokens", 160)
    return generate_batch(model, tokenizer, prompts, constraints, **kw)


def _schema_rows():
    rows = [(p, name) for name in SCHEMAS for p in PROMPTS]
    return [p for p, _ in rows], [{"json_schema": SCHEMAS[n]} for _, n in rows], rows


@pytest.mark.slow
def test_json_schema_outputs_validate_and_unconstrained_do_not(tiny):
    import jsonschema

    prompts, constraints, rows = _schema_rows()
    gens = _gen(tiny, prompts, constraints)
    for (_, name), gen in zip(rows, gens, strict=True):
        assert gen.finish == "stop", (name, gen)
        assert gen.guarantee == "token" and gen.error is None
        jsonschema.validate(json.loads(gen.text), SCHEMAS[name])

    # The same rows without masks: the model alone does not produce valid documents.
    free = _gen(tiny, prompts, [None] * len(prompts), max_tokens=60)
    valid = 0
    for (_, name), gen in zip(rows, free, strict=True):
        assert gen.guarantee == "none"
        try:
            jsonschema.validate(json.loads(gen.text), SCHEMAS[name])
            valid += 1
        except (ValueError, jsonschema.ValidationError):
            pass
    assert valid <= len(rows) // 4


@pytest.mark.slow
def test_regex_and_choice(tiny):
    regexes = [r"[A-Z][a-z]{2,5} [0-9]{1,3}", r"(yes|no), [0-9]{2}\.", r"#[0-9a-f]{6}"]
    choices = ['he said "hi"', "naïve", "a\\b", "refund", "Reset password"]
    prompts = PROMPTS * 2
    constraints = [{"regex": r} for r in regexes] + [{"choice": choices}] * 3
    gens = _gen(tiny, prompts, constraints, max_tokens=40)
    for regex, gen in zip(regexes, gens[:3], strict=True):
        assert gen.finish == "stop" and re.fullmatch(regex, gen.text), (regex, gen)
    for gen in gens[3:]:
        assert gen.finish == "stop" and gen.text in choices, gen


@pytest.mark.slow
def test_greedy_is_deterministic_and_batch_equals_single(tiny):
    prompts, constraints, _ = _schema_rows()
    prompts, constraints = prompts[::2], constraints[::2]
    prompts += ["Hello", "Welcome to Acme support."]
    constraints += [None, {"regex": "[a-z ]{5,20}"}]
    batch = _gen(tiny, prompts, constraints, max_tokens=40)
    assert _gen(tiny, prompts, constraints, max_tokens=40) == batch
    singles = [
        _gen(tiny, [p], [c], max_tokens=40)[0] for p, c in zip(prompts, constraints, strict=True)
    ]
    assert singles == batch


@pytest.mark.slow
def test_continuous_batching_matches_one_batch(tiny):
    # Rows of different lengths (one-token and empty prompts too) join a running batch as
    # others finish; greedy results must not depend on it.
    prompts, constraints, _ = _schema_rows()
    prompts, constraints = prompts[::3], constraints[::3]
    prompts += ["", "x", "Welcome to Acme support. How can we help you today?" * 3]
    constraints += [None, {"regex": "[a-z]{3,9}"}, {"choice": ["yes", "no"]}]
    whole = _gen(tiny, prompts, constraints, max_tokens=40)
    for batch_size in (1, 3):
        assert _gen(tiny, prompts, constraints, max_tokens=40, batch_size=batch_size) == whole


@pytest.mark.slow
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_llama_batch_equals_single(tmp_path_factory, tiny, attn):
    # Llama takes rotary positions from position_ids: left padding, forced-token steps and rows
    # joining mid-batch must all keep each row's positions right.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.tinymodel import build_tiny_model

    path = build_tiny_model(tmp_path_factory.mktemp("llama") / "m", arch="llama", seed=5)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn).eval()
    llama = (model, AutoTokenizer.from_pretrained(path))
    prompts, constraints, _ = _schema_rows()
    prompts, constraints = prompts[1::3] + ["x", ""], constraints[1::3] + [None, {"regex": "a+"}]
    batch = _gen(llama, prompts, constraints, max_tokens=160, batch_size=4)
    singles = [
        _gen(llama, [p], [c], max_tokens=160)[0] for p, c in zip(prompts, constraints, strict=True)
    ]
    assert batch == singles
    for gen in batch[: len(SCHEMAS)]:
        assert gen.finish == "stop"
        json.loads(gen.text)


@pytest.mark.slow
def test_fast_forward_off_still_valid(tiny):
    import jsonschema

    prompts, constraints, rows = _schema_rows()
    gens = _gen(tiny, prompts[::3], constraints[::3], fast_forward=False, overlap=False)
    for (_, name), gen in zip(rows[::3], gens, strict=True):
        assert gen.finish == "stop", (name, gen)
        jsonschema.validate(json.loads(gen.text), SCHEMAS[name])


@pytest.mark.slow
def test_seeded_sampling_is_reproducible_and_batch_independent(tiny):
    prompts, constraints, _ = _schema_rows()
    prompts, constraints = prompts[:6] + ["Hi", "Hi"], constraints[:6] + [None, None]
    seeds = list(range(100, 108))
    kw = {"temperature": 1.0, "top_p": 0.9, "max_tokens": 40}
    first = _gen(tiny, prompts, constraints, seeds=seeds, **kw)
    assert _gen(tiny, prompts, constraints, seeds=seeds, **kw) == first
    # A row without a seed still samples (differently each time, so only its shape is checked).
    unseeded = _gen(tiny, prompts[:2], constraints[:2], seeds=[None, 7], **kw)
    assert all(g.finish != "error" and g.guarantee == "token" for g in unseeded)
    # Rows 6 and 7 share the prompt but not the seed.
    assert first[6] != first[7]
    assert _gen(tiny, prompts, constraints, seeds=[s + 1 for s in seeds], **kw) != first
    # A row's draws come from its own generator, so it samples the same alone.
    assert _gen(tiny, prompts[2:3], constraints[2:3], seeds=seeds[2:3], **kw) == first[2:3]
    assert _gen(tiny, prompts[7:], constraints[7:], seeds=seeds[7:], **kw) == first[7:]


@pytest.mark.slow
def test_truncation_gives_length(tiny):
    constraints = [{"json_schema": SCHEMAS["nested"]}, None, {"regex": "[a-z]{200}"}]
    gens = _gen(tiny, PROMPTS, constraints, max_tokens=5, min_tokens=5)
    for gen in gens:
        assert gen.finish == "length" and gen.tokens == 5 and gen.error is None
    assert gens[0].text.startswith('{"') and gens[0].guarantee == "token"
    gens = _gen(tiny, PROMPTS[:1], [{"choice": ["x"]}], max_tokens=0)
    assert gens == [gens[0]] and gens[0].finish == "length" and gens[0].tokens == 0


@pytest.mark.slow
def test_cut_utf8_does_not_raise(tiny):
    # "ü" is two bytes and the tiny tokenizer has no token for it; one token cuts it in half.
    gen = _gen(tiny, ["x"], [{"regex": "ü{4}"}], max_tokens=1)[0]
    assert gen.finish == "length" and gen.tokens == 1 and gen.text == "\ufffd"
    full = _gen(tiny, ["x"], [{"regex": "ü{4}"}], max_tokens=20)[0]
    assert full.finish == "stop" and full.text == "üüüü"


@pytest.mark.slow
def test_bad_constraint_is_a_row_error(tiny):
    gens = _gen(
        tiny,
        PROMPTS[:2],
        [{"json_schema": {"type": "array", "uniqueItems": True}}, {"choice": ["ok"]}],
        max_tokens=10,
    )
    assert gens[0].finish == "error" and "uniqueItems" in gens[0].error
    assert gens[0].guarantee == "none"
    assert gens[1].text == "ok" and gens[1].finish == "stop"


@pytest.mark.slow
def test_model_vocab_larger_than_tokenizer(tiny):
    import copy

    model, tokenizer = tiny
    big = copy.deepcopy(model)
    big.resize_token_embeddings(len(tokenizer) + 40, mean_resizing=False)
    n_tok = len(tokenizer)

    def boost_padding_rows(_module, _inputs, output):
        # Make the ids the tokenizer lacks the most likely ones: only masking keeps them out.
        output.logits[..., n_tok:] += 1e4
        return output

    big.register_forward_hook(boost_padding_rows)
    prompts = PROMPTS
    constraints = [{"json_schema": SCHEMAS["pattern"]}, None, {"choice": ["yes", "no"]}]
    assert _gen((big, tokenizer), prompts, constraints, max_tokens=30) == _gen(
        tiny, prompts, constraints, max_tokens=30
    )


@pytest.mark.slow
def test_llg_tokenizer_is_cached(tiny):
    from llmspec.providers.transformers.masks import llg_tokenizer_for

    _, tokenizer = tiny
    assert llg_tokenizer_for(tokenizer) is llg_tokenizer_for(tokenizer)
