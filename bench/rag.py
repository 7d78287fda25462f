"""What a knowledge index costs: indexing a corpus, retrieving in batches, re-indexing one file.

    .venv/bin/python bench/rag.py [--smoke] [--files N] [--chunks N] [--queries N] [--rounds N]

Corpus: `--files` Markdown files (100) of `--chunks` sections each (100), one chunk per
section (chunk size 400 characters), so 10,000 chunks; `--smoke`: 4 files x 10 chunks and 40
queries, one round. MiniLM is loaded once, before anything is timed.

Part 1, indexing: `apply` of a project holding only the knowledge source, in-process runner,
through the Python API, from an empty store (`chunks` job per file, then `index`): chunks/s.
Side by side, in the same rounds, the embedding alone (`SentenceTransformer.encode` of the
same texts in batches of 64), so the ratio is what llmspec adds around the model.

Part 2, incremental: edit one file, apply again: only its `chunks` job and `index` run. The
ratio one-file re-index / full index is the cost of an edit against the corpus's; `files` x
that ratio near 1 means the edit costs one file's share.

Part 3, retrieval: `--queries` (1,000) queries in one batch against the index
(`llmspec.jobs.index.retrieve`, top 3): the query embedding, then the search, exact (numpy)
and faiss (where installed), timed apart; and the two backends' results compared.

Projects live in a temporary folder; the repository is not touched. Every case runs once per
round, rounds interleaved; medians with the min-max spread.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _projects as P  # noqa: E402

from llmspec.apply import apply_plan  # noqa: E402
from llmspec.compile import compile_project  # noqa: E402
from llmspec.hashing import HashCache  # noqa: E402
from llmspec.jobs import JobContext  # noqa: E402
from llmspec.lock import lock_digest, read_lock  # noqa: E402
from llmspec.plan import make_plan  # noqa: E402
from llmspec.project import load_project  # noqa: E402
from llmspec.runner.inline import InlineRunner  # noqa: E402
from llmspec.store import Store  # noqa: E402

WORDS = (
    "refund card parcel warehouse shipping customs invoice billing order account password "
    "delivery return exchange gift sale size colour courier tracking address country fee "
    "payment receipt discount voucher support email phone hours weekend holiday store"
).split()


def write_corpus(root: Path, files: int, chunks: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    (root / "kb").mkdir(parents=True)
    for f in range(files):
        parts = []
        for c in range(chunks):
            words = " ".join(rng.choice(WORDS) for _ in range(40))
            parts.append(f"## Topic {f}.{c}\n{words.capitalize()}.\n")
        (root / "kb" / f"doc{f:04d}.md").write_text("\n".join(parts))
    (root / "llmspec.yaml").write_text(
        "version: 1\nname: rag-bench\nknowledge:\n  kb:\n"
        "    source: {path: kb, include: ['**/*.md']}\n"
        "    chunk: {size: 400, overlap: 40}\n    top_k: 3\n"
    )


def apply_once(root: Path) -> tuple[float, int]:
    """Seconds of plan + apply, and how many jobs ran."""
    t0 = time.perf_counter()
    graph = compile_project(load_project(root), HashCache(None))
    store = Store(root)
    stored = store.keys()
    plan = make_plan(graph, read_lock(root), stored, lock_digest(root))
    report = apply_plan(plan, graph, store, InlineRunner(), stored=stored)
    if not report.ok:
        raise RuntimeError(f"apply failed: {report.failed}")
    return time.perf_counter() - t0, len(report.done)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--chunks", type=int, default=100)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if args.smoke:
        args.files, args.chunks, args.queries, args.rounds = 4, 10, 40, 1
    total = args.files * args.chunks
    import numpy as np

    from llmspec.facts import Facts

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        base = tmp / "base"
        write_corpus(base, args.files, args.chunks)
        embed_path = Facts(load_project(base), HashCache(None)).embedder("minilm")[1]
        model = JobContext().embedder(embed_path)  # loaded once: every case below reuses it
        texts = [p for f in sorted((base / "kb").glob("*.md")) for p in f.read_text().split("\n\n")]
        work = tmp / "work"
        state: dict[str, float | int] = {}

        def full() -> float:
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base, work)
            seconds, ran = apply_once(work)
            state["ran_full"] = ran
            return seconds

        def one_file() -> float:
            doc = work / "kb" / "doc0000.md"
            doc.write_text(doc.read_text().replace("Topic 0.0", f"Topic 0.0 {time.time_ns()}", 1))
            seconds, ran = apply_once(work)
            state["ran_edit"] = ran
            return seconds

        def encode_only() -> float:
            t0 = time.perf_counter()
            model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            return time.perf_counter() - t0

        times = P.interleaved(
            {"index": full, "re-index one file": one_file, "encode only": encode_only},
            args.rounds,
            {},
        )
        print(f"Corpus: {args.files} files x {args.chunks} chunks = {total:,} chunks")
        rows = [
            [name, f"{P.med(xs):.2f}", f"{total / P.med(xs):,.0f}", P.spread(xs)]
            for name, xs in times.items()
        ]
        print(P.table(["case", "median s", "chunks/s", "spread ms"], rows))
        full_s, edit_s = P.med(times["index"]), P.med(times["re-index one file"])
        print(
            f"jobs run: index {state['ran_full']}, re-index {state['ran_edit']} (one chunks job "
            "and the index)"
        )
        print(f"ratio index / encode only: {full_s / P.med(times['encode only']):.2f}")
        print(
            f"ratio re-index one file / index: {edit_s / full_s:.4f} (one file is "
            f"{1 / args.files:.4f} of the corpus; x files = {edit_s / full_s * args.files:.2f})"
        )

        # -- retrieval ------------------------------------------------------------------
        from llmspec.jobs.index import retrieve
        from llmspec.store import Store as S
        from llmspec.vectors import decode, embed, faiss_available, search

        graph = compile_project(load_project(work), HashCache(None))
        got = S(work).get(graph.jobs["index.kb"].key)
        matrix = decode(got.meta["embeddings"])
        rng = random.Random(3)
        queries = [" ".join(rng.choice(WORDS) for _ in range(8)) + "?" for _ in range(args.queries)]
        backends = ["exact"] + (["faiss"] if faiss_available() else [])
        qvecs = {}

        def embed_queries() -> float:
            t0 = time.perf_counter()
            qvecs["q"] = embed(model, queries)
            return time.perf_counter() - t0

        cases = {"embed queries": embed_queries}
        for b in backends:
            cases[f"search {b}"] = lambda b=b: _timed(lambda: search(matrix, qvecs["q"], 3, b))
        cases["retrieve (embed + exact)"] = lambda: _timed(
            lambda: retrieve(got.output, matrix, queries, model, 3)
        )
        embed_queries()
        for b in backends:  # imports and first-call set-up, untimed
            search(matrix, qvecs["q"][:2], 3, b)
        rt = P.interleaved(cases, args.rounds, {})
        print(f"\nRetrieval: {args.queries:,} queries in one batch over {total:,} chunks, top 3")
        rows = [
            [name, f"{P.med(xs):.3f}", f"{args.queries / P.med(xs):,.0f}", P.spread(xs)]
            for name, xs in rt.items()
        ]
        print(P.table(["case", "median s", "queries/s", "spread ms"], rows))
        if "faiss" in backends:
            a = search(matrix, qvecs["q"], 3, "exact")[1]
            b = search(matrix, qvecs["q"], 3, "faiss")[1]
            print(f"exact and faiss agree on {np.mean(a == b):.4f} of the top-3 ids")
            print(
                f"ratio search exact / faiss: "
                f"{P.med(rt['search exact']) / P.med(rt['search faiss']):.2f}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
