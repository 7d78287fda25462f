"""A series of edits to a project, each checked as a reviewer would see it: the plan (text,
JSON, markdown), the lock after apply, and the lock diff against the step before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.jsonschemas import validation_errors
from llmspec.lock import json_schema as lock_schema
from llmspec.plan import plan_json_schema
from tests.conftest import GOLDEN, REPO

STEPS = GOLDEN / "plans"

SPEC = """\
version: 1
name: shop
models:
  preview: {provider: echo, params: {seed: 1}}
prompts:
  qa: {system: Be brief., template: "Q: {{ question }}"}
  triage: {template: "Ticket: {{ question }}"}
datasets:
  golden: {path: golden.jsonl, shard_rows: 4}
suites:
  quality:
    prompt: qa
    models: [preview]
    dataset: golden
    metrics: [contains, exact_match]
    gates: ["contains >= 0.5"]
  routing: {prompt: triage, models: [preview], dataset: golden, metrics: [contains]}
deployments:
  prod:
    {model: preview, prompt: qa, requires: [quality], target: {kind: export, path: out/p.json}}
"""

ROWS = [{"question": f"where is order {i}?", "expected": f"order {i}"} for i in range(6)]


def _edit(project: Path, old: str, new: str) -> None:
    spec = project / "llmspec.yaml"
    text = spec.read_text()
    assert old in text, old
    spec.write_text(text.replace(old, new, 1))


def _add_rows(project: Path, n: int) -> None:
    with (project / "golden.jsonl").open("a") as fh:
        for i in range(100, 100 + n):
            fh.write(json.dumps({"question": f"refund {i}?", "expected": f"refund {i}"}) + "\n")


EDITS = [
    ("01-initial", lambda p: None),
    (
        "02-add-model",
        lambda p: (
            _edit(
                p, "models:\n", "models:\n  strict: {provider: echo, params: {max_tokens: 32}}\n"
            ),
            _edit(p, "models: [preview]\n", "models: [preview, strict]\n"),
        ),
    ),
    ("03-change-template", lambda p: _edit(p, '"Q: {{ question }}"', '"Question: {{ question }}"')),
    ("04-change-seed", lambda p: _edit(p, "seed: 1", "seed: 2")),
    ("05-add-rows", lambda p: _add_rows(p, 3)),
    (
        "06-remove-suite",
        lambda p: _edit(
            p,
            "  routing: {prompt: triage, models: [preview], dataset: golden, "
            "metrics: [contains]}\n",
            "",
        ),
    ),
]


def _without_versions(lock: str) -> str:
    """The lock as a golden file holds it: tool versions would break it on every upgrade, so
    they are replaced by their names (the test of the real lock checks them)."""
    data = json.loads(lock)
    data["toolchain"] = {name: "<version>" for name in data["toolchain"]}
    for model in data["models"].values():
        if "engine" in model and model["engine"].startswith("llguidance "):
            model["engine"] = "llguidance <version>"
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    project = tmp_path_factory.mktemp("series") / "shop"
    project.mkdir()
    (project / "llmspec.yaml").write_text(SPEC)
    (project / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    runner = CliRunner()
    out: dict[str, dict[str, str]] = {}
    previous_lock = None
    for name, edit in EDITS:
        edit(project)
        step: dict[str, str] = {}
        for fmt, ext in (("text", "txt"), ("json", "json"), ("markdown", "md")):
            r = runner.invoke(main, ["plan", str(project), "--format", fmt])
            assert r.exit_code == 0, r.output
            step[f"plan.{ext}"] = r.stdout
        r = runner.invoke(main, ["apply", str(project), "--quiet"])
        step["apply.exit"] = str(r.exit_code)
        lock = (project / "llmspec.lock").read_text()
        step["llmspec.lock"] = _without_versions(lock)
        if previous_lock is not None:
            old = project.parent / "previous.lock"
            old.write_text(previous_lock)
            r = runner.invoke(main, ["lock", "diff", str(old), str(project / "llmspec.lock")])
            assert r.exit_code == 0, r.output
            step["lockdiff.txt"] = r.stdout.replace(str(project.parent) + "/", "")
        r = runner.invoke(main, ["plan", str(project), "--detailed-exitcode"])
        step["replan.exit"] = str(r.exit_code)
        previous_lock = lock
        out[name] = step
    shutil.rmtree(project.parent)
    return out


@pytest.mark.parametrize("step", [name for name, _ in EDITS])
def test_plan_series_golden(series, step: str, golden) -> None:
    for fname, text in series[step].items():
        if fname.endswith(".exit"):
            continue
        golden(STEPS / step / fname, text)


@pytest.mark.parametrize("step", [name for name, _ in EDITS])
def test_apply_then_plan_is_empty(series, step: str) -> None:
    assert series[step]["apply.exit"] == "0"
    assert series[step]["replan.exit"] == "0"


def test_reasons_name_what_moved(series) -> None:
    assert "+ generate.quality.strict.0" in series["02-add-model"]["plan.txt"]
    assert (
        'prompt `qa` template "Q: {{ question }}" -> "Question: {{ question }}"'
        in (series["03-change-template"]["plan.txt"])
    )
    assert "model `preview` params.seed 1 -> 2" in series["04-change-seed"]["plan.txt"]
    assert "dataset `golden` rows 6 -> 9, content changed" in series["05-add-rows"]["plan.txt"]
    removed = series["06-remove-suite"]["plan.txt"]
    assert "- gate.routing" in removed and "- generate.routing.preview.0" in removed


def test_artifacts_match_their_committed_schemas(series) -> None:
    committed = {
        "plan": json.loads((REPO / "schemas" / "plan.schema.json").read_text()),
        "lock": json.loads((REPO / "schemas" / "lock.schema.json").read_text()),
    }
    assert committed["plan"] == plan_json_schema(), "llmspec schema --artifact plan"
    assert committed["lock"] == lock_schema(), "llmspec schema --artifact lock"
    for step in series.values():
        assert validation_errors(committed["plan"], json.loads(step["plan.json"])) == []
        assert validation_errors(committed["lock"], json.loads(step["llmspec.lock"])) == []


def test_lock_records_the_tool_chain(series) -> None:
    from llmspec.compile import toolchain

    project = json.loads(series["01-initial"]["llmspec.lock"])
    assert set(project["toolchain"]) == set(toolchain()) >= {"llmspec", "python", "llguidance"}
