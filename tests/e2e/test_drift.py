"""Drift of remote models against scripted OpenAI-compatible servers on 127.0.0.1: a server
that changes its fingerprint or its answers between two calls makes `llmspec drift` exit 2
and name the stale jobs; `plan --refresh` shows them, apply runs them again; a server that
does not answer is "could not measure" (exit 1); a probe is never reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.drift import drift_json_schema
from llmspec.jsonschemas import validation_errors
from tests.conftest import REPO
from tests.scripted_openai import ScriptedOpenAI

SPEC = """\
version: 1
name: drifting
models:
  served:
    provider: openai
    base_url: "{a}"
    model: support-bot
    max_retries: 0
    timeout_s: 5
    drift: {{canaries: canaries, every: 1d}}
  other:
    provider: openai
    base_url: "{b}"
    model: other-bot
    max_retries: 0
    timeout_s: 5
schemas:
  answer: {{type: object, required: [answer], properties: {{answer: {{type: string}}}}}}
prompts:
  qa: {{template: "{{{{ question }}}}", output: {{schema: answer}}}}
datasets:
  golden: {{path: golden.jsonl, shard_rows: 2}}
  canaries: {{path: canaries.jsonl}}
suites:
  quality:
    prompt: qa
    models: [served, other]
    dataset: golden
    metrics: [schema_valid]
    gates: ["schema_valid == 1"]
"""


def _project(tmp_path: Path, a: str, b: str) -> Path:
    root = tmp_path / "drifting"
    root.mkdir()
    (root / "llmspec.yaml").write_text(SPEC.format(a=a, b=b))
    rows = [{"question": f"where is parcel {i}?", "expected": "x"} for i in range(4)]
    (root / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    canaries = ["Name the capital of France.", "Count to three.", "Say hello."]
    (root / "canaries.jsonl").write_text(
        "".join(json.dumps({"question": q}) + "\n" for q in canaries)
    )
    return root


def _run(*args: str):
    if args[0] == "apply":
        args = (*args, "--runner", "inline")
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def servers():
    with ScriptedOpenAI() as a, ScriptedOpenAI() as b:
        yield a, b


def test_drift_exits_2_and_names_the_stale_jobs(tmp_path: Path, servers) -> None:
    a, b = servers
    root = _project(tmp_path, a.url, b.url)
    first = _run("apply", str(root))
    assert first.exit_code == 0, first.output
    lock = json.loads((root / "llmspec.lock").read_text())
    assert set(lock["drift"]) == {"served", "other"}
    assert lock["drift"]["served"]["system_fingerprint"] == "fp-1"
    assert lock["models"]["served"]["served"]["model"] == "scripted-1"  # part of its fact
    assert len(a.calls) == 3 + 4 and len(b.probes) == 1  # canaries, rows; a minimal probe

    calm = _run("drift", str(root))
    assert calm.exit_code == 0, calm.output
    assert "No drift." in calm.stdout and "3 canary answers as locked" in calm.stdout
    assert len(a.calls) == 3 + 4 + 3  # measured again: a probe is never reused

    # the same name, another model behind it: a new fingerprint and other answers
    a.fingerprint = "fp-2"
    a.answer = lambda body: None if body.get("response_format") else "changed"
    moved = _run("drift", str(root), "--format", "json")
    assert moved.exit_code == 2, moved.output
    report = json.loads(moved.stdout)
    assert validation_errors(drift_json_schema(), report) == []
    served = next(m for m in report["models"] if m["model"] == "served")
    assert served["status"] == "drift"
    assert 'system_fingerprint "fp-1" -> "fp-2"' in served["moved"][0]
    assert "3 of 3 canary answers changed" in served["moved"][1]
    assert served["changed_canaries"] == [0, 1, 2]
    assert "generate.quality.served.0" in report["stale"]
    assert "gate.quality" in report["stale"]
    assert not any(j.startswith(("generate.quality.other", "drift.")) for j in report["stale"])
    other = next(m for m in report["models"] if m["model"] == "other")
    assert other["status"] == "no drift"
    text = _run("drift", str(root))
    assert text.exit_code == 2 and "stale: generate.quality.served.0" in text.stdout
    md = _run("drift", str(root), "--format", "markdown")
    assert "| 🔴 | `served` | drift |" in md.stdout

    # plan keeps what the lock recorded; plan --refresh asks the servers
    assert _run("plan", str(root), "--detailed-exitcode").exit_code == 0
    refreshed = _run("plan", str(root), "--refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert "~ generate.quality.served.0" in refreshed.stdout
    assert 'model `served` served.system_fingerprint "fp-1" -> "fp-2"' in refreshed.stdout
    assert "generate.quality.other.0" not in refreshed.stdout

    # apply probes first and runs again what read the model that moved, nothing else
    again = _run("apply", str(root))
    assert again.exit_code == 0, again.output
    assert "generate.quality.served.0: ok" in again.stdout
    assert "generate.quality.other" not in again.stdout
    assert _run("drift", str(root)).exit_code == 0

    # a server that does not answer: could not measure, apart from no drift
    a.__exit__()
    down = _run("drift", str(root))
    assert down.exit_code == 1, down.output
    assert "served  could not measure" in down.stdout and "Could not measure" in down.stdout


def test_due_probes_only_what_a_schedule_has_not_measured(tmp_path: Path, servers) -> None:
    a, b = servers
    root = _project(tmp_path, a.url, b.url)
    assert _run("apply", str(root)).exit_code == 0
    assert _run("drift", str(root)).exit_code == 0
    before = (len(a.calls), len(b.probes))
    due = _run("drift", str(root), "--due")
    assert due.exit_code == 0, due.output
    assert (len(a.calls), len(b.probes)) == before  # both measured less than a day ago
    assert due.stdout.count("not due") == 2


def test_a_project_without_remote_models_has_nothing_to_probe(tmp_path: Path) -> None:
    root = tmp_path / "local"
    root.mkdir()
    (root / "llmspec.yaml").write_text("version: 1\nname: local\nmodels: {m: {provider: echo}}\n")
    r = _run("drift", str(root))
    assert r.exit_code == 0 and "no remote models to probe" in r.stdout


def test_committed_drift_schema_is_current() -> None:
    committed = json.loads((REPO / "schemas" / "drift.schema.json").read_text())
    assert committed == drift_json_schema()


def test_another_model_id_alone_is_drift(tmp_path: Path, servers) -> None:
    """Without canaries the minimal probe still sees the model id the server reports."""
    a, b = servers
    root = _project(tmp_path, a.url, b.url)
    assert _run("apply", str(root)).exit_code == 0
    b.model_id = "scripted-2"  # the same name, another model, the same fingerprint
    moved = _run("drift", str(root), "--format", "json")
    assert moved.exit_code == 2, moved.output
    report = json.loads(moved.stdout)
    other = next(m for m in report["models"] if m["model"] == "other")
    assert other["status"] == "drift" and "scripted-2" in " ".join(other["moved"])
    assert "generate.quality.other.0" in report["stale"]
    assert not any(j.startswith("generate.quality.served") for j in report["stale"])
