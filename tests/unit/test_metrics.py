"""Metrics equal the reference libraries on their own reference cases (sacrebleu's test_bleu.py
and test_chrf.py, rouge-score's rouge_scorer_test.py), with their options; statistics are
what they say."""

from __future__ import annotations

import math

import pytest

from llmspec.metrics import text
from llmspec.stats import (
    bootstrap_mean_interval,
    corpus_summary,
    holm,
    paired_difference,
    repeat_agreement,
)

# sacrebleu's own corpus case (test/test_bleu.py), two reference streams
REFS = [
    ["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."],
]
HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]


def _rows(hyps, refs_by_row):
    return [{"output": h, "expected": r} for h, r in zip(hyps, refs_by_row, strict=True)]


def _corpus(metric, opts, hyps=HYPS, refs=REFS):
    rows = _rows(hyps, [list(r) for r in zip(*refs, strict=True)])
    stats = metric.row_stats(rows, opts)
    return metric.score([sum(col) for col in zip(*stats, strict=True)], opts)


@pytest.mark.parametrize(
    ("opts", "expected"),
    [
        ({}, 48.530827),
        ({"tokenize": "none"}, 49.1919566),
        ({"tokenize": "intl"}, 43.91623493),
        ({"smooth_method": "none"}, 48.530827),
        ({"max_ngram_order": 1}, 77.65),
        ({"max_ngram_order": 2}, 60.50),
    ],
)
def test_corpus_bleu_equals_sacrebleu_reference_cases(opts, expected) -> None:
    from sacrebleu.metrics import BLEU

    full = {"tokenize": "13a", "smooth_method": "exp", "max_ngram_order": 4} | opts
    ours = _corpus(text.BLEU_CORPUS, full) * 100
    theirs = BLEU(**{k: v for k, v in full.items()}).corpus_score(HYPS, REFS).score
    assert ours == pytest.approx(theirs, abs=1e-8)
    assert ours == pytest.approx(expected, abs=1e-2 if expected in (77.65, 60.50) else 1e-6)


def test_sentence_bleu_and_options_equal_sacrebleu() -> None:
    from sacrebleu.metrics import BLEU

    hyp, ref = "The cat sat on the mat today.", "The cat is sitting on the mat."
    for opts in (
        {"smooth_method": "exp"},
        {"smooth_method": "floor", "smooth_value": 0.5},
        {"smooth_method": "add-k", "smooth_value": 2},
        {"tokenize": "char"},
        {"tokenize": "char", "lowercase": True},
    ):
        ours = text.bleu([{"output": hyp, "expected": ref}], opts)[0]
        theirs = BLEU(effective_order=True, **opts).sentence_score(hyp, [ref]).score / 100
        assert ours == pytest.approx(theirs, abs=1e-12), opts


def test_corpus_chrf_equals_sacrebleu() -> None:
    assert _corpus(text.CHRF_CORPUS, {}) * 100 == pytest.approx(59.73, abs=5e-3)
    assert _corpus(text.CHRF_CORPUS, {"word_order": 2}) * 100 == pytest.approx(59.15, abs=5e-3)
    from sacrebleu.metrics import CHRF

    ours = _corpus(text.CHRF_CORPUS, {"beta": 3, "eps_smoothing": True})
    assert ours * 100 == pytest.approx(
        CHRF(beta=3, eps_smoothing=True).corpus_score(HYPS, REFS).score, abs=1e-9
    )


def test_multiple_references_take_the_best_match() -> None:
    rows = [{"output": "It was not unexpected.", "expected": ["No.", "It was not unexpected."]}]
    assert text.exact_match(rows, {"normalize": "lower"}) == [1.0]
    assert text.rouge_l(rows, {}) == [1.0]
    assert text.bleu(rows, {})[0] == pytest.approx(1.0)


def test_rouge_equals_rouge_score_reference_cases() -> None:
    # rouge_scorer_test.py testRouge1: "testing one two" vs "testing" -> F 1/2
    rows = [{"output": "testing", "expected": "testing one two"}]
    assert text.rouge_1(rows, {"stemmer": False}) == [pytest.approx(0.5)]
    # testRougeLConsecutive: 4/5
    rows = [{"output": "testing one two", "expected": "testing one two three four"}]
    assert text.rouge_l(rows, {"stemmer": False}) == [pytest.approx(0.75)]
    # the stemmer is a setting: runners/running match runner/runs only with it
    rows = [{"output": "the runner runs", "expected": "the runners were running"}]
    assert text.rouge_1(rows, {"stemmer": True})[0] > text.rouge_1(rows, {"stemmer": False})[0]


def test_unicode_tokenizer_scores_non_latin_text() -> None:
    rows = [
        {"output": "猫が好きです", "expected": "猫が好きです"},
        {"output": "Привет мир", "expected": "привет мир"},
    ]
    assert text.rouge_l(rows, {"tokenizer": "default"}) == [0.0, 0.0]  # rouge-score drops them
    assert text.rouge_l(rows, {"tokenizer": "unicode"}) == [1.0, 1.0]


def test_exact_match_contains_and_fields() -> None:
    rows = [
        {"output": '{"answer": "The Eiffel Tower."}', "expected": "eiffel tower"},
        {"output": '"Paris"', "expected": "paris"},  # a JSON string is scored as its string
        {"output": "anything", "expected": ""},
        {"output": None, "expected": "x"},
    ]
    assert text.exact_match(rows[:1], {"normalize": "squad", "field": "answer"}) == [1.0]
    assert text.exact_match(rows[:1], {"normalize": "lower", "field": "/answer"}) == [0.0]
    assert text.exact_match(rows[1:2], {"normalize": "lower"}) == [1.0]
    assert text.contains(rows[2:3], {"normalize": "lower"}) == [0.0]  # empty ref: no match
    assert text.contains(rows[3:], {}) == [None]  # no output: does not apply
    assert text.normalize("An apple, the pie.", "squad") == "apple pie"


def test_bootstrap_interval_covers_a_known_distribution() -> None:
    import random

    rng = random.Random(7)
    n, p = 2000, 0.3
    xs = [1.0 if rng.random() < p else 0.0 for _ in range(n)]
    lo, hi = bootstrap_mean_interval(xs)
    mean = sum(xs) / n
    half = 1.959964 * math.sqrt(mean * (1 - mean) / n)  # the normal approximation
    assert lo < mean < hi and abs(mean - p) < 0.05
    assert lo == pytest.approx(mean - half, abs=0.004)
    assert hi == pytest.approx(mean + half, abs=0.004)
    assert bootstrap_mean_interval(xs) == (lo, hi)  # seeded: reproducible


def test_paired_differences_and_holm() -> None:
    a = [1.0] * 30 + [0.0] * 10
    b = [0.0] * 30 + [0.0] * 10
    d = paired_difference(a, b)
    assert d["mean"] == 0.75 and d["significant"] and d["p"] < 0.01 and d["lcb95"] > 0.5
    same = paired_difference(a, a)
    assert same["mean"] == 0.0 and not same["significant"] and same["p"] == 1.0
    assert holm([0.001, 0.02, 0.06]) == [True, True, False]


def test_corpus_summary_bootstraps_the_corpus_score() -> None:
    stats = [[1.0, 2.0], [3.0, 2.0], [0.0, 4.0]]  # e.g. (nll, tokens)
    s = corpus_summary(stats, [0.5, 1.5, 0.0], lambda v: v[0] / v[1])
    assert s["mean"] == pytest.approx(0.5) and s["lcb95"] <= 0.5 <= s["ucb95"]
    assert s["max"] == 1.5 and s["n"] == 3


def test_repeat_agreement() -> None:
    keys = [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]]
    assert repeat_agreement(keys, [1.0, 1.0, 0.0, 1.0, 1.0]) == {
        "rows": 2,
        "agreement": 0.5,
        "flip_rate": 0.5,
    }
    assert repeat_agreement([[0, 0]], [1.0]) is None
