"""RAG metrics: retrieval against the reference context, groundedness and abstention.

A row's reference context is a list of chunk ids (`kb/refunds.md#2`) or file names
(`kb/refunds.md`, or `refunds.md` for any file of that name); a retrieved chunk is relevant
when it is one of those chunks, or a chunk of one of those files. Rows without a reference
context (None) get None; a reference context that is empty (an out-of-scope question) too, as
there is nothing to retrieve.

    >>> row = {"context": [{"id": "kb/b.md#0", "source": "kb/b.md"},
    ...                    {"id": "kb/a.md#1", "source": "kb/a.md"}],
    ...        "reference_context": ["a.md"]}
    >>> hit_rate([row], {}, None), mrr([row], {}, None), context_precision([row], {}, None)
    ([1.0], [0.5], [0.5])
    >>> recall_at_k([row], {"k": 1}, None)
    [0.0]
"""

from __future__ import annotations

import re
from typing import Any

from llmspec.metrics.text import text_of

Rows = list[dict[str, Any]]
OUT_OF_SCOPE = "out_of_scope"

# -- reference context ------------------------------------------------------------------------


def matches(chunk: dict[str, Any], ref: str) -> bool:
    """Whether a chunk is (in) a reference: its id, its file, or a file of that name."""
    if "#" in ref:
        return chunk.get("id") == ref
    source = str(chunk.get("source", ""))
    return source == ref or source.endswith("/" + ref)


def _judged(row: dict[str, Any], k: int | None) -> tuple[list[dict], list[str]] | None:
    refs = row.get("reference_context")
    if not refs or row.get("context") is None:
        return None
    chunks = row["context"] if k is None else row["context"][:k]
    return chunks, refs


def _relevant(chunks: list[dict], refs: list[str]) -> list[bool]:
    return [any(matches(c, r) for r in refs) for c in chunks]


def hit_rate(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    out: list[float | None] = []
    for r in rows:
        j = _judged(r, opts.get("k"))
        out.append(None if j is None else float(any(_relevant(*j))))
    return out


def recall_at_k(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    out: list[float | None] = []
    for r in rows:
        j = _judged(r, opts.get("k"))
        if j is None:
            out.append(None)
            continue
        chunks, refs = j
        found = sum(1 for ref in refs if any(matches(c, ref) for c in chunks))
        out.append(found / len(refs))
    return out


def mrr(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    out: list[float | None] = []
    for r in rows:
        j = _judged(r, opts.get("k"))
        if j is None:
            out.append(None)
            continue
        rel = _relevant(*j)
        out.append(1.0 / (rel.index(True) + 1) if True in rel else 0.0)
    return out


def context_precision(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    """sum over relevant ranks i of precision@i, over the number of relevant chunks retrieved
    (0 when none is): RAGAS's context precision with reference contexts."""
    out: list[float | None] = []
    for r in rows:
        j = _judged(r, opts.get("k"))
        if j is None:
            out.append(None)
            continue
        rel = _relevant(*j)
        hits, total = 0, 0.0
        for i, ok in enumerate(rel, start=1):
            if ok:
                hits += 1
                total += hits / i
        out.append(total / hits if hits else 0.0)
    return out


# -- abstention -------------------------------------------------------------------------------


def out_of_scope(row: dict[str, Any]) -> bool:
    """A question the knowledge base does not answer: its `kind` says so, or (without a kind)
    its reference context is empty."""
    kind = (row.get("input") or {}).get("kind")
    if kind is not None:
        return kind == OUT_OF_SCOPE
    return row.get("reference_context") == []


def abstains(text: str, phrases: Any) -> bool:
    """Whether an answer declines to answer.

    >>> abstains("Sorry, I don’t know.", ["i don't know"]), abstains("Five days.", ["i don't"])
    (True, False)
    """
    t = " ".join(text.casefold().replace("\u2019", "'").split())
    return any(p.casefold() in t for p in phrases)


def abstention(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    out: list[float | None] = []
    for r in rows:
        if not out_of_scope(r):
            out.append(None)
            continue
        text = text_of(r, opts.get("field"))
        out.append(None if text is None else float(abstains(text, opts["phrases"])))
    return out


# -- groundedness (the embedding fallback; a judge grades in its own job) ---------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """
    >>> sentences("Five days. Card only!\\nThanks")
    ['Five days.', 'Card only!', 'Thanks']
    """
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def groundedness(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    """Share of the answer's sentences whose embedding is within `threshold` (cosine) of a
    retrieved chunk's; 0 when nothing was retrieved; None without an answer, or for one that
    abstains (it claims nothing)."""
    import numpy as np

    from llmspec.metrics.options import ABSTAIN_PHRASES
    from llmspec.vectors import embed

    plans: list[tuple[list[int], list[int]] | None] = []
    texts: list[str] = []
    for r in rows:
        answer = text_of(r, opts.get("field"))
        parts = sentences(answer) if answer and not abstains(answer, ABSTAIN_PHRASES) else []
        if not parts:
            plans.append(None)
            continue
        chunks = [c["text"] for c in (r.get("context") or [])]
        at = len(texts)
        texts += parts + chunks
        plans.append((list(range(at, at + len(parts))), list(range(at + len(parts), len(texts)))))
    if not texts:
        return [None] * len(rows)
    vecs = embed(ctx.embedder(opts["embed_path"]), texts).astype(np.float64)
    out: list[float | None] = []
    for p in plans:
        if p is None:
            out.append(None)
        elif not p[1]:
            out.append(0.0)
        else:
            sims = vecs[p[0]] @ vecs[p[1]].T
            out.append(float(np.mean(np.round(sims.max(axis=1), 4) >= opts["threshold"])))
    return out


# -- word overlap: whether a text supports an answer ------------------------------------------

STOPWORDS = frozenset(
    "a an the and or but if of to in on at by for with from as is are was were be been being "
    "it its this that these those there here what which who whom whose when where why how do "
    "does did done can could should would will shall may might must i you he she we they me "
    "him her us them my your his our their not no yes so than then too very just about into "
    "over under up down out any all some each other such own same only".split()
)
_WORD = re.compile(r"\w+")


def words(text: str) -> set[str]:
    """The content words of a text: case-folded, a plural -s folded, stopwords left out.

    >>> sorted(words("The refunds reach your card in 5 days."))
    ['5', 'card', 'day', 'reach', 'refund']
    """
    out = set()
    for w in _WORD.findall(text.casefold()):
        if w in STOPWORDS:
            continue
        out.add(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def support(answer: str, texts: list[str]) -> float:
    """Share of the answer's content words found in `texts` (0 for an answer without any).

    >>> support("Within five business days", ["Refunds take five business days."])
    0.75
    """
    want = words(answer)
    if not want:
        return 0.0
    have: set[str] = set()
    for t in texts:
        have |= words(t)
    return len(want & have) / len(want)
