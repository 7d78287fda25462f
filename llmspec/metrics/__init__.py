"""The metric registry: names users write in `suites.*.metrics`, lazily bound to code.

Each entry is `"module:function"`, imported only when a score job runs, so `validate` and
`plan` stay light. `version` is part of a score job's content key: bump it when a metric's
implementation changes what it computes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricInfo:
    impl: str
    version: int
    needs_reference: bool
    description: str
    deterministic: bool = True  # False: varies run to run, so it stays out of the lock


METRICS: dict[str, MetricInfo] = {
    "exact_match": MetricInfo(
        "llmspec.metrics.text:exact_match",
        1,
        True,
        "1 when the answer equals the reference after trimming and case-folding",
    ),
    "contains": MetricInfo(
        "llmspec.metrics.text:contains",
        1,
        True,
        "1 when the reference appears in the answer (case-folded)",
    ),
    "bleu": MetricInfo(
        "llmspec.metrics.text:bleu",
        1,
        True,
        "sentence BLEU (sacrebleu), scaled to 0..1",
    ),
    "chrf": MetricInfo("llmspec.metrics.text:chrf", 1, True, "chrF (sacrebleu), scaled to 0..1"),
    "rouge_1": MetricInfo("llmspec.metrics.text:rouge_1", 1, True, "ROUGE-1 F1 (rouge-score)"),
    "rouge_2": MetricInfo("llmspec.metrics.text:rouge_2", 1, True, "ROUGE-2 F1 (rouge-score)"),
    "rouge_l": MetricInfo("llmspec.metrics.text:rouge_l", 1, True, "ROUGE-L F1 (rouge-score)"),
    "schema_valid": MetricInfo(
        "llmspec.metrics.structure:schema_valid",
        1,
        False,
        "1 when the output satisfies the prompt's constraint (schema, regex or choice)",
    ),
    "json_valid": MetricInfo(
        "llmspec.metrics.structure:json_valid",
        1,
        False,
        "1 when the output parses as JSON",
    ),
    "latency": MetricInfo(
        "llmspec.metrics.structure:latency",
        1,
        False,
        "seconds per generation (mean)",
        deterministic=False,
    ),
}

GATE_OPS = (">=", "<=", "==", "!=", ">", "<")


def load_metric(name: str):
    """The function computing a metric: rows -> one value (or None) per row."""
    import importlib

    module, _, attr = METRICS[name].impl.partition(":")
    return getattr(importlib.import_module(module), attr)
