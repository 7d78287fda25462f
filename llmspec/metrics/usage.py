"""What a generation cost: its time, its tokens, its price.

`latency` is each row's own time to completion (for rows decoded in a batch: from the start
of the batch until that row finished, which is what a caller waiting for it sees); `ttft` the
time to its first token where the provider gives it. Both vary run to run and stay out of the
lock. Tokens and cost are deterministic for local models.
"""

from __future__ import annotations

from typing import Any

Rows = list[dict[str, Any]]


def latency(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return [r.get("seconds") for r in rows]


def ttft(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return [r.get("first_token_seconds") for r in rows]


def tokens_in(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return [None if r.get("prompt_tokens") is None else float(r["prompt_tokens"]) for r in rows]


def tokens_out(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return [None if r.get("tokens") is None else float(r["tokens"]) for r in rows]


def cost(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    """Per row: prompt tokens x input price + generated tokens x output price, per 1,000.
    `opts["price"]` is the variant's model's `price` (filled in by compile)."""
    price = opts.get("price") or {}
    pin, pout = price.get("input_per_1k", 0.0), price.get("output_per_1k", 0.0)
    out: list[float | None] = []
    for r in rows:
        if r.get("prompt_tokens") is None or r.get("tokens") is None:
            out.append(None)
        else:
            out.append(r["prompt_tokens"] / 1000 * pin + r["tokens"] / 1000 * pout)
    return out
