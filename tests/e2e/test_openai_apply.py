"""An `openai` model end to end against a local OpenAI-compatible server: structured output,
failures not cached, the observed model id in the lock, and no secret in any file written."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from llmspec.cli import main
from tests.unit.test_openai_provider import FINGERPRINT, MODEL_ID, FakeOpenAI, server  # noqa: F401

CANARY = "sk-canary-7f3e9b1d2c4a"

SPEC = """\
version: 1
name: served
models:
  served:
    provider: openai
    base_url: {url}
    model: support-bot
    api_key: ${{env:LLMSPEC_TEST_KEY}}
    max_retries: 1
    timeout_s: 5
schemas:
  answer:
    type: object
    required: [answer]
    properties: {{answer: {{type: string}}, echo: {{type: object}}}}
prompts:
  qa: {{template: "{{{{ question }}}}", output: {{schema: answer}}}}
datasets:
  golden: {{path: golden.jsonl, shard_rows: 2}}
suites:
  quality:
    prompt: qa
    models: [served]
    dataset: golden
    metrics: [schema_valid, {{contains: {{field: answer}}}}]
    gates: ["schema_valid == 1.0"]
"""


def _project(tmp_path: Path, url: str) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    (root / "llmspec.yaml").write_text(SPEC.format(url=url))
    rows = [{"question": f"q{i}", "expected": f"q{i}"} for i in range(4)]
    (root / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_openai_model_end_to_end(server, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setenv("LLMSPEC_TEST_KEY", CANARY)
    root = _project(tmp_path, server.url)
    runner = CliRunner()
    # the first shard's second row fails twice (no more retries): nothing of it is stored
    server.script["q1"] = [{"status": 500}, {"status": 500}]
    first = runner.invoke(main, ["apply", str(root), "--runner", "inline"])
    assert first.exit_code == 1, first.output
    assert "generate.quality.served.0: FAILED" in first.stderr
    assert "runs again on the next apply" in first.stderr

    second = runner.invoke(main, ["apply", str(root), "--runner", "inline", "--quiet"])
    assert second.exit_code == 0, second.output
    # the drift probe (every apply), the failed shard, then its score, the summary and the gate
    assert "Apply: 5 ran" in second.stdout

    from llmspec.jobs.drift import PROBE

    generations = [s for s in server.seen if s.body["messages"][-1]["content"] != PROBE]
    assert len(generations) < len(server.seen)  # the probes went through the same server
    for seen in server.seen:
        assert "guided_json" not in seen.body
        assert seen.headers["Authorization"] == f"Bearer {CANARY}"
    for seen in generations:
        assert "response_format" in seen.body

    lock = json.loads((root / "llmspec.lock").read_text())
    assert lock["models"]["served"]["observed"] == {
        "model": [MODEL_ID],
        "system_fingerprint": [FINGERPRINT],
    }
    assert lock["suites"]["quality"]["passed"] is True
    assert runner.invoke(main, ["plan", str(root), "--detailed-exitcode"]).exit_code == 0

    plan_file = tmp_path / "plan.json"
    runner.invoke(main, ["plan", str(root), "--out", str(plan_file)])
    written = [p for p in [*root.rglob("*"), plan_file] if p.is_file()]
    assert len(written) > 5
    for p in written:
        assert CANARY.encode() not in p.read_bytes(), f"the API key leaked into {p}"
    for result in (first, second):
        assert CANARY not in result.output
