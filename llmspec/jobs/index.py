"""`index` jobs: a knowledge source's documents put together into one index for retrieval.

Inputs: the knowledge source's files (their digests, by path under the project) or the dataset
it reads, the chunking settings and the embedding model's identity; the chunks come from the
source's `chunks` jobs, one per document, so an edit re-embeds one document and this job only
concatenates (it runs in the applying process). The chunks are the output; their vectors go to
`meta`, outside the output's digest: their last bits depend on the CPU and thread count, while
the chunks and the embedding model, which fix them, are keyed.
"""

from __future__ import annotations

from typing import Any

from llmspec.jobs import JobError, JobKind


def names(spec: Any) -> Any:
    return spec.knowledge


def build(cx: Any, name: str) -> Any:
    k = cx.spec.knowledge[name]
    source = ("files",) if k.source.path is not None else ("source",)
    ins = cx.inputs().take("knowledge", "knowledge", name, (*source, "chunk", "embed"))
    docs = cx.get("chunks", name)
    return cx.job(
        "index",
        f"index.{name}",
        ins,
        deps={f"doc:{doc}": job for doc, job in docs.items()},
        loc=cx.loc("knowledge", name),
    )


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.vectors import concat

    chunks: list[dict[str, Any]] = []
    parts = []
    for role in sorted(deps):  # documents in path order
        out, meta = deps.pair(role)
        chunks += out["chunks"]
        parts.append(meta["embeddings"])
    vectors = concat(parts)
    return {"chunks": chunks, "documents": len(parts)}, {"embeddings": vectors}


def load_embedder(path: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu", local_files_only=True)


def retrieve(
    index: dict[str, Any],
    vectors: Any,
    queries: list[str],
    embedder: Any,
    top_k: int,
    backend: str = "exact",
) -> list[list[dict[str, Any]]]:
    """The `top_k` chunks nearest to each query (cosine), best first, ties by chunk order:
    each as {id, source, section, text, score}. `index` is an index job's output, `vectors`
    its embeddings (from its meta); the queries are embedded in one batch."""
    from llmspec.vectors import decode, embed, search

    if not index["chunks"] or not queries:
        return [[] for _ in queries]
    matrix = decode(vectors) if isinstance(vectors, dict) else vectors
    try:
        scores, ids = search(matrix, embed(embedder, queries), top_k, backend)
    except RuntimeError as e:  # a backend that is not installed here
        raise JobError(str(e)) from None
    out = []
    for row_s, row_i in zip(scores, ids, strict=True):
        hits = []
        for s, i in zip(row_s, row_i, strict=True):
            c = index["chunks"][int(i)]
            hit = {"id": c["id"], "source": c["source"], "text": c["text"]}
            if c.get("section"):
                hit["section"] = c["section"]
            hits.append(hit | {"score": round(float(s), 4)})
        out.append(hits)
    return out


KIND = JobKind(
    name="index",
    version=4,
    names=names,
    build=build,
    run=run,
    pool="driver",
    shape="cylinder",
    description="a knowledge source's documents, chunked and embedded, as one index",
)
