"""Embeddings and nearest-neighbour search: how vectors are computed, stored and searched.

Vectors are stored in a job's `meta` (outside its output digest: their last bits vary with the
CPU and thread count) as base64 float32, which is a quarter of the size of JSON numbers and
decodes in one call. Search is a backend chosen by the knowledge source's `index:`:

- `exact`: one matrix product with numpy per block of queries; exact top-k.
- `faiss`: faiss-cpu's `IndexFlatIP` (exact inner product); imported only when used.

Both give the same chunks in the same order: scores are rounded to 5 decimals and ties go to
the chunk that comes first in the index, so a backend can be swapped without changing results.
A served vector database is another backend with the same two calls (`build`, `search`).

    >>> import numpy as np
    >>> m = np.eye(3, dtype=np.float32)
    >>> decode(encode(m)).tolist() == m.tolist()
    True
    >>> search(m, np.asarray([[0.0, 0.6, 0.8]], dtype=np.float32), 2)[1].tolist()
    [[2, 1]]
"""

from __future__ import annotations

import base64
import importlib
from typing import Any

BACKENDS = {"exact": "llmspec.vectors:ExactIndex", "faiss": "llmspec.vectors:FaissIndex"}
BATCH = 64  # texts per embedding call
BLOCK = 256  # queries scored per matrix product: memory stays ~BLOCK x chunks
DECIMALS = 5  # scores compared at this precision, so BLAS noise cannot reorder ties


def encode(matrix: Any) -> dict[str, Any]:
    import numpy as np

    m = np.ascontiguousarray(matrix, dtype=np.float32)
    dim = int(m.shape[1]) if m.ndim == 2 else 0
    return {"dtype": "float32", "dim": dim, "rows": int(m.shape[0]), "data": _b64(m)}


def _b64(m: Any) -> str:
    return base64.b64encode(m.tobytes()).decode("ascii")


def decode(stored: dict[str, Any]) -> Any:
    """The (rows x dim) float32 matrix `encode` stored."""
    import numpy as np

    raw = base64.b64decode(stored["data"])
    return np.frombuffer(raw, dtype=np.float32).reshape(stored["rows"], stored["dim"])


def concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Stored matrices one after another (of one embedder: the same dim)."""
    import numpy as np

    mats = [decode(p) for p in parts if p["rows"]]
    if not mats:
        return {"dtype": "float32", "dim": 0, "rows": 0, "data": ""}
    return encode(np.concatenate(mats))


def embed(embedder: Any, texts: list[str]) -> Any:
    """Normalised embeddings of `texts` (rows x dim float32), in batches."""
    import numpy as np

    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    vecs = embedder.encode(
        texts, normalize_embeddings=True, batch_size=BATCH, convert_to_numpy=True
    )
    return np.asarray(vecs, dtype=np.float32)


def load_backend(name: str) -> Any:
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def faiss_available() -> bool:
    """Whether faiss can be imported here (checked without importing it)."""
    import importlib.util
    import sys

    if "faiss" in sys.modules:
        return sys.modules["faiss"] is not None
    try:
        return importlib.util.find_spec("faiss") is not None
    except (ImportError, ValueError):
        return False


class ExactIndex:
    """Cosine similarity by matrix product (vectors are normalised)."""

    def __init__(self, matrix: Any):
        self.matrix = matrix

    def scores(self, queries: Any, k: int) -> tuple[Any, Any]:
        """(scores, candidate ids) per query: every chunk, for `top` to order."""
        import numpy as np

        s = queries @ self.matrix.T
        return s, np.broadcast_to(np.arange(self.matrix.shape[0]), s.shape)


class FaissIndex:
    """faiss-cpu's exact inner-product index (`IndexFlatIP`)."""

    def __init__(self, matrix: Any):
        try:
            import faiss
        except ImportError:
            raise RuntimeError(
                "`index: faiss` needs faiss-cpu, which is not installed here: "
                "`pip install faiss-cpu`, or use `index: exact`"
            ) from None
        import numpy as np

        self.index = faiss.IndexFlatIP(int(matrix.shape[1]))
        self.index.add(np.ascontiguousarray(matrix, dtype=np.float32))
        self.n = int(matrix.shape[0])

    def scores(self, queries: Any, k: int) -> tuple[Any, Any]:
        import numpy as np

        # a margin past k, so that ties at the k-th score are ordered like `exact` orders them
        want = min(self.n, k + 16)
        s, ids = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), want)
        return s, ids


def search(matrix: Any, queries: Any, k: int, backend: str = "exact") -> tuple[Any, Any]:
    """The `k` best chunks per query: (scores, ids), each (queries x k), best first; ties go
    to the lower id. Queries are scored in blocks of `BLOCK`."""
    import numpy as np

    n = int(matrix.shape[0]) if matrix.ndim == 2 else 0
    k = min(k, n)
    if k == 0 or len(queries) == 0:
        return np.zeros((len(queries), 0)), np.zeros((len(queries), 0), dtype=np.int64)
    index = load_backend(backend)(matrix)
    all_s, all_i = [], []
    for b in range(0, len(queries), BLOCK):
        s, ids = index.scores(queries[b : b + BLOCK], k)
        top_s, top_i = _top(np.round(np.asarray(s, dtype=np.float64), DECIMALS), ids, k)
        all_s.append(top_s)
        all_i.append(top_i)
    return np.concatenate(all_s), np.concatenate(all_i)


def _top(scores: Any, ids: Any, k: int) -> tuple[Any, Any]:
    """Per row, the k best (score desc, id asc) of the candidates."""
    import numpy as np

    ids = np.asarray(ids, dtype=np.int64)
    if scores.shape[1] > 4 * k:  # narrow to the candidates that can make the top k
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        out_s = np.empty((scores.shape[0], k))
        out_i = np.empty((scores.shape[0], k), dtype=np.int64)
        for r in range(scores.shape[0]):
            keep = np.nonzero(scores[r] >= kth[r])[0]
            order = np.lexsort((ids[r, keep], -scores[r, keep]))[:k]
            out_s[r], out_i[r] = scores[r, keep[order]], ids[r, keep[order]]
        return out_s, out_i
    valid = ids >= 0  # faiss pads with -1 when it has fewer candidates than asked
    by_id = np.where(valid, ids, np.iinfo(np.int64).max)
    by_score = -np.where(valid, scores, -np.inf)
    order = np.lexsort((by_id, by_score), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
