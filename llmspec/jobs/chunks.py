"""`chunks` jobs: one document of a knowledge source, read, chunked and embedded.

A knowledge source over files gets one job per file (`chunks.help.kb/refunds.md`), keyed by
that file's digest, the chunking settings and the embedding model's identity: editing one
document re-chunks and re-embeds that document only, and the plan names it. A source over a
dataset column gets one job for the dataset. Jobs run on the general workers, so a corpus is
embedded in parallel across them; the `index` job puts the documents together.

Output: the chunks, each with a stable id (`kb/refunds.md#3`: the document and the chunk's
place in it), its source, section (heading trail, page) and text. The vectors go to `meta`,
outside the output's digest (their last bits vary with the CPU), as base64 float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmspec.jobs import JobError, JobKind


def names(spec: Any) -> Any:
    return spec.knowledge


def build(cx: Any, name: str) -> dict[str, Any]:
    """The source's chunk jobs by document (file path, or the dataset's name)."""
    from llmspec.documents import document_format

    k = cx.spec.knowledge[name]
    fact = cx.facts.knowledge(name)
    local = dict(cx.facts.knowledge_local(name))
    loc = cx.loc("knowledge", name, "source")
    out: dict[str, Any] = {}
    if k.source.path is not None:
        for rel in fact["files"]:
            fmt = document_format(rel)
            ins = cx.inputs().take(
                "knowledge", "knowledge", name, (("files", rel), "chunk", "embed")
            )
            reader: dict[str, Any] = {"format": fmt}
            if fmt == "jsonl":
                reader["column"] = k.source.column
            ins.set("reader", reader)
            out[rel] = cx.job(
                "chunks", f"chunks.{name}.{rel}", ins, local=local | {"file": rel}, loc=loc
            )
        return out
    ins = cx.inputs().take("knowledge", "knowledge", name, ("source", "chunk", "embed"))
    deps = {}
    ds = cx.spec.datasets[k.source.dataset]
    if ds.generate is not None:
        deps["dataset"] = cx.get("testgen", k.source.dataset)
    else:
        ins.take("dataset", "datasets", k.source.dataset, ("rows", "content"))
        rows = cx.facts.dataset(k.source.dataset)["rows"]
        local["dataset"] = cx.facts.shard_local(k.source.dataset, 0, rows)
    out[k.source.dataset] = cx.job("chunks", f"chunks.{name}", ins, deps=deps, local=local, loc=loc)
    return out


def _tokenizer(job: Any, ctx: Any) -> Any:
    if job.inputs["knowledge"]["chunk"]["unit"] != "tokens":
        return None
    return ctx.embedder(job.local["embed"]).tokenizer


def _file_chunks(job: Any, ctx: Any) -> list[dict[str, Any]]:
    from llmspec.chunking import chunk_sections
    from llmspec.documents import DocumentError, read_sections
    from llmspec.hashing import file_digest

    k = job.inputs["knowledge"]
    ((rel, want),) = k["files"].items()
    try:
        data = (Path(job.local["root"]) / rel).read_bytes()
    except OSError as e:
        raise JobError(f"cannot read `{rel}`: {e.strerror}; plan again") from None
    if file_digest(data) != want:
        raise JobError(f"`{rel}` changed since the plan was made; plan again")
    reader = job.inputs["reader"]
    try:
        sections = read_sections(data, reader["format"], reader.get("column", "text"))
    except DocumentError as e:
        raise JobError(f"`{rel}`: {e}") from None
    c = k["chunk"]
    chunks = chunk_sections(sections, c["size"], c["overlap"], c["unit"], _tokenizer(job, ctx))
    return [{"id": f"{rel}#{n}", "source": rel} | ch for n, ch in enumerate(chunks)]


def _dataset_chunks(job: Any, deps: Any, ctx: Any) -> list[dict[str, Any]]:
    from llmspec.chunking import chunk_sections
    from llmspec.documents import Section

    src, c = job.inputs["knowledge"]["source"], job.inputs["knowledge"]["chunk"]
    if "dataset" in deps:
        rows = deps["dataset"]["rows"]
    else:
        rows = ctx.dataset_rows(job.local["dataset"], 0, job.inputs["dataset"]["rows"])
    tokenizer = _tokenizer(job, ctx)
    out = []
    for i, row in enumerate(rows):
        value = row.get(src["column"])
        if value is None:
            raise JobError(f"row {i} of dataset `{src['dataset']}` has no `{src['column']}`")
        doc = f"{src['dataset']}[{i}]"
        sections = [Section(None, str(value).strip())] if str(value).strip() else []
        pieces = chunk_sections(sections, c["size"], c["overlap"], c["unit"], tokenizer)
        out += [{"id": f"{doc}#{n}", "source": doc} | ch for n, ch in enumerate(pieces)]
    return out


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    from llmspec.vectors import embed, encode

    if "files" in job.inputs["knowledge"]:
        chunks = _file_chunks(job, ctx)
    else:
        chunks = _dataset_chunks(job, deps, ctx)
    if chunks:
        vectors = encode(embed(ctx.embedder(job.local["embed"]), [c["text"] for c in chunks]))
    else:
        vectors = encode(_empty())
    return {"chunks": chunks}, {"embeddings": vectors, "chunks": len(chunks)}


def _empty() -> Any:
    import numpy as np

    return np.zeros((0, 0), dtype=np.float32)


KIND = JobKind(
    name="chunks",
    version=1,
    names=names,
    build=build,
    run=run,
    pool="general",
    shape="note",
    description="read, chunk and embed one document of a knowledge source",
)
