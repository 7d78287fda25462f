"""Batched constrained generation vs one-at-a-time guidance, on the same rows and model.

Ours: `generate_batch` over all rows with ``batch_size=--batch`` (16 rows decode at once; a
waiting row takes a finished row's slot), and, for reference, the same in separate calls of 16
rows each (a batch ends with its slowest row). Theirs: guidance 0.3.1,
``guidance.models.Transformers(model, tokenizer)`` and ``guidance.json(schema=...)``, one row at a
time (monitoring off, so its background thread does not share the CPU). Same random Llama
(4 layers x 256 wide), same prompts and schemas, same ``max_tokens``, temperature and compact
separators; guidance samples from numpy's global RNG, seeded per row. A random-weight model can
cut UTF-8 inside guidance, which then raises UnicodeDecodeError: counted as an error row.

    .venv/bin/python bench/batching.py [--rows 32] [--batch 16] [--threads 1] [--smoke]

Ours runs ``--repeats`` times (median), guidance once over all rows, split into as many parts
and interleaved with our runs, so both see the same load on a shared machine. Wall and process
CPU time are both shown. Goal: ours >= 5x guidance's rows/s. `--smoke` (4 rows, batch 4, 64
tokens, 1 repeat) checks in seconds that the benchmark runs; its figures mean little.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _tiny import TICKET  # noqa: E402 - the schema the Ray benchmarks use too

PRODUCT = {
    "$defs": {
        "price": {
            "type": "object",
            "properties": {
                "amount": {"type": "integer", "minimum": 0, "maximum": 100000},
                "currency": {"enum": ["EUR", "USD"]},
            },
            "required": ["amount", "currency"],
            "additionalProperties": False,
        }
    },
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "sku": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{4}$"},
        "price": {"$ref": "#/$defs/price"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3},
    },
    "required": ["name", "sku", "price", "tags"],
    "additionalProperties": False,
}


def make_rows(n: int) -> list[tuple[str, dict]]:
    rows = []
    for i in range(n):
        if i % 2:
            rows.append((f"Product page {i}: Acme Router X{i}, Wi-Fi 6. As JSON: ", PRODUCT))
        else:
            prompt = f"Ticket {i}: my order #{10480 + i} did not arrive. Classify as JSON: "
            rows.append((prompt, TICKET))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=100)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="ours: runs (median); guidance: once, in as many parts",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--smoke", action="store_true", help="4 rows, batch 4, 64 tokens, 1 repeat")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.batch, args.max_tokens, args.repeats = 4, 4, 64, 1

    import guidance
    import jsonschema
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmspec.constraints import Constraint, engine_version
    from llmspec.providers.transformers.decode import generate_batch
    from llmspec.tinymodel import build_tiny_model

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(Path(tmp) / "m", arch="llama", layers=4, hidden=256, heads=4)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path).eval()
    rows = make_rows(args.rows)

    def valid(text: str, schema: dict) -> bool:
        try:
            jsonschema.validate(json.loads(text), schema)
            return True
        except (ValueError, jsonschema.ValidationError):
            return False

    # -- ours ------------------------------------------------------------------------------
    def ours(continuous: bool):
        if continuous:
            chunks = [(0, rows)]
        else:
            chunks = [(i, rows[i : i + args.batch]) for i in range(0, len(rows), args.batch)]
        gens = []
        for start, chunk in chunks:
            gens += generate_batch(
                model,
                tokenizer,
                [p for p, _ in chunk],
                [Constraint("json_schema", s) for _, s in chunk],
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                seeds=list(range(start, start + len(chunk))),
                batch_size=args.batch,
            )
        return gens

    # -- guidance, one row at a time -------------------------------------------------------
    lm0 = guidance.models.Transformers(model, tokenizer, echo=False, enable_monitoring=False)

    def theirs(prompt: str, schema: dict, seed: int) -> str | None:
        np.random.seed(seed)
        try:
            lm = lm0 + prompt
            lm += guidance.json(
                "out",
                schema=schema,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                separators=(", ", ": "),
            )
        except UnicodeDecodeError:
            return None
        return lm["out"]

    # -- measure: interleaved, so both sides see the same machine load ---------------------
    ours(True)  # warm up: llguidance tokenizer, grammar compile
    theirs(*rows[0], seed=0)
    clock = {"wall": time.perf_counter, "cpu": time.process_time}
    ours_t: dict[bool, dict[str, list[float]]] = {c: {"wall": [], "cpu": []} for c in (1, 0)}
    ours_gens: dict[bool, list] = {}
    g_t = {"wall": 0.0, "cpu": 0.0}
    g_texts: list[str | None] = []
    share = -(-len(rows) // args.repeats)
    for r in range(args.repeats):
        for continuous in (True, False):
            start = {k: f() for k, f in clock.items()}
            ours_gens[continuous] = ours(continuous)
            for k, f in clock.items():
                ours_t[continuous][k].append(f() - start[k])
        start = {k: f() for k, f in clock.items()}
        for i in range(r * share, min(len(rows), (r + 1) * share)):
            g_texts.append(theirs(*rows[i], seed=i))
        for k, f in clock.items():
            g_t[k] += f() - start[k]

    n = len(rows)
    print(
        f"model llama 4x256, {n} rows (2 schemas), max_tokens {args.max_tokens}, "
        f"temperature {args.temperature}, torch threads {args.threads}"
    )
    print(f"guidance {guidance.__version__}, {engine_version()}")
    print(
        f"{'':34} {'wall s':>7} {'rows/s':>7} {'cpu s':>7} {'tokens':>7} {'valid':>6} {'errors':>6}"
    )
    for continuous, name in ((True, "continuous"), (False, "separate calls")):
        gens = ours_gens[continuous]
        wall = statistics.median(ours_t[continuous]["wall"])
        cpu = statistics.median(ours_t[continuous]["cpu"])
        ok = sum(valid(g.text, s) for g, (_, s) in zip(gens, rows, strict=True))
        errors = sum(g.finish == "error" for g in gens)
        label = f"ours, batch {args.batch}, {name}"
        print(
            f"{label:34} {wall:7.2f} {n / wall:7.1f} {cpu:7.2f} {sum(g.tokens for g in gens):7d} "
            f"{ok:6d} {errors:6d}"
        )
    ok = sum(x is not None and valid(x, s) for x, (_, s) in zip(g_texts, rows, strict=True))
    tokens = sum(len(tokenizer(x)["input_ids"]) for x in g_texts if x is not None)
    errors = sum(x is None for x in g_texts)
    label = "guidance, one at a time"
    print(
        f"{label:34} {g_t['wall']:7.2f} {n / g_t['wall']:7.1f} {g_t['cpu']:7.2f} {tokens:7d} "
        f"{ok:6d} {errors:6d}"
    )
    for k in ("wall", "cpu"):
        cont = g_t[k] / statistics.median(ours_t[True][k])
        sep = g_t[k] / statistics.median(ours_t[False][k])
        print(f"speed-up by {k} time: {cont:.2f}x continuous, {sep:.2f}x separate calls")
    print("goal: >= 5x rows/s")


if __name__ == "__main__":
    main()
