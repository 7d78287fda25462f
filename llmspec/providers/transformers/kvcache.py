"""The KV cache of a running batch: masks, padding, merging rows in and squeezing padding out.

Rows join a running batch (continuous batching) by merging their prefilled cache into the
batch's; finished rows leave by selecting the others. Only plain dynamic caches
(transformers >= 4.56) can be merged; other caches start a new group when the batch empties.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - types only
    import torch


def mask_for(model: Any, attention: torch.Tensor, width: int) -> torch.Tensor:
    """The attention mask to pass: the 4D mask itself where the attention kernel allows it.

    Given a 2D mask with holes, transformers rebuilds the 4D mask every step through vmapped
    mask functions, which costs about as much as the attention itself for small models.
    ``width`` is the number of new (query) columns at the end of ``attention``. Only for models
    built on transformers' masking_utils, which take a 4D mask as is (older modeling code reads
    a 4D mask differently), and only for the sdpa and eager kernels.
    """
    import sys

    import torch

    impl = getattr(model.config, "_attn_implementation", None)
    module = sys.modules.get(type(model).__module__)
    if impl not in ("sdpa", "eager") or not hasattr(module, "create_causal_mask"):
        return attention
    total = attention.shape[1]
    keep = attention.bool()[:, None, None, :]
    if width > 1:
        query = torch.arange(width, device=attention.device).unsqueeze(-1)
        key = torch.arange(total, device=attention.device)
        keep = keep & (key <= total - width + query)
    # A padding query that sees no key would give NaN; let it see everything instead (its output
    # is never used and, masked as a key, never read).
    keep = keep | ~keep.any(-1, keepdim=True)
    if impl == "sdpa":
        return keep
    dtype = model.dtype
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill_(
        ~keep, torch.finfo(dtype).min
    )


def left_pad(t, width: int, dim: int = 1):
    """Zero-pad ``t`` on the left along ``dim`` up to ``width``."""
    import torch

    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def cache_layers(cache: Any) -> list[Any] | None:
    """The layers of a plain DynamicCache (transformers >= 4.56), else None."""
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    return list(layers)


def can_merge(cache: Any) -> bool:
    return cache is not None and cache_layers(cache) is not None


def compact(past: Any, attention: torch.Tensor) -> torch.Tensor:
    """Squeeze masked columns (padding) out of the KV cache once they make up a good part.

    Padding piles up: rows joining a running batch are left-padded to its length, and a step
    that feeds forced tokens pads every row to the longest feed. Positions are passed
    explicitly, so dropping masked columns changes nothing but the cost of attention and of
    the cache's per-step copy. Returns the new attention mask; ``past`` changes in place.
    """
    import torch

    width = attention.shape[1]
    longest = int(attention.sum(1).max())
    if width <= longest + max(8, longest // 4):
        return attention
    # A stable sort puts each row's masked columns first and its real ones last, in order.
    order = torch.sort(attention, dim=1, stable=True).indices[:, width - longest :]
    for layer in cache_layers(past):
        b, h, _, d = layer.keys.shape
        index = order.view(b, 1, longest, 1).expand(b, h, longest, d)
        layer.keys = layer.keys.gather(2, index)
        layer.values = layer.values.gather(2, index)
    return attention.gather(1, order)


def merge_caches(old: Any, new: Any, old_len: int, new_len: int) -> Any:
    """Stack two dynamic caches along the batch, left-padding the shorter one (masked)."""
    import torch

    width = max(old_len, new_len)
    for a, b in zip(cache_layers(old), cache_layers(new), strict=True):
        a.keys = torch.cat([left_pad(a.keys, width, 2), left_pad(b.keys, width, 2)], dim=0)
        a.values = torch.cat([left_pad(a.values, width, 2), left_pad(b.values, width, 2)], dim=0)
    return old


def select_rows(past: Any, sel: torch.Tensor) -> Any:
    if hasattr(past, "batch_select_indices"):
        past.batch_select_indices(sel)
        return past
    # Legacy tuple cache: ((k, v), ...) per layer.
    return tuple(tuple(t.index_select(0, sel) for t in layer) for layer in past)
