"""Semantic similarity: the cosine of the answer's and the reference's sentence embeddings
(all-MiniLM-L6-v2 offline by default, or a local sentence-transformers folder), in -1..1;
embeddings are computed in batches. With several references the closest counts."""

from __future__ import annotations

from typing import Any

from llmspec.metrics.text import _pairs

Rows = list[dict[str, Any]]


def semantic_similarity(rows: Rows, opts: dict[str, Any], ctx: Any) -> list[float | None]:
    import numpy as np

    pairs = _pairs(rows, opts.get("field"))
    texts: list[str] = []
    for p in pairs:
        if p is not None:
            texts.append(p[0])
            texts += p[1]
    if not texts:
        return [None] * len(rows)
    model = ctx.embedder(opts["embed_path"])
    vecs = model.encode(texts, normalize_embeddings=True, batch_size=64, convert_to_numpy=True)
    vecs = np.asarray(vecs, dtype=np.float64)
    out: list[float | None] = []
    i = 0
    for p in pairs:
        if p is None:
            out.append(None)
            continue
        hyp = vecs[i]
        refs = vecs[i + 1 : i + 1 + len(p[1])]
        i += 1 + len(p[1])
        out.append(round(float(np.max(refs @ hyp)), 6))
    return out
