"""Reference-based text metrics: one value per generated row, in 0..1.

>>> exact_match([{"output": " Paris ", "expected": "paris"}])
[1.0]
>>> rouge_l([{"output": "the cat sat", "expected": "the cat sat down"}])[0] > 0.8
True
"""

from __future__ import annotations

import json
from functools import cache, lru_cache
from typing import Any

Rows = list[dict[str, Any]]


def answer_text(row: dict[str, Any]) -> str | None:
    """The text to score: the output, or its `answer` field when the output is a JSON object."""
    out = row.get("output")
    if out is None:
        return None
    return _answer_of(out) if out.lstrip().startswith("{") else out


@lru_cache(maxsize=4096)
def _answer_of(out: str) -> str:
    """A JSON output's answer, parsed once however many text metrics score it (a score job
    runs each metric over the same shard in turn)."""
    try:
        value = json.loads(out)
    except ValueError:
        return out
    if isinstance(value, dict):
        for key in ("answer", "output", "text", "response"):
            if isinstance(value.get(key), str):
                return value[key]
    return out


def _pairs(rows: Rows) -> list[tuple[str, str] | None]:
    out: list[tuple[str, str] | None] = []
    for r in rows:
        hyp, ref = answer_text(r), r.get("expected")
        out.append(None if hyp is None or ref is None else (hyp, str(ref)))
    return out


def _norm(s: str) -> str:
    return " ".join(s.casefold().split())


def exact_match(rows: Rows) -> list[float | None]:
    return [None if p is None else float(_norm(p[0]) == _norm(p[1])) for p in _pairs(rows)]


def contains(rows: Rows) -> list[float | None]:
    return [None if p is None else float(_norm(p[1]) in _norm(p[0])) for p in _pairs(rows)]


def bleu(rows: Rows) -> list[float | None]:
    from sacrebleu.metrics import BLEU

    metric = BLEU(effective_order=True)
    return [
        None if p is None else metric.sentence_score(p[0], [p[1]]).score / 100 for p in _pairs(rows)
    ]


def chrf(rows: Rows) -> list[float | None]:
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    return [
        None if p is None else metric.sentence_score(p[0], [p[1]]).score / 100 for p in _pairs(rows)
    ]


@cache
def _rouge(kind: str) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([kind], use_stemmer=True)


def _rouge_f(kind: str, rows: Rows) -> list[float | None]:
    scorer = _rouge(kind)
    return [None if p is None else scorer.score(p[1], p[0])[kind].fmeasure for p in _pairs(rows)]


def rouge_1(rows: Rows) -> list[float | None]:
    return _rouge_f("rouge1", rows)


def rouge_2(rows: Rows) -> list[float | None]:
    return _rouge_f("rouge2", rows)


def rouge_l(rows: Rows) -> list[float | None]:
    return _rouge_f("rougeL", rows)
