"""Batched, token-constrained generation for local transformers models (the fast path).

Two halves with different import budgets:

- Grammar building (`grammar_for`, `check_enforceable`, `engine_version`) runs at
  ``llmspec validate`` / ``compile`` time. It imports llguidance's core lazily and never torch,
  transformers or guidance.
- Decoding (`generate_batch`) imports torch when called. It decodes all rows of a batch together:
  a left-padded batch, one forward pass per step over the KV cache, and one llguidance
  `LLMatcher` per constrained row whose token masks are computed for the whole batch at once by
  llguidance's thread pool, while the model runs its forward pass::

      tok = AutoTokenizer.from_pretrained(path)
      model = AutoModelForCausalLM.from_pretrained(path)
      gens = generate_batch(model, tok, ["Answer: ", "Q: 2+2?"],
                            [{"json_schema": {"type": "object"}}, {"choice": ["4", "5"]}],
                            max_tokens=64)
      gens[0].text, gens[0].finish, gens[0].guarantee   # '{"a": 1}', 'stop', 'token'

A constraint is ``{"json_schema": {...}}``, ``{"regex": "..."}``, ``{"choice": [...]}`` or None.
Regexes match the whole output. JSON is generated compactly (``", "`` and ``": "`` separators, no
other whitespace) unless the schema's ``x-guidance`` options say otherwise.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover - types only
    import llguidance
    import torch

__all__ = [
    "ENGINE",
    "Generation",
    "check_enforceable",
    "engine_version",
    "generate_batch",
    "grammar_for",
    "llg_tokenizer_for",
]

ENGINE = "llguidance"

# Compact JSON: a model that may emit free whitespace can spend its whole token budget on
# newlines (random-weight test models do exactly that), and compact output is what most callers
# parse and hash anyway. A schema can still opt in through its own "x-guidance" options, which
# llguidance applies after these defaults.
_JSON_DEFAULTS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

Finish = Literal["stop", "length", "error"]
Guarantee = Literal["token", "none"]


@dataclass(frozen=True, slots=True)
class Generation:
    """One generated row.

    ``tokens`` counts generated tokens (EOS excluded). ``finish`` is ``"stop"`` (EOS, or the
    grammar is complete), ``"length"`` (hit ``max_tokens``; a constrained row then holds a valid
    prefix only) or ``"error"`` (see ``error``). ``guarantee`` is ``"token"`` when token masks
    enforced the constraint, ``"none"`` otherwise (no constraint, or its grammar did not compile).
    """

    text: str
    tokens: int
    finish: Finish
    error: str | None = None
    guarantee: Guarantee = "none"


# --------------------------------------------------------------------------------------------
# Grammars (no torch here)


def grammar_for(constraint: Mapping[str, Any] | None) -> str | None:
    """Return the llguidance grammar string for ``constraint``, or None for no constraint.

    Raises `ValueError` when the constraint is not one of the known shapes. Whether llguidance
    can actually compile the grammar is `check_enforceable`'s question.
    """
    if constraint is None:
        return None
    if not isinstance(constraint, Mapping) or len(constraint) != 1:
        raise ValueError(
            "a constraint is one of {json_schema: {...}}, {regex: '...'}, {choice: [...]}; "
            f"got {constraint!r}"
        )
    from llguidance import LLMatcher

    ((kind, value),) = constraint.items()
    if kind == "json_schema":
        if not isinstance(value, Mapping | bool):
            raise ValueError(f"json_schema must be an object, got {type(value).__name__}")
        return LLMatcher.grammar_from_json_schema(
            json.dumps(drop_annotation_formats(_plain(value))), defaults=dict(_JSON_DEFAULTS)
        )
    if kind == "regex":
        if not isinstance(value, str):
            raise ValueError(f"regex must be a string, got {type(value).__name__}")
        return LLMatcher.grammar_from_regex(value)
    if kind == "choice":
        if (
            isinstance(value, str)
            or not isinstance(value, Sequence)
            or not value
            or not all(isinstance(c, str) and c for c in value)
        ):
            raise ValueError("choice must be a non-empty list of non-empty strings")
        # Lark string literals take JSON escapes; ensure_ascii=False keeps non-ASCII verbatim.
        lark = "start: " + " | ".join(json.dumps(c, ensure_ascii=False) for c in value)
        return LLMatcher.grammar_from_lark(lark)
    raise ValueError(f"unknown constraint kind {kind!r}; known: json_schema, regex, choice")


# `format` values llguidance enforces. In JSON Schema 2020-12 `format` is an annotation, and
# llmspec's after-the-fact check does not assert it either, so any other value is dropped
# rather than making the whole schema unenforceable.
ENFORCED_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_DATA_KEYWORDS = ("enum", "const", "default", "examples")


def drop_annotation_formats(schema: Any) -> Any:
    """A copy of `schema` without the `format`s llguidance cannot enforce.

    >>> drop_annotation_formats({"type": "string", "format": "uri"})
    {'type': 'string'}
    >>> drop_annotation_formats({"properties": {"format": {"format": "date"}}})
    {'properties': {'format': {'format': 'date'}}}
    """
    if isinstance(schema, list):
        return [drop_annotation_formats(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "format" and isinstance(value, str) and value not in ENFORCED_FORMATS:
            continue
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: drop_annotation_formats(sub) for name, sub in value.items()}
        else:
            out[key] = drop_annotation_formats(value)
    return out


def _plain(value: Any) -> Any:
    """Frozen spec values (mappings, tuples) as the dicts and lists json.dumps takes."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_enforceable(constraint: Mapping[str, Any] | None) -> str | None:
    """Return None when llguidance can enforce ``constraint``, else a one-line reason.

    Meant for validate/compile time: it checks the grammar without a tokenizer and imports
    neither torch, transformers nor guidance. Typical reasons: ``Unimplemented keys: ["not"]``,
    ``look-around, including look-ahead and look-behind, is not supported``.
    """
    try:
        grammar = grammar_for(constraint)
    except ValueError as e:
        return str(e)
    if grammar is None:
        return None
    from llguidance import LLMatcher

    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if not is_error:
        return None  # warnings (e.g. an ignored "format") do not stop enforcement
    return _shorten(messages[0] if messages else "llguidance rejected the grammar")


def _shorten(message: str) -> str:
    """Make a llguidance error one line: regex errors carry a caret diagram before the reason."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    reason = next((ln[len("error:") :].strip() for ln in lines if ln.startswith("error:")), None)
    first = lines[0] if lines else message.strip()
    if reason is None:
        return first
    # Keep the part before the diagram when it says where (e.g. 'invalid regex "a(?=b)"'),
    # else name the pattern, the diagram's first line.
    head = first.split(": regex parse error", 1)[0].removesuffix("regex parse error:").strip()
    if head:
        return f"{head}: {reason}"
    return f"{reason} (pattern {lines[1]!r})" if len(lines) > 2 else reason


def engine_version() -> str:
    """``llguidance <version>``, read from package metadata (imports nothing); for job keys."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{ENGINE} {version('llguidance')}"
    except PackageNotFoundError:
        return f"{ENGINE} (not installed)"


# --------------------------------------------------------------------------------------------
# Caches: building an LLTokenizer walks the whole vocabulary, compiling a grammar builds its
# lexer; both are far slower than one decoding step, and the same ones recur across batches.

_LOCK = threading.Lock()
_LLG_TOKENIZERS: dict[int, tuple[weakref.ref, Any]] = {}
_MATCHERS: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()
_MATCHER_CACHE_SIZE = 256
_EXECUTOR: Any = None
_OVERLAP_POOL: Any = None
# Forced tokens are fed with the next step, which pads every row to the longest feed. On a CPU
# each padded column costs real compute, so a long forced run is fed a few tokens per step (4
# measured best for a 4x256 model at batch 16); on an accelerator padding is nearly free.
_MAX_STEP_WIDTH = {"cpu": 4}
_MAX_STEP_WIDTH_DEFAULT = 16


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


def _new_matcher(grammar: str, llg_tokenizer: Any) -> Any:
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


def _executor() -> Any:
    global _EXECUTOR
    if _EXECUTOR is None:
        from llguidance import LLExecutor

        with _LOCK:
            if _EXECUTOR is None:
                _EXECUTOR = LLExecutor()
    return _EXECUTOR


def _overlap_pool() -> Any:
    global _OVERLAP_POOL
    if _OVERLAP_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        with _LOCK:
            if _OVERLAP_POOL is None:
                _OVERLAP_POOL = ThreadPoolExecutor(1, thread_name_prefix="llmspec-mask")
    return _OVERLAP_POOL


# --------------------------------------------------------------------------------------------
# Decoding


@dataclass(slots=True)
class _Row:
    index: int  # position in the caller's lists
    matcher: Any  # LLMatcher or None
    generator: Any  # torch.Generator or None
    ids: list[int] = field(default_factory=list)  # generated so far
    feed: list[int] = field(default_factory=list)  # for the next forward passes
    prefilled: bool = False  # its prompt is in the KV cache
    bad: str | None = None  # set when the matcher failed while computing a mask


def generate_batch(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    constraints: Sequence[Mapping[str, Any] | None],
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

    Raises `ValueError` for malformed arguments; a constraint llguidance cannot compile gives
    that row ``finish="error"`` and leaves the others alone.
    """
    import torch

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
    grammars = [grammar_for(c) for c in constraints]
    if n == 0:
        return []

    device = _device_of(model)
    eos_ids = _eos_ids(model, tokenizer)
    results: list[Generation | None] = [None] * n
    if any(g is not None for g in grammars) and llg_tokenizer is None:
        llg_tokenizer = llg_tokenizer_for(tokenizer)

    rows: list[_Row] = []
    for i, grammar in enumerate(grammars):
        matcher = None
        if grammar is not None:
            matcher = _new_matcher(grammar, llg_tokenizer)
            if matcher.is_error():
                results[i] = Generation("", 0, "error", _shorten(matcher.get_error()), "none")
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
        if finish is None and len(row.ids) >= max_tokens:
            finish = "length"
        if finish is None:
            rows.append(row)
        else:
            results[i] = _finish(tokenizer, row, finish)

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

    pool = _overlap_pool() if overlap and constrained else None
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
                pending = pool.submit(_fill_masks, active, bitmask, sampling)
            input_ids, new_attention, positions = _feed_tensors(active, next_pos, pad_id, width)
            attention = torch.cat([attention, new_attention.to(device)], dim=-1)
            out = model(
                input_ids=input_ids.to(device),
                attention_mask=_mask_for(model, attention, input_ids.shape[1]),
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
                    _fill_masks(active, bitmask, sampling)
                _apply_masks(logits, bitmask[: len(active)], shifts, mask_cols)
            if min_tokens:
                young = [j for j, r in enumerate(active) if r.matcher is None]
                young = [j for j in young if len(active[j].ids) < min_tokens]
                if young:
                    logits[torch.tensor(young, device=device).unsqueeze(-1), eos] = float("-inf")
            picked = _sample(logits, active, sampling, temperature, top_p).tolist()

            keep: list[int] = []
            for j, (row, token) in enumerate(zip(active, picked, strict=True)):
                row.prefilled = True
                if not sampling[j]:
                    keep.append(j)
                    continue
                finish = _advance(row, token, eos_ids, max_tokens, fast_forward)
                if finish is None:
                    keep.append(j)
                else:
                    results[row.index] = _finish(tokenizer, row, finish)
            if not keep and not waiting:
                break
            if len(keep) < len(active):
                sel = torch.tensor(keep, dtype=torch.long)
                past = _select_rows(past, sel.to(device))
                attention = attention.index_select(0, sel.to(device))
                next_pos = next_pos.index_select(0, sel)
                active = [active[j] for j in keep]
            if active and _cache_layers(past) is not None:
                attention = _compact(past, attention)
            free = batch_size - len(active)
            if waiting and (not active or (free >= refill_at and _can_merge(past))):
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
        attention_mask=_mask_for(model, new_attention.to(device), ids.shape[1]),
        position_ids=positions.to(device),
        use_cache=True,
        **kwargs,
    )
    for row, token in zip(new, last, strict=True):
        row.feed = [token]
        row.prefilled = True
    past = _merge_caches(past, out.past_key_values, attention.shape[1], new_attention.shape[1])
    width = max(attention.shape[1], new_attention.shape[1])
    attention = torch.cat(
        [_left_pad(attention, width), _left_pad(new_attention.to(device), width)], dim=0
    )
    return past, attention, torch.cat([next_pos, new_pos])


def _mask_for(model: Any, attention: torch.Tensor, width: int) -> torch.Tensor:
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


def _left_pad(t, width: int, dim: int = 1):
    """Zero-pad ``t`` on the left along ``dim`` up to ``width``."""
    import torch

    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _cache_layers(cache: Any) -> list[Any] | None:
    """The layers of a plain DynamicCache (transformers >= 4.56), else None."""
    layers = getattr(cache, "layers", None)
    if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
        return None
    return list(layers)


def _can_merge(cache: Any) -> bool:
    return cache is not None and _cache_layers(cache) is not None


def _compact(past: Any, attention: torch.Tensor) -> torch.Tensor:
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
    for layer in _cache_layers(past):
        b, h, _, d = layer.keys.shape
        index = order.view(b, 1, longest, 1).expand(b, h, longest, d)
        layer.keys = layer.keys.gather(2, index)
        layer.values = layer.values.gather(2, index)
    return attention.gather(1, order)


def _merge_caches(old: Any, new: Any, old_len: int, new_len: int) -> Any:
    """Stack two dynamic caches along the batch, left-padding the shorter one (masked)."""
    import torch

    width = max(old_len, new_len)
    for a, b in zip(_cache_layers(old), _cache_layers(new), strict=True):
        a.keys = torch.cat([_left_pad(a.keys, width, 2), _left_pad(b.keys, width, 2)], dim=0)
        a.values = torch.cat([_left_pad(a.values, width, 2), _left_pad(b.values, width, 2)], dim=0)
    return old


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


def _fill_masks(active: list[_Row], bitmask: torch.Tensor, sampling: list[bool]) -> None:
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
    _executor().unsafe_compute_mask_ptr(jobs, bitmask.data_ptr(), words * 4, bitmask.shape[0])
    for matcher, j in jobs:
        if matcher.is_error():
            active[j].bad = matcher.get_error() or "the grammar failed while computing a mask"


def _apply_masks(
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


def _sample(
    logits: torch.Tensor,
    active: list[_Row],
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
    return "length" if len(row.ids) >= max_tokens else None


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
    return "stop" if row.matcher.is_stopped() else None


def _finish(tokenizer: Any, row: _Row, finish: Finish) -> Generation:
    # Byte-level tokenizers decode a UTF-8 sequence cut at max_tokens to U+FFFD rather than
    # raise; anything else that raises becomes this row's error.
    error = row.bad if finish == "error" else None
    try:
        text = tokenizer.decode(row.ids, skip_special_tokens=False)
    except Exception as e:  # noqa: BLE001 - a tokenizer's decode error belongs to the row
        text, finish, error = "", "error", f"decode failed: {e}"
    guarantee: Guarantee = "token" if row.matcher is not None else "none"
    return Generation(text, len(row.ids), finish, error and _shorten(error), guarantee)


def _select_rows(past: Any, sel: torch.Tensor) -> Any:
    if hasattr(past, "batch_select_indices"):
        past.batch_select_indices(sel)
        return past
    # Legacy tuple cache: ((k, v), ...) per layer.
    return tuple(tuple(t.index_select(0, sel) for t in layer) for layer in past)


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
