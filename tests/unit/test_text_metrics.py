"""Text metrics read a JSON output's answer once per row, however many of them score it."""

from __future__ import annotations

import json
import types

from llmspec.metrics import METRICS, load
from llmspec.metrics import text as text_metrics

TEXT = ("exact_match", "contains", "bleu", "chrf", "rouge_1", "rouge_2", "rouge_l")


def _score(name: str, rows: list[dict], field: str | None) -> list:
    rec = METRICS[name]
    opts = rec.options(field=field).model_dump()
    return load(rec.impl)(rows, opts, None)


def test_each_json_output_is_parsed_once_across_text_metrics(monkeypatch) -> None:
    calls = []

    def loads(s, *a, **k):
        calls.append(s)
        return json.loads(s, *a, **k)

    fake = types.SimpleNamespace(loads=loads, dumps=json.dumps)
    monkeypatch.setattr(text_metrics, "json", fake)
    rows = [
        {"output": json.dumps({"answer": f"reset the router {i}"}), "expected": "reset the router"}
        for i in range(256)  # one shard at the default shard_rows
    ] + [{"output": "plain text", "expected": "plain"}, {"output": None, "expected": "x"}]
    scores = {name: _score(name, rows, "answer") for name in TEXT}
    assert len(calls) == 256 and len(set(calls)) == 256  # 7 metrics, one parse per output
    assert scores["contains"][:2] == [1.0, 1.0] and scores["exact_match"][0] == 0.0
    # a plain-text output has no `answer` field; a missing output has no score
    assert all(v[256] is None and v[257] is None for v in scores.values())


def test_text_of() -> None:
    assert text_metrics.text_of({"output": '{"answer": "Paris", "x": 1}'}, "answer") == "Paris"
    assert text_metrics.text_of({"output": '{"a": {"b": [1, "z"]}}'}, "/a/b/1") == "z"
    assert text_metrics.text_of({"output": '{"n": 1}'}, None) == '{"n": 1}'
    assert text_metrics.text_of({"output": '"Paris"'}, None) == "Paris"
    assert text_metrics.text_of({"output": "{not json"}, None) == "{not json"
    assert text_metrics.text_of({"output": None}, None) is None
