"""`index` jobs: chunk a knowledge source and embed the chunks for retrieval.

Inputs: the knowledge source's files (their digests, by path under the project) or the dataset
it reads, the chunking settings and the embedding model's identity. The chunks are the output;
their vectors go to `meta`, outside the output's digest: their last bits depend on the CPU and
thread count, while the chunks and the embedding model, which fix them, are keyed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmspec.jobs import JobError, JobKind

EMBED_DECIMALS = 5  # embeddings are stored rounded: BLAS noise must not change the digest


def names(spec: Any) -> Any:
    return spec.knowledge


def build(cx: Any, name: str) -> Any:
    k = cx.spec.knowledge[name]
    ins = cx.inputs()
    source = ("files",) if k.source.path is not None else ("source",)
    ins.take("knowledge", "knowledge", name, (*source, "chunk", "embed"))
    deps = {}
    local: dict[str, Any] = dict(cx.facts.knowledge_local(name))
    if k.source.dataset is not None:
        ds = cx.spec.datasets[k.source.dataset]
        if ds.generate is not None:
            deps["dataset"] = cx.get("testgen", k.source.dataset)
        else:
            ins.take("dataset", "datasets", k.source.dataset, ("rows", "content"))
            rows = cx.facts.dataset(k.source.dataset)["rows"]
            local["dataset"] = cx.facts.shard_local(k.source.dataset, 0, rows)
    return cx.job(
        "index", f"index.{name}", ins, deps=deps, local=local, loc=cx.loc("knowledge", name)
    )


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


def load_embedder(path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def embed(embedder: Any, texts: list[str]) -> list[list[float]]:
    if not texts:
        return []
    vecs = embedder.encode(texts, normalize_embeddings=True, batch_size=32, convert_to_numpy=True)
    return [[round(float(x), EMBED_DECIMALS) for x in v] for v in vecs]


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.hashing import file_digest

    k = job.inputs["knowledge"]
    size, overlap = k["chunk"]["size"], k["chunk"]["overlap"]
    root = Path(job.local["root"])
    chunks: list[dict[str, Any]] = []
    if "files" in k:
        for rel, want in k["files"].items():
            path = root / rel
            try:
                data = path.read_bytes()
            except OSError as e:
                raise JobError(f"cannot read `{rel}`: {e.strerror}; plan again") from None
            if file_digest(data) != want:
                raise JobError(f"`{rel}` changed since the plan was made; plan again")
            text = data.decode("utf-8", errors="replace")
            for start, piece in chunk_text(text, size, overlap):
                chunks.append({"source": rel, "start": start, "text": piece})
    else:
        src = k["source"]
        if "dataset" in deps:
            rows = deps["dataset"]["rows"]
        else:
            local, d = job.local["dataset"], job.inputs["dataset"]
            rows = ctx.dataset_rows(local, 0, d["rows"])
        for i, row in enumerate(rows):
            value = row.get(src["column"])
            if value is None:
                raise JobError(f"row {i} of dataset `{src['dataset']}` has no `{src['column']}`")
            for start, piece in chunk_text(str(value), size, overlap):
                chunks.append({"source": f"{src['dataset']}#{i}", "start": start, "text": piece})
    vectors = embed(ctx.embedder(job.local["embed"]), [c["text"] for c in chunks])
    return {"chunks": chunks}, {"embeddings": vectors, "chunks": len(chunks)}


def retrieve(
    index: dict[str, Any],
    vectors: list[list[float]],
    queries: list[str],
    embedder: Any,
    top_k: int,
) -> list[list[dict[str, Any]]]:
    """The `top_k` chunks nearest to each query (cosine), best first, ties by chunk order:
    each as {id, source, text, score}. `index` is an index job's output, `vectors` its
    embeddings (from its meta)."""
    import numpy as np

    if not index["chunks"]:
        return [[] for _ in queries]
    mat = np.asarray(vectors, dtype=np.float32)
    q = np.asarray(embed(embedder, queries), dtype=np.float32)
    scores = q @ mat.T
    out = []
    for row in scores:
        order = sorted(range(len(row)), key=lambda i: (-round(float(row[i]), 5), i))[:top_k]
        out.append(
            [
                {
                    "id": i,
                    "source": index["chunks"][i]["source"],
                    "text": index["chunks"][i]["text"],
                    "score": round(float(row[i]), 4),
                }
                for i in order
            ]
        )
    return out


KIND = JobKind(
    name="index",
    version=3,
    names=names,
    build=build,
    run=run,
    pool="general",
    shape="cylinder",
    description="chunk and embed a knowledge source",
)
