"""Metrics: names users write in `suites.*.metrics`, each a record bound lazily to its code.

A `MetricKind` says what a metric needs (a reference column, an embedding model, a judge model,
log-probabilities), how it aggregates (`mean` of row values, or `corpus`: BLEU and chrF
computed over the whole set from summed statistics, as sacrebleu's corpus_score does), which way
is better, whether its value is deterministic (latency is not: it stays out of the lock), its
option model (`metrics.options`) and its implementation (`"module:function"`, imported when a
score job runs, so `validate` and `plan` stay light). Its `version` is part of a score job's
key: bump it when the implementation would compute something else.

    >>> parse_metric({"exact_match": {"field": "answer", "normalize": "squad"}})[:2]
    ('exact_match', 'exact_match')
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from llmspec.metrics import options as o


@dataclass(frozen=True)
class MetricKind:
    name: str
    version: int
    options: type[o.Options]
    description: str
    impl: str | None = None  # "module:function": (rows, options, ctx) -> one value per row
    corpus: str | None = None  # "module:object" with row_stats(rows, options) and score(sum)
    needs_reference: bool = False
    needs: Literal["rows", "embedder", "judge", "logprobs"] = "rows"
    retrieval: Literal["none", "context", "reference"] = "none"  # needs retrieved chunks; and
    # each row's reference context (a generated set's, or a dataset's `reference_context`)
    higher_is_better: bool = True
    deterministic: bool = True
    unit: str = ""


_TEXT = "llmspec.metrics.text"
_RAG = "llmspec.metrics.retrieval"
METRICS: dict[str, MetricKind] = {
    m.name: m
    for m in (
        MetricKind(
            "exact_match", 2, o.MatchOptions, "1 when the answer equals a reference, normalized",
            f"{_TEXT}:exact_match", needs_reference=True,
        ),
        MetricKind(
            "contains", 2, o.MatchOptions, "1 when a (non-empty) reference appears in the answer",
            f"{_TEXT}:contains", needs_reference=True,
        ),
        MetricKind(
            "bleu", 2, o.BleuOptions, "BLEU (sacrebleu), 0..1: corpus BLEU for the suite, "
            "sentence BLEU per row", f"{_TEXT}:bleu", f"{_TEXT}:BLEU_CORPUS",
            needs_reference=True,
        ),
        MetricKind(
            "chrf", 2, o.ChrfOptions, "chrF (sacrebleu), 0..1: corpus chrF for the suite, "
            "sentence chrF per row", f"{_TEXT}:chrf", f"{_TEXT}:CHRF_CORPUS",
            needs_reference=True,
        ),
        MetricKind(
            "rouge_1", 2, o.RougeOptions, "ROUGE-1 F1 (rouge-score)", f"{_TEXT}:rouge_1",
            needs_reference=True,
        ),
        MetricKind(
            "rouge_2", 2, o.RougeOptions, "ROUGE-2 F1 (rouge-score)", f"{_TEXT}:rouge_2",
            needs_reference=True,
        ),
        MetricKind(
            "rouge_l", 2, o.RougeOptions, "ROUGE-L F1 (rouge-score)", f"{_TEXT}:rouge_l",
            needs_reference=True,
        ),
        MetricKind(
            "semantic_similarity", 1, o.SimilarityOptions,
            "cosine similarity of answer and reference embeddings (MiniLM by default)",
            "llmspec.metrics.semantic:semantic_similarity", needs_reference=True,
            needs="embedder",
        ),
        MetricKind(
            "schema_valid", 2, o.PlainOptions,
            "1 when the output satisfies the prompt's constraint (schema, regex or choice)",
            "llmspec.metrics.structure:schema_valid",
        ),
        MetricKind(
            "json_valid", 2, o.PlainOptions, "1 when the output parses as JSON",
            "llmspec.metrics.structure:json_valid",
        ),
        MetricKind(
            "judge", 1, o.JudgeOptions,
            "a declared model's score for the answer against a rubric, 0..1 (with its reason)",
            needs="judge",
        ),
        MetricKind(
            "perplexity", 1, o.PlainOptions,
            "perplexity of the reference under the variant's model (lower is better)",
            needs="logprobs", needs_reference=True, higher_is_better=False,
        ),
        MetricKind(
            "hit_rate", 1, o.RetrievalOptions,
            "1 when a retrieved chunk is in the row's reference context",
            f"{_RAG}:hit_rate", retrieval="reference",
        ),
        MetricKind(
            "recall_at_k", 1, o.RetrievalOptions,
            "share of the row's reference context found in the first k retrieved chunks",
            f"{_RAG}:recall_at_k", retrieval="reference",
        ),
        MetricKind(
            "mrr", 1, o.RetrievalOptions,
            "1 / rank of the first retrieved chunk in the reference context (0: none)",
            f"{_RAG}:mrr", retrieval="reference",
        ),
        MetricKind(
            "context_precision", 1, o.RetrievalOptions,
            "rank-weighted precision of the retrieved chunks against the reference context "
            "(RAGAS's, with reference contexts)",
            f"{_RAG}:context_precision", retrieval="reference",
        ),
        MetricKind(
            "groundedness", 1, o.GroundednessOptions,
            "share of the answer supported by the retrieved chunks: a judge model's grade, or "
            "without one the share of sentences embedded near a chunk",
            f"{_RAG}:groundedness", needs="embedder", retrieval="context",
        ),
        MetricKind(
            "abstention", 1, o.AbstentionOptions,
            "on out-of-scope questions: 1 when the answer abstains",
            f"{_RAG}:abstention",
        ),
        MetricKind(
            "latency", 2, o.PlainOptions,
            "seconds per generation: each row's own time to completion",
            "llmspec.metrics.usage:latency", higher_is_better=False, deterministic=False,
            unit="s",
        ),
        MetricKind(
            "ttft", 1, o.PlainOptions, "seconds to the first generated token (local models)",
            "llmspec.metrics.usage:ttft", higher_is_better=False, deterministic=False, unit="s",
        ),
        MetricKind(
            "tokens_in", 1, o.PlainOptions, "prompt tokens per row",
            "llmspec.metrics.usage:tokens_in", higher_is_better=False,
        ),
        MetricKind(
            "tokens_out", 1, o.PlainOptions, "generated tokens per row",
            "llmspec.metrics.usage:tokens_out", higher_is_better=False,
        ),
        MetricKind(
            "cost", 1, o.PlainOptions, "price of a row's tokens, from the model's `price`",
            "llmspec.metrics.usage:cost", higher_is_better=False,
        ),
    )
}  # fmt: skip


def parse_metric(entry: Any) -> tuple[str, str, dict[str, Any]]:
    """(reported name, metric kind, raw options) of a suite's metric entry; no validation."""
    if isinstance(entry, str):
        return entry, entry, {}
    ((kind, opts),) = entry.items()
    opts = dict(opts or {})
    return str(opts.get("name") or kind), kind, opts


def load(impl: str) -> Any:
    """The function (or object) an implementation string names."""
    module, _, attr = impl.partition(":")
    return getattr(importlib.import_module(module), attr)
