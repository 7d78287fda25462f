"""Batched, token-constrained decoding for local transformers models (the fast path).

`generate_batch` decodes all rows of a batch together: a left-padded batch, one forward pass
per step over the KV cache, and one llguidance `LLMatcher` per constrained row whose token masks
are computed for the whole batch at once while the model runs its forward pass::

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    gens = generate_batch(model, tok, ["Answer: ", "Q: 2+2?"],
                          [{"json_schema": {"type": "object"}}, {"choice": ["4", "5"]}],
                          max_tokens=64)
    gens[0].text, gens[0].finish, gens[0].guarantee   # '{"a": 1}', 'stop', 'token'

A constraint is a `llmspec.constraints.Constraint`, its JSON form, or None. Regexes match the
whole output.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from llmspec.constraints import Constraint, shorten
from llmspec.providers.transformers import budget
from llmspec.providers.transformers.kvcache import (
    cache_layers,
    can_merge,
    compact,
    left_pad,
    mask_for,
    merge_caches,
    select_rows,
)
from llmspec.providers.transformers.masks import (
    apply_masks,
    fill_masks,
    llg_tokenizer_for,
    new_matcher,
    overlap_pool,
    sample,
)

if TYPE_CHECKING:  # pragma: no cover - types only
    import torch

Finish = Literal["stop", "length", "budget", "error"]


Guarantee = Literal["token", "none"]


@dataclass(frozen=True, slots=True)
class Generation:
    """One generated row.

    ``tokens`` counts generated tokens (EOS excluded). ``finish`` is ``"stop"`` (EOS, or the
    grammar is complete), ``"length"`` (hit ``max_tokens``; a constrained row then holds a valid
    prefix only), ``"budget"`` (a row with ``on_budget: close`` that was steered to end valid
    within ``max_tokens``, or ended there complete) or ``"error"`` (see ``error``).
    ``guarantee`` is ``"token"`` when token masks enforced the constraint, ``"none"``
    otherwise (no constraint, or its grammar did not compile).
    """

    text: str
    tokens: int
    finish: Finish
    error: str | None = None
    guarantee: Guarantee = "none"
    seconds: float = field(default=0.0, compare=False)  # from the call's start to this row's end
    first_token_seconds: float | None = field(default=None, compare=False)


# Forced tokens are fed with the next step, which pads every row to the longest feed. On a CPU
# each padded column costs real compute, so a long forced run is fed a few tokens per step (4
# measured best for a 4x256 model at batch 16); on an accelerator padding is nearly free.
_MAX_STEP_WIDTH = {"cpu": 4}


_MAX_STEP_WIDTH_DEFAULT = 16
# A steered row whose sampled token would not leave room to finish tries the model's next most
# likely tokens (this many in all) before its witness's own.
_CANDIDATES = 4


@dataclass(slots=True)
class _Row:
    index: int  # position in the caller's lists
    matcher: Any  # LLMatcher or None
    generator: Any  # torch.Generator or None
    ids: list[int] = field(default_factory=list)  # generated so far
    feed: list[int] = field(default_factory=list)  # for the next forward passes
    prefilled: bool = False  # its prompt is in the KV cache
    bad: str | None = None  # set when the matcher failed while computing a mask
    first_at: float | None = None  # when its first token came (perf_counter)
    steer: Any = None  # budget.Steer for `on_budget: close`, None otherwise


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    constraints: Sequence[Constraint | Mapping[str, Any] | None],
    *,
    max_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seeds: Sequence[int | None] | None = None,
    llg_tokenizer: Any = None,
    batch_size: int | None = None,
    add_special_tokens: bool = True,
    min_tokens: int = 0,
    fast_forward: bool = True,
    overlap: bool = True,
) -> list[Generation]:
    """Generate one completion per prompt, all rows decoded together; results in prompt order.

    ``constraints[i]`` constrains row ``i`` (None: free text, stops at EOS). Greedy at
    ``temperature`` 0; otherwise temperature and nucleus (``top_p``) sampling, each row drawing
    from its own generator seeded with ``seeds[i]`` (None: unseeded), so a row's draws do not
    depend on the other rows in the batch. ``llg_tokenizer`` defaults to
    ``llg_tokenizer_for(tokenizer)``. ``add_special_tokens`` is passed to the tokenizer for the
    prompts: say False when they come from a chat template that already holds the BOS token.

    ``batch_size`` caps how many rows decode at once (default: all). Rows wait in order, and a
    waiting row takes the place of a finished one as soon as a slot is free, so a long row does
    not hold up the rest (continuous batching).

    Knobs for benchmarks and debugging: ``min_tokens`` keeps EOS away from unconstrained rows
    for that many tokens. ``fast_forward`` appends the tokens a grammar forces (``{"name": "``)
    without sampling them, several per forward pass. ``overlap`` computes the next token masks
    on a worker thread during the forward pass.

    A constraint with ``on_budget="close"`` (the default) keeps every row able to end valid
    within ``max_tokens`` (see `llmspec.providers.transformers.budget`); with ``"truncate"`` a
    row is cut off at ``max_tokens`` and ends ``"length"``.

    Raises `ValueError` for malformed arguments; a constraint llguidance cannot compile gives
    that row ``finish="error"`` and leaves the others alone.
    """
    import torch

    started = time.perf_counter()
    n = len(prompts)
    if len(constraints) != n:
        raise ValueError(f"{n} prompts but {len(constraints)} constraints")
    if seeds is not None and len(seeds) != n:
        raise ValueError(f"{n} prompts but {len(seeds)} seeds")
    if max_tokens < 0:
        raise ValueError("max_tokens must be >= 0")
    if not 0.0 < top_p <= 1.0:
        raise ValueError("top_p must be in (0, 1]")
    if batch_size is not None and batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    parsed = [Constraint.of(c) for c in constraints]
    grammars = [None if c is None else c.grammar() for c in parsed]
    if n == 0:
        return []

    device = _device_of(model)
    eos_ids = _eos_ids(model, tokenizer)
    results: list[Generation | None] = [None] * n
    if any(g is not None for g in grammars) and llg_tokenizer is None:
        llg_tokenizer = llg_tokenizer_for(tokenizer)

    rows: list[_Row] = []
    witnesses: dict[tuple, Any] = {}
    for i, grammar in enumerate(grammars):
        matcher = None
        if grammar is not None:
            matcher = new_matcher(grammar, llg_tokenizer)
            if matcher.is_error():
                results[i] = Generation("", 0, "error", shorten(matcher.get_error()), "none")
                continue
        generator = None
        if temperature > 0:
            generator = torch.Generator(device=device)
            if seeds is None or seeds[i] is None:
                generator.seed()  # fresh entropy: not reproducible, as asked
            else:
                generator.manual_seed(int(seeds[i]))
        row = _Row(i, matcher, generator)
        ids = tokenizer(prompts[i], add_special_tokens=add_special_tokens)["input_ids"]
        if not ids:  # a model needs at least one position to predict from
            bos = tokenizer.bos_token_id
            ids = [bos if bos is not None else eos_ids[0]]
        row.feed = list(ids)
        finish = _fast_forward(row, max_tokens) if fast_forward else None
        if finish is None and matcher is not None and parsed[i].on_budget == "close":
            # Rows of one grammar start alike: their first witness is found once.
            first = (grammar, tuple(row.ids))
            if first not in witnesses:
                witnesses[first] = budget.start(matcher, llg_tokenizer, max_tokens - len(row.ids))
            row.steer = budget.restart(witnesses[first])
        if finish is None and len(row.ids) >= max_tokens:
            finish = _at_budget(row)
        if finish is None:
            rows.append(row)
        else:
            results[i] = _finish(tokenizer, row, finish, started)

    if rows:
        _decode(
            model,
            tokenizer,
            rows,
            results,
            device=device,
            eos_ids=eos_ids,
            llg_tokenizer=llg_tokenizer,
            max_tokens=max_tokens,
            min_tokens=min_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size or len(rows),
            fast_forward=fast_forward,
            overlap=overlap,
            started=started,
        )
    return [r for r in results if r is not None]


def _decode(
    model: Any,
    tokenizer: Any,
    rows: list[_Row],
    results: list[Generation | None],
    *,
    device: Any,
    eos_ids: list[int],
    llg_tokenizer: Any,
    max_tokens: int,
    min_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    fast_forward: bool,
    overlap: bool,
    started: float,
) -> None:
    from collections import deque

    import torch

    n_tok = len(tokenizer)
    model_vocab = model.get_output_embeddings().weight.shape[0]
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    constrained = any(r.matcher is not None for r in rows)
    if constrained:
        words = (llg_tokenizer.vocab_size + 31) // 32
        # One mask row per batch row; unconstrained rows keep all bits set.
        bitmask = torch.full((min(batch_size, len(rows)), words), -1, dtype=torch.int32)
        if device.type == "cuda":
            bitmask = bitmask.pin_memory()
        shifts = torch.arange(32, dtype=torch.int32, device=device)
        # Tokens the model has but llguidance does not know (padding rows of a larger
        # embedding matrix) have no bytes, so they are never allowed.
        mask_cols = min(words * 32, model_vocab)
    # Tokens the model can emit but the tokenizer cannot decode are never allowed either.
    extra_from = min(n_tok, model_vocab)
    kwargs = {"logits_to_keep": 1} if _accepts_logits_to_keep(model) else {}

    pool = overlap_pool() if overlap and constrained else None
    waiting = deque(rows)
    active = [waiting.popleft() for _ in range(min(batch_size, len(waiting)))]
    # Admitting rows into a running batch merges KV caches; only plain dynamic caches allow it
    # (otherwise a new group starts when the batch has emptied). Admit a few at a time: each
    # admission costs a forward pass of its own.
    refill_at = max(1, batch_size // 4)
    max_width = _MAX_STEP_WIDTH.get(device.type, _MAX_STEP_WIDTH_DEFAULT)
    past = None
    pending = None
    # Real tokens per row so far: the position of its next token.
    next_pos = torch.zeros(len(active), dtype=torch.long)
    attention = torch.zeros((len(active), 0), dtype=torch.long, device=device)

    with torch.inference_mode():
        while True:
            width = max(len(r.feed) for r in active)
            if all(r.prefilled for r in active):
                width = min(width, max_width)
            # Rows with more to feed than this step takes sample nothing this step.
            sampling = [len(r.feed) <= width for r in active]
            if pool is not None:
                # The matchers have consumed every token fed below; their next masks do not
                # depend on this forward pass, so compute them meanwhile (llguidance and
                # torch both release the GIL).
                pending = pool.submit(fill_masks, active, bitmask, sampling)
            input_ids, new_attention, positions = _feed_tensors(active, next_pos, pad_id, width)
            attention = torch.cat([attention, new_attention.to(device)], dim=-1)
            out = model(
                input_ids=input_ids.to(device),
                attention_mask=mask_for(model, attention, input_ids.shape[1]),
                position_ids=positions.to(device),
                past_key_values=past,
                use_cache=True,
                **kwargs,
            )
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            if extra_from < logits.shape[-1]:
                logits[:, extra_from:] = float("-inf")
            if constrained:
                if pending is not None:
                    pending.result()
                else:
                    fill_masks(active, bitmask, sampling)
                apply_masks(logits, bitmask[: len(active)], shifts, mask_cols)
            if min_tokens:
                young = [j for j, r in enumerate(active) if r.matcher is None]
                young = [j for j in young if len(active[j].ids) < min_tokens]
                if young:
                    logits[torch.tensor(young, device=device).unsqueeze(-1), eos] = float("-inf")
            picked = sample(logits, active, sampling, temperature, top_p).tolist()
            ranked = None
            if any(r.steer is not None for r in active):
                k = min(_CANDIDATES, logits.shape[-1])
                ranked = logits.topk(k, dim=-1).indices.tolist()

            keep: list[int] = []
            for j, (row, token) in enumerate(zip(active, picked, strict=True)):
                row.prefilled = True
                if not sampling[j]:
                    keep.append(j)
                    continue
                if row.steer is not None:
                    finish = _advance_steered(
                        row, [token, *ranked[j]], eos_ids, max_tokens, fast_forward, llg_tokenizer
                    )
                else:
                    finish = _advance(row, token, eos_ids, max_tokens, fast_forward)
                if finish is None:
                    keep.append(j)
                else:
                    results[row.index] = _finish(tokenizer, row, finish, started)
            if not keep and not waiting:
                break
            if len(keep) < len(active):
                sel = torch.tensor(keep, dtype=torch.long)
                past = select_rows(past, sel.to(device))
                attention = attention.index_select(0, sel.to(device))
                next_pos = next_pos.index_select(0, sel)
                active = [active[j] for j in keep]
            if active and cache_layers(past) is not None:
                attention = compact(past, attention)
            free = batch_size - len(active)
            if waiting and (not active or (free >= refill_at and can_merge(past))):
                new = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                if active:
                    past, attention, next_pos = _admit(
                        model, new, past, attention, next_pos, pad_id, device, kwargs
                    )
                else:  # start afresh: the new rows' prompts are the next step's input
                    past = None
                    next_pos = torch.zeros(len(new), dtype=torch.long)
                    attention = torch.zeros((len(new), 0), dtype=torch.long, device=device)
                active = active + new


def _admit(model, new, past, attention, next_pos, pad_id, device, kwargs):
    """Prefill ``new`` rows on their own and merge their KV cache into the running batch's.

    Each new row keeps its last token in ``feed``, so it joins the next step like any other row
    and its first mask is computed with the others'.
    """
    import torch

    last = [row.feed[-1] for row in new]
    for row in new:
        row.feed = row.feed[:-1]
    if not any(row.feed for row in new):
        for row in new:  # a one-token prompt: nothing to prefill but a masked placeholder
            row.feed = [pad_id]
        placeholder = True
    else:
        placeholder = False
    new_pos = torch.zeros(len(new), dtype=torch.long)
    ids, new_attention, positions = _feed_tensors(new, new_pos, pad_id)
    if placeholder:
        new_attention.zero_()
        new_pos.zero_()
    out = model(
        input_ids=ids.to(device),
        attention_mask=mask_for(model, new_attention.to(device), ids.shape[1]),
        position_ids=positions.to(device),
        use_cache=True,
        **kwargs,
    )
    for row, token in zip(new, last, strict=True):
        row.feed = [token]
        row.prefilled = True
    past = merge_caches(past, out.past_key_values, attention.shape[1], new_attention.shape[1])
    width = max(attention.shape[1], new_attention.shape[1])
    attention = torch.cat(
        [left_pad(attention, width), left_pad(new_attention.to(device), width)], dim=0
    )
    return past, attention, torch.cat([next_pos, new_pos])


def _feed_tensors(
    active: list[_Row], next_pos: torch.Tensor, pad_id: int, width: int | None = None
):
    """Input ids, attention columns and positions for up to ``width`` of each row's ``feed``.

    Rows feed different numbers of tokens (a prompt, one sampled token, or one plus the tokens
    a grammar forces); shorter feeds are padded on the left and masked, so the last column is
    every row's newest token. The fed tokens leave ``feed``; ``next_pos`` advances in place.
    """
    import torch

    if width is None:
        width = max(len(r.feed) for r in active)
    takes = [r.feed[:width] for r in active]
    lengths = [len(t) for t in takes]
    if width == 1 and min(lengths) == 1:  # the common decoding step: no padding
        ids = torch.tensor([t[0] for t in takes], dtype=torch.long).unsqueeze(-1)
        attention = torch.ones((len(active), 1), dtype=torch.long)
    else:
        ids = torch.full((len(active), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(active), width), dtype=torch.long)
        for j, take in enumerate(takes):
            ids[j, width - len(take) :] = torch.tensor(take, dtype=torch.long)
            attention[j, width - len(take) :] = 1
    # Padding columns repeat the next position; they are masked, so any value would do.
    positions = next_pos.unsqueeze(-1) + (attention.cumsum(-1) - 1).clamp(min=0)
    next_pos += torch.tensor(lengths, dtype=torch.long)
    for row in active:
        row.feed = row.feed[width:]
    return ids, attention, positions


def _advance(
    row: _Row, token: int, eos_ids: list[int], max_tokens: int, fast_forward: bool
) -> Finish | None:
    """Feed the sampled ``token`` to the row; return how it finished, or None to go on."""
    if row.bad is not None:
        return "error"
    if row.matcher is not None:
        if not row.matcher.consume_token(token):
            row.bad = row.matcher.get_error() or f"token {token} rejected by the grammar"
            return "error"
        if token in eos_ids:
            return "stop"
        row.ids.append(token)
        row.feed.append(token)
        row.first_at = row.first_at or time.perf_counter()
        if row.matcher.is_stopped():
            return "stop"
        if fast_forward and len(row.ids) < max_tokens:
            finish = _fast_forward(row, max_tokens)
            if finish is not None:
                return finish
    else:
        if token in eos_ids:
            return "stop"
        row.ids.append(token)
        row.feed.append(token)
        row.first_at = row.first_at or time.perf_counter()
    return "length" if len(row.ids) >= max_tokens else None


def _advance_steered(
    row: _Row,
    candidates: list[int],
    eos_ids: list[int],
    max_tokens: int,
    fast_forward: bool,
    llg_tokenizer: Any,
) -> Finish | None:
    """`_advance` for a row with `on_budget: close`: the first candidate that keeps a
    completion within the budget is taken (see `budget.step`)."""
    if row.bad is not None:
        return "error"
    taken = budget.step(
        row.steer, row.matcher, llg_tokenizer, candidates, max_tokens - len(row.ids), eos_ids,
        fast_forward,
    )  # fmt: skip
    if taken is None:
        row.bad = row.matcher.get_error() or "no completion fits the token budget"
        return "error"
    if taken == budget.EOS:
        return "budget" if row.steer.steered else "stop"
    row.ids.extend(taken)
    row.feed.extend(taken)
    if row.matcher.is_stopped():
        return "budget" if row.steer.steered else "stop"
    return _at_budget(row) if len(row.ids) >= max_tokens else None


def _at_budget(row: _Row) -> Finish:
    """How a row that used all of `max_tokens` ends: ``budget`` when it is steered and its
    document is complete, else ``length``."""
    if row.steer is not None and row.matcher is not None and row.matcher.is_accepting():
        return "budget"
    return "length"


def _fast_forward(row: _Row, max_tokens: int) -> Finish | None:
    """Append the tokens the row's grammar forces next (within ``max_tokens``)."""
    if row.matcher is None:
        return None
    forced = row.matcher.compute_ff_tokens()[: max_tokens - len(row.ids)]
    if not forced:
        return None
    if not row.matcher.consume_tokens(forced):
        row.bad = row.matcher.get_error() or "the grammar rejected its own forced tokens"
        return "error"
    row.ids.extend(forced)
    row.feed.extend(forced)
    row.first_at = row.first_at or time.perf_counter()
    return "stop" if row.matcher.is_stopped() else None


def _finish(tokenizer: Any, row: _Row, finish: Finish, started: float) -> Generation:
    # Byte-level tokenizers decode a UTF-8 sequence cut at max_tokens to U+FFFD rather than
    # raise; anything else that raises becomes this row's error.
    error = row.bad if finish == "error" else None
    try:
        text = tokenizer.decode(row.ids, skip_special_tokens=False)
    except Exception as e:  # noqa: BLE001 - a tokenizer's decode error belongs to the row
        text, finish, error = "", "error", f"decode failed: {e}"
    guarantee: Guarantee = "token" if row.matcher is not None else "none"
    seconds = time.perf_counter() - started
    first = row.first_at - started if row.first_at is not None else None
    return Generation(
        text, len(row.ids), finish, error and shorten(error), guarantee, seconds, first
    )


def _device_of(model: Any) -> torch.device:
    import torch

    device = getattr(model, "device", None)
    return device if isinstance(device, torch.device) else next(model.parameters()).device


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for candidate in (
        tokenizer.eos_token_id,
        getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    ):
        for value in candidate if isinstance(candidate, list | tuple) else [candidate]:
            if value is not None and value not in ids:
                ids.append(int(value))
    if not ids:
        raise ValueError("the tokenizer has no EOS token; constrained decoding needs one")
    return ids


def _accepts_logits_to_keep(model: Any) -> bool:
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
