"""Closing a constrained output within its token budget (`on_budget: close`).

Token masks guarantee a prefix of a valid document, not a document: a row that runs out of
`max_tokens` mid-string ends invalid. A row decoded with `on_budget: close` carries a
*witness*: a token sequence that takes its grammar from the current state to an accepting one
(EOS allowed), no longer than the tokens it has left. Every token the model picks must keep
one: after the token (and the tokens the grammar then forces), some completion must still fit
in what remains. A token that would not is replaced by the next most likely one that does, and
at worst by the witness's own first token, which always does. So when `max_tokens` is at least
the length of the first witness (`tokens_to_finish`), every row ends schema-valid; rows whose
output was steered, or that ended at the budget with a complete document, are recorded with
`finish: "budget"`.

Witnesses come from `complete`: a `chain` (always the most preferred allowed byte) gives one
at the cost of a mask per byte, then a bounded best-first search over matcher copies
(`LLMatcher.deep_copy`) looks for a shorter one. Both step one byte at a time through the
single-byte tokens every byte-level vocabulary has, try allowed bytes in an order that favours
closing (`"`, `}`, `]`, `,`, then short values such as `0`, `n`) and apply the tokens the
grammar forces (`compute_ff_tokens`) after each step; the search tries at most a few bytes per
state and takes states with the same token mask after as many bytes to be the same. A path
found is re-tokenized (`tokenize_bytes`) when that is shorter and the matcher accepts it. The
search gives up after `MAX_MASKS` mask computations; a row whose first witness is not found,
or does not fit, is decoded as with `on_budget: truncate`.

Most steps need no search: the witness usually still completes the document after the model's
token (inside a string, `"}` stays one: one `validate_tokens` call checks it), or does once as
many bytes as the token took are dropped from its front (the model wrote ` 5` where the
witness had ` 1`). The cost per token is measured by bench/budget_close.py.
"""

from __future__ import annotations

import heapq
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

MAX_MASKS = 768  # mask computations one full search may make
_WIDTH = 8  # allowed bytes tried per state
_CHAIN_MAX = 1024  # tokens a chain may take
_FEW = 4  # up to this many allowed bytes of a class are all tried
# Bytes tried first: what closes a string, an object or an array, then the shortest values.
_PREFERRED = b'"}],0n1tf[{-aA '
# Bytes of one class usually lead to the same states (any digit, any letter): the search tries
# one or two of each class and every other allowed byte.
_CLASSES = ((b"0123456789", 2), (bytes(range(97, 123)), 2), (bytes(range(65, 91)), 1))
_LOCK = threading.Lock()
_TABLES: OrderedDict[int, tuple[Any, ByteTokens]] = OrderedDict()


@dataclass(frozen=True, slots=True)
class ByteTokens:
    """The single-byte tokens of a vocabulary, in the order the search tries them."""

    tokens: Any  # numpy int64 array: token ids, preferred first
    words: Any  # the byte of the packed mask that holds each token's bit
    shifts: Any  # and its bit
    classes: Any  # each token's class (index into _CLASSES), or -1
    eos: int

    def allowed(self, mask: bytes, width: int) -> list[int]:
        """Up to `width` tokens of single bytes the packed `mask` allows, preferred first.
        Where more than a few bytes of a class are allowed (any letter), only the class's
        quota of them is taken; a few (the letters an enum or a regex lists) are all taken."""
        import numpy as np

        bits = (np.frombuffer(mask, dtype=np.uint8)[self.words] >> self.shifts) & 1
        hits = np.flatnonzero(bits)
        if width == 1 or len(hits) <= width:
            return self.tokens[hits[:width]].tolist()
        cls = self.classes[hits]
        keep = np.ones(len(hits), dtype=bool)
        for c, (_, quota) in enumerate(_CLASSES):
            members = np.flatnonzero(cls == c)
            if len(members) > _FEW:
                keep[members[quota:]] = False
        return self.tokens[hits[keep][:width]].tolist()


def byte_tokens(llg_tokenizer: Any) -> ByteTokens:
    """The single-byte tokens of an llguidance tokenizer (cached per tokenizer)."""
    import numpy as np

    key = id(llg_tokenizer)
    with _LOCK:
        hit = _TABLES.get(key)
        if hit is not None and hit[0] is llg_tokenizer:
            return hit[1]
    by_byte: dict[int, int] = {}
    for b in range(256):
        ids = llg_tokenizer.tokenize_bytes(bytes([b]))
        if len(ids) == 1:
            by_byte[b] = ids[0]
    rank = {b: i for i, b in enumerate(dict.fromkeys(_PREFERRED))}
    order = sorted(by_byte.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))
    classes = {b: i for i, (members, _) in enumerate(_CLASSES) for b in members}
    tokens = np.array([t for _, t in order], dtype=np.int64)
    table = ByteTokens(
        tokens,
        tokens >> 3,
        (tokens & 7).astype(np.uint8),
        np.array([classes.get(b, -1) for b, _ in order], dtype=np.int64),
        llg_tokenizer.eos_token,
    )
    with _LOCK:
        _TABLES[key] = (llg_tokenizer, table)
        while len(_TABLES) > 16:
            _TABLES.popitem(last=False)
    return table


def complete(
    matcher: Any,
    llg_tokenizer: Any,
    limit: int,
    *,
    max_masks: int = MAX_MASKS,
    width: int = _WIDTH,
) -> list[int] | None:
    """Tokens that take `matcher` (not advanced) to an accepting state, at most `limit` of
    them, as few as a bounded search finds; None when it finds none.

    A `chain` gives a first witness at the cost of one mask per token; the best-first
    search then looks for a shorter one within `max_masks` masks."""
    if limit < 0 or matcher.is_error():
        return None
    best = chain(matcher, llg_tokenizer, min(limit, _CHAIN_MAX))
    bound = limit if best is None else len(best) - 1
    found = search(matcher, llg_tokenizer, bound, max_masks=max_masks, width=width)
    return found if found is not None else best


def search(
    matcher: Any,
    llg_tokenizer: Any,
    limit: int,
    *,
    max_masks: int = MAX_MASKS,
    width: int = _WIDTH,
) -> list[int] | None:
    """The best-first search alone (see the module's docstring)."""
    if limit < 0:
        return None
    table = byte_tokens(llg_tokenizer)
    root = matcher.deep_copy()
    ff = _forced(root)
    if ff is None or len(ff) > limit:
        return None
    if root.is_accepting():
        return ff
    heap: list[tuple[int, int, int, list[int], Any]] = [(len(ff), 0, 0, ff, root)]
    seen: set[tuple[bytes, int]] = set()
    masks = tie = 0
    while heap and masks < max_masks:
        cost, depth, _, tokens, m = heapq.heappop(heap)
        if m.is_accepting():
            return _shorter(matcher, llg_tokenizer, tokens)
        if cost >= limit:
            continue
        mask = m.compute_bitmask()
        masks += 1
        if (mask, depth) in seen:
            continue
        seen.add((mask, depth))
        for t in table.allowed(mask, width):
            child = m.deep_copy()
            if not child.consume_token(t):
                continue
            forced = _forced(child)
            if forced is None or cost + 1 + len(forced) > limit:
                continue
            tie += 1
            step = [t, *forced]
            heapq.heappush(heap, (cost + len(step), depth + 1, tie, tokens + step, child))
    return None


def chain(matcher: Any, llg_tokenizer: Any, limit: int) -> list[int] | None:
    """A quick witness: always the most preferred allowed byte, no branching, re-tokenized.
    None when it does not reach an accepting state within `limit` tokens."""
    table = byte_tokens(llg_tokenizer)
    m = matcher.deep_copy()
    tokens: list[int] = []
    steps = min(_CHAIN_MAX, 4 * limit + 8)  # bytes, before re-tokenizing
    while len(tokens) <= steps:
        forced = _forced(m)
        if forced is None:
            return None
        tokens += forced
        if m.is_accepting():
            tokens = _shorter(matcher, llg_tokenizer, tokens)
            return tokens if len(tokens) <= limit else None
        allowed = table.allowed(m.compute_bitmask(), 1)
        if not allowed or not m.consume_token(allowed[0]):
            return None
        tokens.append(allowed[0])
    return None


def tokens_to_finish(grammar: str, llg_tokenizer: Any, limit: int = 1 << 16) -> int | None:
    """The length of the first witness of a grammar: with `on_budget: close`, every row whose
    `max_tokens` is at least this many tokens ends valid. None when the search finds none."""
    from llmspec.providers.transformers.masks import new_matcher

    m = new_matcher(grammar, llg_tokenizer)
    forced = m.compute_ff_tokens()  # decoding appends these before it samples
    if forced and not m.consume_tokens(forced):
        return None
    w = complete(m, llg_tokenizer, limit)
    return None if w is None else len(forced) + len(w)


@dataclass(slots=True)
class Steer:
    """A row's budget state: its witness, whether a search found it from this very state
    (else it was carried over from an earlier one and may be longer than need be), and
    whether a token of the row was ever replaced."""

    witness: list[int]
    fresh: bool = True
    steered: bool = False


def start(matcher: Any, llg_tokenizer: Any, left: int) -> Steer | None:
    """The budget state of a row with `left` tokens to go, or None when no witness fits (the
    row is then decoded as if `on_budget` were `truncate`)."""
    w = complete(matcher, llg_tokenizer, left)
    return None if w is None else Steer(w)


def restart(st: Steer | None) -> Steer | None:
    """A fresh copy of a first budget state, for another row that starts alike."""
    return None if st is None else Steer(list(st.witness), st.fresh)


EOS = -1  # what `step` returns for an end of sequence


def step(
    st: Steer,
    matcher: Any,
    llg_tokenizer: Any,
    candidates: list[int],
    left: int,
    eos_ids: list[int],
    fast_forward: bool,
) -> list[int] | int | None:
    """Consume the first of `candidates` (the sampled token, then the model's next most
    likely ones), or else the witness's first token, that leaves a completion within `left`
    tokens (this one included), with the tokens the grammar then forces. Returns the tokens
    consumed, `EOS` when an end of sequence was, or None when nothing fits (only a matcher
    that contradicts its own witness gets there)."""
    fallback = st.witness[0] if st.witness else eos_ids[0]
    seen: set[int] = set()
    for t in [*candidates, fallback]:
        if t in seen:
            continue
        seen.add(t)
        if t in eos_ids:
            if matcher.is_accepting() and matcher.consume_token(t):
                st.steered |= t != candidates[0]
                return EOS
            continue
        if matcher.validate_tokens([t]) != 1 or not matcher.consume_token(t):
            continue
        forced = matcher.compute_ff_tokens() if fast_forward else []
        if forced and not matcher.consume_tokens(forced):
            return None
        if _rewitness(st, matcher, llg_tokenizer, [t, *forced], left - 1 - len(forced)):
            st.steered |= t != candidates[0]
            return [t, *forced]
        matcher.rollback(1 + len(forced))
    return None


def _rewitness(st: Steer, m: Any, llg_tokenizer: Any, taken: list[int], rest: int) -> bool:
    """Find a witness for the state after `taken` within `rest` tokens; keep it in `st`."""
    if rest < 0:
        return False
    w = st.witness
    eos = llg_tokenizer.eos_token
    if w[: len(taken)] == taken:
        new, fresh = w[len(taken) :], st.fresh
    elif m.is_accepting():
        new, fresh = [], True
    elif len(w) <= rest and fits(m, w, eos):
        new, fresh = w, False  # e.g. one more character of a string: `"}` still closes it
    else:
        new, fresh = _shifted(m, llg_tokenizer, w, taken, rest), False
        if new is None:
            new = chain(m, llg_tokenizer, rest)
        if new is None:
            new, fresh = search(m, llg_tokenizer, rest), True
    if new is None:
        return False
    if len(new) >= rest and not fresh:
        # No slack left on a witness carried over: look for a shorter one before the row
        # has to follow it.
        better = search(m, llg_tokenizer, len(new) - 1)
        new, fresh = (better if better is not None else new), True
    st.witness, st.fresh = new, fresh
    return True


def _shifted(m: Any, llg_tokenizer: Any, w: list[int], taken: list[int], rest: int) -> Any:
    """The witness without as many bytes as were just taken: a token the model picked in
    place of the witness's own, of the same length (`M` for `A` in `[A-Z]`, ` 5` for ` 1`),
    usually leaves the rest of the witness a completion."""
    drop = len(llg_tokenizer.decode_bytes(taken))
    tail = llg_tokenizer.decode_bytes(w)[drop:]
    if not tail:
        return None
    new = llg_tokenizer.tokenize_bytes(tail)
    return new if len(new) <= rest and fits(m, new, llg_tokenizer.eos_token) else None


def fits(matcher: Any, witness: list[int], eos: int) -> bool:
    """Whether `witness` takes `matcher` (not advanced) to an accepting state."""
    return matcher.validate_tokens([*witness, eos]) == len(witness) + 1


def _forced(m: Any) -> list[int] | None:
    forced = m.compute_ff_tokens()
    if forced and not m.consume_tokens(forced):
        return None
    return None if m.is_error() else forced


def _shorter(matcher: Any, llg_tokenizer: Any, tokens: list[int]) -> list[int]:
    """The same bytes in fewer tokens, when the tokenizer's own split is shorter and valid."""
    if len(tokens) < 2:
        return tokens
    retok = llg_tokenizer.tokenize_bytes(llg_tokenizer.decode_bytes(tokens))
    if len(retok) < len(tokens) and fits(matcher, retok, llg_tokenizer.eos_token):
        return retok
    return tokens
