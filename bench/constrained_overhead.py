"""What do token masks cost? Batched constrained decoding vs the same loop unconstrained.

Both sides run `generate_batch` on the same model (a random Llama, 4 layers x 256 wide), the same
16 prompts and the same number of tokens per row: unconstrained rows may not stop before
``--tokens`` (``min_tokens``), and the schema needs more than ``--tokens`` tokens to complete
(an array with ``minItems``), so every row of both sides ends with ``finish="length"``. Fast
forwarding is off for the ratio, so both sides sample every token with one forward pass per
step; a last line shows what fast-forwarding the forced tokens gives on top.

    .venv/bin/python bench/constrained_overhead.py [--tokens 96] [--rows 16] [--threads 1] [--smoke]

Runs are interleaved and repeated; the figures are medians. Goal: ratio <= 1.10. `--smoke` (4 rows
x 16 tokens, 1 repeat) checks in seconds that the benchmark runs; its figures mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHEMA = {
    "type": "object",
    "properties": {
        "records": {
            "type": "array",
            "minItems": 50,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 20},
                    "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    "email": {"type": "string", "pattern": "^[a-z]{1,8}@[a-z]{1,8}\\.(com|org)$"},
                    "tags": {
                        "type": "array",
                        "items": {"enum": ["billing", "shipping", "refund", "other"]},
                        "maxItems": 3,
                    },
                    "vip": {"type": "boolean"},
                },
                "required": ["name", "age", "email", "tags"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["records"],
    "additionalProperties": False,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--rows", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--arch", default="llama", choices=["llama", "gpt2"])
    ap.add_argument("--smoke", action="store_true", help="4 rows x 16 tokens, 1 repeat")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.tokens, args.repeats = 4, 16, 1

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.constraints import Constraint, engine_version
    from llmspec.providers.transformers import decode
    from llmspec.tinymodel import build_tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "m", arch=args.arch, layers=4, hidden=256, heads=4)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()

    prompts = [
        f"Customer {i} wrote: my order #{10480 + i} has not arrived. Extract the records as JSON: "
        for i in range(args.rows)
    ]
    seeds = list(range(args.rows))
    schema_rows = [Constraint("json_schema", SCHEMA)] * args.rows
    free_rows = [None] * args.rows

    # Time the mask computation wherever it runs (worker thread or inline): the decoding loop
    # calls it through its module's global name.
    mask_times: list[float] = []
    fill = decode.fill_masks

    def timed_fill(*args):
        t = time.perf_counter()
        fill(*args)
        mask_times.append(time.perf_counter() - t)

    decode.fill_masks = timed_fill

    def run(constraints, **kw):
        t = time.perf_counter()
        gens = decode.generate_batch(
            model,
            tokenizer,
            prompts,
            constraints,
            max_tokens=args.tokens,
            temperature=0.7,
            seeds=seeds,
            **kw,
        )
        return time.perf_counter() - t, gens

    configs = {
        "unconstrained": lambda: run(free_rows, min_tokens=args.tokens),
        "constrained, masks overlapped": lambda: run(schema_rows, fast_forward=False),
        "constrained, masks inline": lambda: run(schema_rows, fast_forward=False, overlap=False),
        "constrained + fast-forward": lambda: run(schema_rows),
    }
    for fn in configs.values():  # warm up: grammar compile, llguidance tokenizer, allocator
        fn()
    times: dict[str, list[float]] = {name: [] for name in configs}
    masks: dict[str, list[float]] = {name: [] for name in configs}
    tokens: dict[str, int] = {}
    finishes: dict[str, set[str]] = {}
    for _ in range(args.repeats):
        for name, fn in configs.items():
            mask_times.clear()
            seconds, gens = fn()
            times[name].append(seconds)
            masks[name].extend(mask_times)
            tokens[name] = sum(g.tokens for g in gens)
            finishes[name] = {g.finish for g in gens}

    base = statistics.median(times["unconstrained"])
    steps = args.tokens
    print(
        f"model {args.arch} 4x256, {args.rows} rows x {args.tokens} tokens, "
        f"torch threads {args.threads}, {engine_version()}"
    )
    print(f"{'':32} {'s/run':>7} {'ms/step':>8} {'tok/s':>7} {'ratio':>6} {'mask ms/step':>13}")
    for name in configs:
        t = statistics.median(times[name])
        m = f"{statistics.median(masks[name]) * 1e3:.2f}" if masks[name] else "-"
        per_step = "-" if name.endswith("fast-forward") else f"{t / steps * 1e3:.1f}"
        print(
            f"{name:32} {t:7.3f} {per_step:>8} {tokens[name] / t:7.0f} {t / base:6.3f} {m:>13}"
            f"   tokens={tokens[name]} finish={sorted(finishes[name])}"
        )
    ratio = statistics.median(times["constrained, masks overlapped"]) / base
    print(f"overhead ratio (overlapped masks / unconstrained): {ratio:.3f}  (goal <= 1.10)")


if __name__ == "__main__":
    main()
