"""`on_budget: close`: every constrained row whose `max_tokens` reaches the first witness's
length ends valid (JSON schema, regex, choice; batched; greedy and sampled), while `truncate`
leaves such rows cut off; rows with room to spare decode exactly as before."""

from __future__ import annotations

import json

import pytest

from llmspec.constraints import Constraint

pytestmark = pytest.mark.slow

# An answer of up to 120 characters: with a small budget most rows run out mid-string.
ANSWER = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "maxLength": 120}},
}
TICKET = {
    "type": "object",
    "required": ["category", "priority", "summary"],
    "additionalProperties": False,
    "properties": {
        "category": {"enum": ["billing", "shipping", "refund", "other"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "summary": {"type": "string", "minLength": 3, "maxLength": 60},
        "tags": {"type": "array", "maxItems": 4, "items": {"type": "string", "maxLength": 8}},
    },
}
ITEMS = {
    "type": "object",
    "required": ["items"],
    "additionalProperties": False,
    "properties": {
        "items": {
            "type": "array",
            "minItems": 2,
            "items": {
                "type": "object",
                "required": ["id", "name"],
                "additionalProperties": False,
                "properties": {
                    "id": {"type": "integer", "minimum": 100},
                    "name": {"type": "string", "minLength": 2},
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
            },
        }
    },
}
CONSTRAINTS = [
    {"json_schema": ANSWER},
    {"json_schema": TICKET},
    {"json_schema": ITEMS},
    {"regex": r"[a-z]{3,40}-[0-9]{2,6}"},
    {"regex": r"(yes|no)(, [a-z ]{1,30})?\."},
    {"choice": ["refund", "no", "escalate to a human agent"]},
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.providers.transformers.masks import llg_tokenizer_for

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model, tokenizer, llg_tokenizer_for(tokenizer)
    torch.set_num_threads(threads)


def _needs(llg, constraints):
    from llmspec.providers.transformers.budget import tokens_to_finish

    return [tokens_to_finish(Constraint.of(c).grammar(), llg) for c in constraints]


def test_witnesses_complete_every_constraint(tiny) -> None:
    from llmspec.providers.transformers.budget import complete
    from llmspec.providers.transformers.masks import new_matcher

    _, _, llg = tiny
    for raw in CONSTRAINTS:
        c = Constraint.of(raw)
        m = new_matcher(c.grammar(), llg)
        w = complete(m, llg, 4096)
        assert w is not None, raw
        assert m.validate_tokens([*w, llg.eos_token]) == len(w) + 1
        assert c.check(llg.decode_str(w)) is None, (raw, llg.decode_str(w))
        # a limit is a limit: nothing longer comes back
        shorter = complete(m, llg, len(w) - 1)
        assert shorter is None or len(shorter) <= len(w) - 1


def _run(tiny, budgets, on_budget, temperature, batch_size=8):
    from llmspec.providers.transformers.decode import generate_batch

    model, tokenizer, llg = tiny
    rows = [(c, b) for c, bs in zip(CONSTRAINTS, budgets, strict=True) for b in bs]
    out = []
    for max_tokens in sorted({b for _, b in rows}):
        group = [(i, c) for i, (c, b) in enumerate(rows) if b == max_tokens]
        gens = generate_batch(
            model,
            tokenizer,
            [f"Ticket {i}: my parcel is late, what now?" for i, _ in group],
            [dict(c, on_budget=on_budget) for _, c in group],
            max_tokens=max_tokens,
            temperature=temperature,
            seeds=[1000 + i for i, _ in group],
            llg_tokenizer=llg,
            batch_size=batch_size,
        )
        out += [(i, c, max_tokens, g) for (i, c), g in zip(group, gens, strict=True)]
    return sorted(out, key=lambda x: x[0])


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_rows_within_their_budget_end_valid(tiny, temperature) -> None:
    _, _, llg = tiny
    needs = _needs(llg, CONSTRAINTS)
    assert all(n is not None for n in needs), needs
    # Budgets at the witness's length and a little above: the tight cases.
    budgets = [[n, n + 1, n + 2, n + 5, n + 11, 2 * n] for n in needs]
    closed = _run(tiny, budgets, "close", temperature)
    cut = _run(tiny, budgets, "truncate", temperature)
    for _, c, max_tokens, g in closed:
        assert g.finish in ("stop", "budget"), (c, max_tokens, g)
        assert g.tokens <= max_tokens
        assert Constraint.of(c).check(g.text) is None, (c, max_tokens, g.text)
    finishes = [g.finish for *_, g in closed]
    assert "budget" in finishes
    # The same rows cut off: many end truncated and invalid.
    invalid = [g for _, c, _, g in cut if Constraint.of(c).check(g.text) is not None]
    assert len(invalid) >= len(cut) // 4, [g.text for *_, g in cut]
    assert all(g.finish == "length" for g in invalid)


def test_below_the_witness_a_row_is_cut_off_as_before(tiny) -> None:
    _, _, llg = tiny
    needs = _needs(llg, CONSTRAINTS[:3])
    closed = _run(tiny, [[n - 1] for n in needs] + [[], [], []], "close", 0.0)
    for _, _, _, g in closed:
        assert g.finish in ("length", "stop")


def test_rows_with_room_decode_as_without_steering(tiny) -> None:
    # A budget no output needs: steering never replaces a token.
    budgets = [[400]] * len(CONSTRAINTS)
    for temperature in (0.0, 1.0):
        closed = _run(tiny, budgets, "close", temperature)
        cut = _run(tiny, budgets, "truncate", temperature)
        for (_, c, _, a), (_, _, _, b) in zip(closed, cut, strict=True):
            if b.finish == "stop":
                assert (a.text, a.finish) == (b.text, b.finish), c


def test_steered_batch_equals_single_rows(tiny) -> None:
    from llmspec.providers.transformers.decode import generate_batch

    model, tokenizer, llg = tiny
    constraints = [dict(c) for c in CONSTRAINTS] * 2
    prompts = [f"Row {i}:" for i in range(len(constraints))]
    kw = {"max_tokens": 24, "temperature": 0.8, "llg_tokenizer": llg}
    seeds = list(range(len(prompts)))
    batch = generate_batch(model, tokenizer, prompts, constraints, seeds=seeds, batch_size=5, **kw)
    singles = [
        generate_batch(model, tokenizer, [p], [c], seeds=[s], **kw)[0]
        for p, c, s in zip(prompts, constraints, seeds, strict=True)
    ]
    assert [(g.text, g.finish) for g in batch] == [(g.text, g.finish) for g in singles]


def test_the_tiny_example_at_32_tokens_ends_valid(tiny) -> None:
    # The README's first run with `max_tokens: 32`: every answer now ends valid JSON.
    from llmspec.providers.transformers.decode import generate_batch

    model, tokenizer, llg = tiny
    schema = {
        "type": "object",
        "required": ["answer", "confidence"],
        "additionalProperties": False,
        "properties": {
            "answer": {"type": "string", "maxLength": 80},
            "confidence": {"type": "string", "enum": ["low", "medium", "high"]},
        },
    }
    prompts = [f"Question {i}: how do I reset my password?\nAnswer:" for i in range(24)]
    for on_budget, want in (("truncate", False), ("close", True)):
        gens = generate_batch(
            model, tokenizer, prompts, [{"json_schema": schema, "on_budget": on_budget}] * 24,
            max_tokens=32, temperature=0.7, seeds=list(range(24)), llg_tokenizer=llg,
        )  # fmt: skip
        valid = [Constraint("json_schema", schema).check(g.text) is None for g in gens]
        if want:
            assert all(valid) and all(g.finish in ("stop", "budget") for g in gens)
            json.loads(gens[0].text)
        else:
            assert not all(valid)
