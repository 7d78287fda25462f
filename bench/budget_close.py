"""Valid output at any token budget: `on_budget: close` against `truncate`, side by side.

Two questions, on the same rows, models and seeds:

1. **Validity.** With a budget below what outputs usually take, how many rows end valid?
   Rows: a JSON schema whose `answer` allows 120 characters (the support-bot case), a
   support-ticket schema, a regex and a choice, `--rows` prompts each. Models: the default
   tiny GPT-2 (`llmspec tiny-model`, 2 x 64) decoding greedily and the tiny Llama (4 x 256)
   sampling at temperature 0.7, at `max_tokens` 32 and 48. For every row whose budget is at
   least the first witness's length (`budget.tokens_to_finish`), `close` must end valid; the
   table says how many rows that is and how many of them did.
2. **Cost per token.** Milliseconds per generated token of the same batch decoded with
   `close` and with `truncate`, interleaved rounds, medians: at a generous budget (steering
   never has to step in: the bookkeeping alone) and at a tight one (48 tokens: most rows are
   steered onto a completion).

    .venv/bin/python bench/budget_close.py [--rows 24] [--rounds 5] [--threads 1]
    .venv/bin/python bench/budget_close.py --smoke      # a few rows, one round

The ratios are what a shared, noisy machine measures reliably; absolute times are not.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _tiny  # noqa: F401  (sets HF_HUB_OFFLINE and sys.path)
from _tiny import load_avg, med, rng, rounds

ANSWER = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "maxLength": 120}},
}
CONSTRAINTS = {
    "answer (maxLength 120)": {"json_schema": ANSWER},
    "ticket": {"json_schema": _tiny.TICKET},
    "regex": {"regex": r"[A-Z][a-z]{2,30}( [a-z]{2,12}){0,6}\."},
    "choice": {"choice": ["refund", "replacement", "escalate to a human agent"]},
}


def _models(tmp: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.tinymodel import build_tiny_model

    gpt2 = build_tiny_model(tmp / "gpt2", seed=7)
    llama, _ = _tiny.build_model(tmp / "llama")
    out = {}
    for name, path, temperature in (("tiny GPT-2, greedy", gpt2, 0.0),
                                    ("tiny Llama, T=0.7", llama, 0.7)):  # fmt: skip
        tok = AutoTokenizer.from_pretrained(path)
        out[name] = (AutoModelForCausalLM.from_pretrained(path).eval(), tok, temperature)
    return out


def _run(model, tok, llg, kinds, rows, on_budget, max_tokens, temperature):
    """One batch: `rows` rows of each constraint in `kinds`. Returns (kind, generation) pairs
    and the seconds the batch took."""
    from llmspec.providers.transformers.decode import generate_batch

    labels = [k for k in kinds for _ in range(rows)]
    prompts = [f"Ticket {i}: {_tiny._ISSUES[i % len(_tiny._ISSUES)]}. Reply:"
               for i in range(len(labels))]  # fmt: skip
    t0 = time.perf_counter()
    gens = generate_batch(
        model, tok, prompts, [dict(CONSTRAINTS[k], on_budget=on_budget) for k in labels],
        max_tokens=max_tokens, temperature=temperature, seeds=list(range(len(prompts))),
        llg_tokenizer=llg, batch_size=16,
    )  # fmt: skip
    return list(zip(labels, gens, strict=True)), time.perf_counter() - t0


def validity(models, rows: int, budgets: tuple[int, ...]) -> bool:
    from llmspec.constraints import Constraint
    from llmspec.providers.transformers.budget import tokens_to_finish
    from llmspec.providers.transformers.masks import llg_tokenizer_for

    print("\n1. rows that end valid (schema or pattern satisfied): truncate, then close")
    print(f"{'model':20} {'max_tokens':>10} {'constraint':24} {'truncate':>9} {'close':>9} "
          f"{'closed early':>12} {'within budget':>13} {'of those valid':>14}")  # fmt: skip
    ok = True
    for name, (model, tok, temperature) in models.items():
        llg = llg_tokenizer_for(tok)
        for max_tokens in budgets:
            runs = {mode: _run(model, tok, llg, list(CONSTRAINTS), rows, mode, max_tokens,
                               temperature)[0] for mode in ("truncate", "close")}  # fmt: skip
            for kind, raw in CONSTRAINTS.items():
                c = Constraint.of(raw)
                need = tokens_to_finish(c.grammar(), llg)
                cut = [g for k, g in runs["truncate"] if k == kind]
                closed = [g for k, g in runs["close"] if k == kind]
                valid_cut = sum(c.check(g.text) is None for g in cut)
                valid = sum(c.check(g.text) is None for g in closed)
                early = sum(g.finish == "budget" for g in closed)
                within = closed if need is not None and need <= max_tokens else []
                within_valid = sum(c.check(g.text) is None for g in within)
                ok &= within_valid == len(within)
                print(f"{name:20} {max_tokens:10d} {kind:24} {valid_cut:4d}/{len(cut):<4d} "
                      f"{valid:4d}/{len(closed):<4d} {early:12d} {len(within):13d} "
                      f"{within_valid:14d}   (first witness: {need} tokens)")  # fmt: skip
    return ok


def _timed(per_token: dict, batch: tuple, mode: str) -> float:
    """One timed batch; its milliseconds per generated token go to `per_token[mode]`."""
    model, tok, llg, kinds, rows, max_tokens, temperature = batch
    pairs, seconds = _run(model, tok, llg, kinds, rows, mode, max_tokens, temperature)
    per_token[mode].append(seconds * 1000 / max(1, sum(g.tokens for _, g in pairs)))
    return seconds


def cost(models, rows: int, reps: int) -> None:
    from functools import partial

    from llmspec.providers.transformers.masks import llg_tokenizer_for

    print("\n2. milliseconds per generated token, close vs truncate (same rows, interleaved)")
    for name, (model, tok, temperature) in models.items():
        llg = llg_tokenizer_for(tok)
        kinds = ["answer (maxLength 120)", "ticket"]
        for label, max_tokens in (("generous budget (256)", 256), ("tight budget (48)", 48)):
            per_token: dict[str, list[float]] = {"truncate": [], "close": []}
            batch = (model, tok, llg, kinds, rows, max_tokens, temperature)
            _run(model, tok, llg, kinds, 2, "close", 8, temperature)  # warm caches
            rounds({m: partial(_timed, per_token, batch, m) for m in per_token}, reps)
            t, c = med(per_token["truncate"]), med(per_token["close"])
            print(f"  {name:20} {label:22} truncate {t:.3f} ms/token "
                  f"({rng(per_token['truncate'], digits=3)}), close {c:.3f} "
                  f"({rng(per_token['close'], digits=3)}): ratio {c / t:.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=24, help="rows per constraint")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--smoke", action="store_true", help="3 rows per constraint, one round")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.rounds = 3, 1
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average at start: {load_avg()}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        models = _models(Path(tmp))
        ok = validity(models, args.rows, (32, 48) if not args.smoke else (32,))
        cost(models, args.rows, args.rounds)
    print(f"\nevery row within its budget ended valid: {'yes' if ok else 'NO'}")
    print(f"load average at end: {load_avg()}; total {time.perf_counter() - t0:.0f} s")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
