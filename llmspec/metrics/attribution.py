"""Failure attribution: for each wrong answer of a suite that retrieves, the component to blame.

- `knowledge base`: no chunk of the index supports the reference answer (no chunk is in the
  row's reference context, or those that are share less than `support` of its words; for a
  row without a reference context: no chunk of the index does).
- `retriever`: a chunk supports it, but none of the retrieved ones is (in) the reference.
- `generator`: the reference was retrieved and the answer is still wrong; or an out-of-scope
  question was answered instead of declined.

A row's answer is wrong when the suite's `correct:` condition (`METRIC OP NUMBER`; by default
its first answer metric) fails. Rows that errored, or have no value of that metric, are not
attributed (None).
"""

from __future__ import annotations

from typing import Any

from llmspec.gates import OPS
from llmspec.metrics.retrieval import abstains, matches, out_of_scope, support, words
from llmspec.metrics.text import references, text_of

KB, RETRIEVER, GENERATOR = "knowledge base", "retriever", "generator"
COMPONENTS = (RETRIEVER, GENERATOR, KB)


class _Postings:
    """Which chunks hold each word: the best-supporting chunk without scanning them all."""

    def __init__(self, chunks: list[dict[str, Any]]):
        self.words: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            for w in words(c["text"]):
                self.words.setdefault(w, []).append(i)

    def best(self, answer: str) -> float:
        want = words(answer)
        if not want:
            return 0.0
        counts: dict[int, int] = {}
        for w in want:
            for i in self.words.get(w, ()):
                counts[i] = counts.get(i, 0) + 1
        return max(counts.values(), default=0) / len(want)


def attribute(
    rows: list[dict[str, Any]],
    values: dict[str, list[Any]],
    settings: dict[str, Any],
    chunks: list[dict[str, Any]],
) -> list[str | None]:
    """The component blamed for each row (None: right, or not attributable)."""
    correct, threshold = settings.get("correct"), settings["support"]
    postings: _Postings | None = None
    out: list[str | None] = []
    for i, r in enumerate(rows):
        if r.get("finish") == "error":
            out.append(None)
            continue
        if out_of_scope(r):
            text = text_of(r, settings.get("field"))
            wrong = text is not None and not abstains(text, settings["phrases"])
            out.append(GENERATOR if wrong else None)
            continue
        value = values.get(correct["metric"], [None] * len(rows))[i] if correct else None
        if value is None or OPS[correct["op"]](value, correct["value"]):
            out.append(None)
            continue
        expected = " ".join(references(r) or [])
        refs = r.get("reference_context")
        retrieved = r.get("context") or []
        if refs:
            held = [c for c in chunks if any(matches(c, ref) for ref in refs)]
            if not held or support(expected, [c["text"] for c in held]) < threshold:
                out.append(KB)
            elif not any(matches(c, ref) for c in retrieved for ref in refs):
                out.append(RETRIEVER)
            else:
                out.append(GENERATOR)
            continue
        if retrieved and support(expected, [c["text"] for c in retrieved]) >= threshold:
            out.append(GENERATOR)
            continue
        postings = postings or _Postings(chunks)
        out.append(RETRIEVER if postings.best(expected) >= threshold else KB)
    return out
