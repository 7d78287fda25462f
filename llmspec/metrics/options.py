"""Each metric's settings: what users of the reference libraries expect to set, with the
libraries' defaults unless said otherwise. Plain pydantic models, imported by validate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmspec.spec import Bool, Float, Int, Name, Spec, Str


class Options(Spec):
    name: Name | None = Field(
        None, description="the name the suite reports it under (default: the metric's name)"
    )


class TextOptions(Options):
    field: Str | None = Field(
        None,
        description="the part of a structured (JSON) output to score: a key (`answer`) or a "
        "JSON Pointer (`/answer/text`)",
    )


class MatchOptions(TextOptions):
    normalize: Literal["none", "lower", "squad"] = Field(
        "lower",
        description="none: exact; lower: case-folded, whitespace collapsed; squad: also without "
        "punctuation and articles, as SQuAD's normalize_answer",
    )


class BleuOptions(TextOptions):
    tokenize: Literal["13a", "intl", "zh", "char", "none"] = "13a"
    smooth_method: Literal["exp", "floor", "add-k", "none"] = "exp"
    smooth_value: Float | None = Field(None, ge=0, description="for floor (0.1) and add-k (1)")
    lowercase: Bool = False
    max_ngram_order: Int = Field(4, ge=1, le=10)


class ChrfOptions(TextOptions):
    char_order: Int = Field(6, ge=1, le=20)
    word_order: Int = Field(0, ge=0, le=6, description="2 gives chrF++")
    beta: Int = Field(2, ge=1, le=10)
    eps_smoothing: Bool = False
    lowercase: Bool = False
    whitespace: Bool = False


class RougeOptions(TextOptions):
    stemmer: Bool = Field(True, description="Porter stemming (rouge-score's use_stemmer)")
    tokenizer: Literal["default", "unicode"] = Field(
        "default",
        description="default: rouge-score's, which keeps only [a-z0-9]; unicode: words of any "
        "script, CJK by character (no stemming)",
    )


class SimilarityOptions(TextOptions):
    embed: Str = Field("minilm", description="`minilm`, or a sentence-transformers folder")


class JudgeOptions(Options):
    model: Name = Field(description="the model that grades")
    rubric: Str = Field(description="what the judge scores, and how")
    scale: tuple[Int, Int] = Field((1, 5), description="lowest and highest score")
    field: Str | None = Field(None, description="the part of the output the judge sees")


class PlainOptions(Options):
    pass


class RetrievalOptions(Options):
    k: Int | None = Field(
        None, ge=1, le=100, description="score the first k retrieved chunks (default: top_k)"
    )


ABSTAIN_PHRASES = (
    "i don't know",
    "i do not know",
    "don't know",
    "cannot answer",
    "can't answer",
    "unable to answer",
    "no information",
    "not in the",
    "does not say",
    "doesn't say",
    "do not say",
    "not mentioned",
    "not covered",
    "does not answer",
    "do not answer",
    "not enough information",
)
"""Phrases that mark an answer as an abstention (matched case-folded, anywhere in it)."""


class AbstentionOptions(TextOptions):
    phrases: tuple[Str, ...] = Field(
        ABSTAIN_PHRASES, min_length=1, description="an answer holding one of these abstains"
    )


class GroundednessOptions(TextOptions):
    judge: Name | None = Field(
        None, description="a declared model that grades; without one, embedding similarity"
    )
    embed: Str = Field("minilm", description="the embedding model of the fallback")
    threshold: Float = Field(
        0.5, ge=-1, le=1, description="fallback: a sentence is grounded at this cosine or more"
    )
