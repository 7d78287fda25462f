"""Reference-based text metrics, computed by the reference libraries: exact match and contains
(with SQuAD's normalisation as an option), BLEU and chrF (sacrebleu), ROUGE (rouge-score).

Every function takes the rows of a shard (each with `output` and `expected`), the metric's
options and a context, and returns one value per row (None where the metric does not apply:
no output, no reference). A reference may be a list (several references: the best match counts,
as the libraries do). The text scored is the output, or the part `field:` names of a JSON
output; a JSON string output (`"Paris"`) is scored as its string.

    >>> rows = [{"output": " Paris ", "expected": "paris"}]
    >>> exact_match(rows, {"normalize": "lower", "field": None})
    [1.0]
    >>> exact_match([{"output": "The Eiffel tower!", "expected": "eiffel tower"}],
    ...             {"normalize": "squad", "field": None})
    [1.0]
"""

from __future__ import annotations

import json
import re
import string
from functools import cache
from typing import Any

Rows = list[dict[str, Any]]


def text_of(row: dict[str, Any], field: str | None) -> str | None:
    """The text a metric scores in a row: the output, a JSON string's value, or the part of a
    JSON output that `field` (a key or a JSON Pointer) names. The output is parsed once per row.

    >>> text_of({"output": '{"a": {"b": "x"}}'}, "/a/b"), text_of({"output": '"Paris"'}, None)
    ('x', 'Paris')
    """
    out = row.get("output")
    if out is None:
        return None

    if "_json" not in row:
        try:
            row["_json"] = json.loads(out) if out.lstrip()[:1] in ("{", "[", '"') else None
        except ValueError:
            row["_json"] = None
    value = row["_json"]
    if field is None:
        return value if isinstance(value, str) else out
    if value is None:
        return None
    for part in field.lstrip("/").split("/") if field.startswith("/") else [field]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def references(row: dict[str, Any]) -> list[str] | None:
    """A row's references: one, or several from a list column; None when it has none."""
    ref = row.get("expected")
    if ref is None:
        return None
    refs = ref if isinstance(ref, list) else [ref]
    return [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in refs]


def _pairs(rows: Rows, field: str | None) -> list[tuple[str, list[str]] | None]:
    out: list[tuple[str, list[str]] | None] = []
    for r in rows:
        hyp, refs = text_of(r, field), references(r)
        out.append(None if hyp is None or not refs else (hyp, refs))
    return out


# -- exact match and contains -----------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize(text: str, how: str) -> str:
    """`lower`: case-folded with whitespace collapsed; `squad`: SQuAD v1.1's normalize_answer
    (lowercase, no punctuation, no articles, whitespace collapsed); `none`: as is.

    >>> normalize("The  Cat, sat.", "squad")
    'cat sat'
    """
    if how == "none":
        return text
    if how == "lower":
        return " ".join(text.casefold().split())
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    how = opts.get("normalize", "lower")
    return [
        None if p is None else float(any(normalize(p[0], how) == normalize(r, how) for r in p[1]))
        for p in _pairs(rows, opts.get("field"))
    ]


def contains(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    """1 when a reference, normalized, appears in the normalized answer; an empty reference
    is never a match."""
    how = opts.get("normalize", "lower")
    out: list[float | None] = []
    for p in _pairs(rows, opts.get("field")):
        if p is None:
            out.append(None)
            continue
        hyp = normalize(p[0], how)
        refs = [normalize(r, how) for r in p[1]]
        out.append(float(any(r and r in hyp for r in refs)))
    return out


# -- BLEU and chrF (sacrebleu) ----------------------------------------------------------------


def _bleu(opts: dict[str, Any], sentence: bool) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(
        lowercase=opts.get("lowercase", False),
        tokenize=opts.get("tokenize", "13a"),
        smooth_method=opts.get("smooth_method", "exp"),
        smooth_value=opts.get("smooth_value"),
        max_ngram_order=opts.get("max_ngram_order", 4),
        effective_order=sentence,  # sacrebleu's advice: on for sentences, off for a corpus
    )


def _chrf(opts: dict[str, Any]) -> Any:
    from sacrebleu.metrics import CHRF

    return CHRF(
        char_order=opts.get("char_order", 6),
        word_order=opts.get("word_order", 0),
        beta=opts.get("beta", 2),
        lowercase=opts.get("lowercase", False),
        whitespace=opts.get("whitespace", False),
        eps_smoothing=opts.get("eps_smoothing", False),
    )


def _sentences(metric: Any, rows: Rows, opts: dict[str, Any]) -> list[float | None]:
    return [
        None if p is None else metric.sentence_score(p[0], p[1]).score / 100
        for p in _pairs(rows, opts.get("field"))
    ]


def bleu(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    """Sentence BLEU per row (effective order), 0..1."""
    return _sentences(_bleu(opts, sentence=True), rows, opts)


def chrf(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return _sentences(_chrf(opts), rows, opts)


class _Corpus:
    """A corpus-level score from per-row sufficient statistics, exactly as sacrebleu's
    `corpus_score` computes it: rows' statistics are summed, then scored (so a bootstrap over
    rows resamples statistics, as sacrebleu's own significance tests do)."""

    def __init__(self, make: Any):
        self.make = make

    def row_stats(self, rows: Rows, opts: dict[str, Any]) -> list[list[float] | None]:
        pairs = _pairs(rows, opts.get("field"))
        kept = [p for p in pairs if p is not None]
        if not kept:
            return [None] * len(rows)
        width = max(len(p[1]) for p in kept)
        streams = [[p[1][k] if k < len(p[1]) else None for p in kept] for k in range(width)]
        stats = iter(self.make(opts)._extract_corpus_statistics([p[0] for p in kept], streams))
        return [None if p is None else [float(x) for x in next(stats)] for p in pairs]

    def score(self, summed: list[float], opts: dict[str, Any]) -> float:
        stats = [int(round(x)) for x in summed]
        return self.make(opts)._compute_score_from_stats(stats).score / 100


BLEU_CORPUS = _Corpus(lambda opts: _bleu(opts, sentence=False))
CHRF_CORPUS = _Corpus(_chrf)


# -- ROUGE (rouge-score) -----------------------------------------------------------------------


class _UnicodeTokenizer:
    """Words of any script (letters, digits, marks), case-folded; CJK ideographs and kana one
    character each. rouge-score's own tokenizer keeps only [a-z0-9], so two identical answers in
    Japanese or Russian would score 0."""

    def __init__(self) -> None:
        import regex

        self._tok = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]|[\p{L}\p{N}\p{M}]+")

    def tokenize(self, text: str) -> list[str]:
        return self._tok.findall(text.casefold())


@cache
def _scorer(kind: str, stemmer: bool, tokenizer: str) -> Any:
    from rouge_score import rouge_scorer

    if tokenizer == "unicode":
        return rouge_scorer.RougeScorer([kind], tokenizer=_UnicodeTokenizer())
    return rouge_scorer.RougeScorer([kind], use_stemmer=stemmer)


def _rouge(kind: str, rows: Rows, opts: dict[str, Any]) -> list[float | None]:
    scorer = _scorer(kind, opts.get("stemmer", True), opts.get("tokenizer", "default"))
    out: list[float | None] = []
    for p in _pairs(rows, opts.get("field")):
        if p is None:
            out.append(None)
        elif len(p[1]) == 1:
            out.append(scorer.score(p[1][0], p[0])[kind].fmeasure)  # (reference, prediction)
        else:
            out.append(scorer.score_multi(p[1], p[0])[kind].fmeasure)
    return out


def rouge_1(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return _rouge("rouge1", rows, opts)


def rouge_2(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return _rouge("rouge2", rows, opts)


def rouge_l(rows: Rows, opts: dict[str, Any], ctx: Any = None) -> list[float | None]:
    return _rouge("rougeL", rows, opts)
