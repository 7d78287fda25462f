"""Text metrics read a JSON output's answer once per output, however many of them score it."""

from __future__ import annotations

import json
import types

from llmspec.metrics import load_metric
from llmspec.metrics import text as text_metrics

TEXT = ("exact_match", "contains", "bleu", "chrf", "rouge_1", "rouge_2", "rouge_l")


def test_each_json_output_is_parsed_once_across_text_metrics(monkeypatch) -> None:
    calls = []

    def loads(s, *a, **k):
        calls.append(s)
        return json.loads(s, *a, **k)

    monkeypatch.setattr(text_metrics, "json", types.SimpleNamespace(loads=loads))
    text_metrics._answer_of.cache_clear()
    rows = [
        {"output": json.dumps({"answer": f"reset the router {i}"}), "expected": "reset the router"}
        for i in range(256)  # one shard at the default shard_rows
    ] + [{"output": "plain text", "expected": "plain"}, {"output": None, "expected": "x"}]
    scores = {name: load_metric(name)(rows) for name in TEXT}
    assert len(calls) == 256 and len(set(calls)) == 256  # 7 metrics, one parse per output
    assert scores["contains"][:2] == [1.0, 1.0] and scores["exact_match"][0] == 0.0
    assert scores["contains"][256] == 1.0 and all(v[257] is None for v in scores.values())


def test_answer_text() -> None:
    assert text_metrics.answer_text({"output": '{"answer": "Paris", "x": 1}'}) == "Paris"
    assert text_metrics.answer_text({"output": '{"text": "a"}'}) == "a"
    assert text_metrics.answer_text({"output": '{"n": 1}'}) == '{"n": 1}'
    assert text_metrics.answer_text({"output": "{not json"}) == "{not json"
    assert text_metrics.answer_text({"output": None}) is None
