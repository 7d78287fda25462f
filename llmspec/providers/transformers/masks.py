"""Token masks and sampling: llguidance matchers per row, masks for a whole batch at once.

Building an LLTokenizer walks the whole vocabulary and compiling a grammar builds its lexer;
both are far slower than one decoding step and the same ones recur across batches, so both are
cached. Masks of all constrained rows are computed in one call on llguidance's thread pool.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    import llguidance
    import torch

_LOCK = threading.Lock()


_LLG_TOKENIZERS: dict[int, tuple[weakref.ref, Any]] = {}


_MATCHERS: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()


_MATCHER_CACHE_SIZE = 256


_EXECUTOR: Any = None


_OVERLAP_POOL: Any = None


def llg_tokenizer_for(tokenizer: Any) -> llguidance.LLTokenizer:
    """The llguidance tokenizer for a Hugging Face fast tokenizer, built once per tokenizer object.

    Cached by object identity for as long as the tokenizer lives; pass the result to
    `generate_batch` as ``llg_tokenizer`` or let it call this.
    """
    key = id(tokenizer)
    with _LOCK:
        hit = _LLG_TOKENIZERS.get(key)
        if hit is not None and hit[0]() is tokenizer:
            return hit[1]
    import llguidance.hf

    llg = llguidance.hf.from_tokenizer(tokenizer)
    with _LOCK:
        _LLG_TOKENIZERS[key] = (weakref.ref(tokenizer, lambda _r, k=key: _drop_tokenizer(k)), llg)
    return llg


def _drop_tokenizer(key: int) -> None:
    with _LOCK:
        _LLG_TOKENIZERS.pop(key, None)


def new_matcher(grammar: str, llg_tokenizer: Any) -> Any:
    """A fresh matcher: a deep copy of a cached, compiled, never-advanced one."""
    from llguidance import LLMatcher

    key = (id(llg_tokenizer), grammar)
    with _LOCK:
        hit = _MATCHERS.get(key)
        if hit is not None:
            _MATCHERS.move_to_end(key)
    if hit is None:
        template = LLMatcher(llg_tokenizer, grammar, log_level=0)
        with _LOCK:
            # The value holds the tokenizer so its id cannot be reused while the entry lives.
            _MATCHERS[key] = hit = (llg_tokenizer, template)
            while len(_MATCHERS) > _MATCHER_CACHE_SIZE:
                _MATCHERS.popitem(last=False)
    template = hit[1]
    return template if template.is_error() else template.deep_copy()


def executor() -> Any:
    global _EXECUTOR
    if _EXECUTOR is None:
        from llguidance import LLExecutor

        with _LOCK:
            if _EXECUTOR is None:
                _EXECUTOR = LLExecutor()
    return _EXECUTOR


def overlap_pool() -> Any:
    global _OVERLAP_POOL
    if _OVERLAP_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        with _LOCK:
            if _OVERLAP_POOL is None:
                _OVERLAP_POOL = ThreadPoolExecutor(1, thread_name_prefix="llmspec-mask")
    return _OVERLAP_POOL


def fill_masks(active: list[Any], bitmask: torch.Tensor, sampling: list[bool]) -> None:
    """Compute the next-token masks of the constrained rows that sample, in one batch call."""
    bitmask[: len(active)].fill_(-1)
    jobs = [
        (row.matcher, j) for j, row in enumerate(active) if row.matcher is not None and sampling[j]
    ]
    if not jobs:
        return
    # This is llguidance.torch.fill_next_token_bitmask_par without importing that module, whose
    # torch.compile'd apply kernel costs seconds to import and to compile on first use on CPU.
    assert bitmask.dtype.is_signed and bitmask.is_contiguous() and not bitmask.is_cuda
    words = bitmask.shape[1]
    executor().unsafe_compute_mask_ptr(jobs, bitmask.data_ptr(), words * 4, bitmask.shape[0])
    for matcher, j in jobs:
        if matcher.is_error():
            active[j].bad = matcher.get_error() or "the grammar failed while computing a mask"


def apply_masks(
    logits: torch.Tensor, bitmask: torch.Tensor, shifts: torch.Tensor, mask_cols: int
) -> None:
    """Set logits to -inf where the packed bitmask (bit k of word w = token 32*w+k) is 0."""
    import torch

    mask = bitmask.to(logits.device, non_blocking=True)
    allowed = ((mask.unsqueeze(-1) >> shifts) & 1).bool().flatten(1)[:, :mask_cols]
    logits[:, :mask_cols].masked_fill_(~allowed, float("-inf"))
    if mask_cols < logits.shape[-1]:
        logits[:, mask_cols:] = float("-inf")
    # A row whose matcher failed has no allowed token; give it something to sample (the
    # token is discarded) rather than NaN probabilities.
    dead = torch.isneginf(logits).all(-1)
    if bool(dead.any()):
        logits[dead] = 0.0


def sample(
    logits: torch.Tensor,
    active: list[Any],
    sampling: list[bool],
    temperature: float,
    top_p: float,
):
    """One token per row (rows not ``sampling`` get a throwaway one and draw no randomness)."""
    import torch

    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Drop a token when the tokens before it already reach top_p (the first one stays).
        drop = (sorted_p.cumsum(-1) - sorted_p) >= top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    # Inverse-CDF sampling with one uniform per row from the row's own generator: a row's
    # draws depend only on its seed and its own distributions, not on its batch neighbours.
    one = torch.ones((), device=probs.device)
    u = torch.stack(
        [
            1.0 - torch.rand((), generator=r.generator, device=probs.device) if s else one
            for r, s in zip(active, sampling, strict=True)
        ]
    )
    cdf = probs.cumsum(-1)
    target = (u * cdf[:, -1]).unsqueeze(-1)
    picked = torch.searchsorted(cdf, target).squeeze(-1)
    return picked.clamp_(max=probs.shape[-1] - 1)
