"""`apply` with tight token budgets and best-effort schemas on the tiny model: rows closed early
end valid and are counted (`closed early` in the report), rows left to truncate are cut off,
and a best-effort schema's rows record `token+checked`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: budgets
models:
  tiny: {provider: transformers, path: tiny, params: {temperature: 0.7, max_tokens: 24, seed: 3}}
schemas:
  answer:
    type: object
    required: [answer]
    properties:
      answer: {type: string, maxLength: 120}
  tags:
    type: object
    required: [tags]
    additionalProperties: false
    properties:
      tags:
        type: array
        minItems: 2
        maxItems: 3
        uniqueItems: true
        items: {enum: [billing, shipping, refund, other]}
      note: {not: {type: string, maxLength: 0}}
prompts:
  closed: {template: "Q: {{ question }}", output: {schema: answer}}
  cut: {template: "Q: {{ question }}", output: {schema: answer, on_budget: truncate}}
  tagged:
    template: "Tags for: {{ question }}"
    output: {schema: tags, enforce: best_effort, retries: 5}
datasets:
  d: {path: d.jsonl}
suites:
  closed: {prompt: closed, models: [tiny], dataset: d, metrics: [schema_valid]}
  cut: {prompt: cut, models: [tiny], dataset: d, metrics: [schema_valid]}
  tagged: {prompt: tagged, models: [tiny], dataset: d, metrics: [schema_valid]}
"""


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    root = tmp_path_factory.mktemp("budgets") / "p"
    root.mkdir()
    (root / "llmspec.yaml").write_text(SPEC)
    rows = [{"question": f"my parcel {i} is late, what now?"} for i in range(8)]
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copytree(tiny_model_dir, root / "tiny")
    r = CliRunner().invoke(main, ["apply", str(root), "--runner", "inline"])
    assert r.exit_code == 0, r.output
    data = json.loads(CliRunner().invoke(main, ["report", str(root), "--format", "json"]).stdout)
    return r.stdout, {s["name"]: s for s in data["suites"]}


def test_closed_rows_end_valid_and_are_counted(applied) -> None:
    out, suites = applied
    closed, cut = suites["closed"], suites["cut"]
    assert all(r["valid"] for r in closed["rows"]), [r["output"] for r in closed["rows"]]
    assert {r["finish"] for r in closed["rows"]} <= {"stop", "budget"}
    variant = closed["variants"][0]
    assert variant["closed_early"] == sum(r["finish"] == "budget" for r in closed["rows"]) > 0
    assert variant["truncated"] == 0
    # The same prompts left to truncate: cut off and invalid.
    assert cut["variants"][0]["truncated"] > 0 and cut["variants"][0]["closed_early"] == 0
    assert not all(r["valid"] for r in cut["rows"])
    block = out[out.index("Suite closed:") :]
    row = next(line for line in block.splitlines() if line.strip().startswith("closed early"))
    assert row.split() == ["closed", "early", str(variant["closed_early"])]


def test_best_effort_rows_are_checked_and_resampled(applied) -> None:
    _, suites = applied
    rows = suites["tagged"]["rows"]
    assert {r["guarantee"] for r in rows} == {"token+checked"}
    for r in rows:
        if r["valid"]:
            value = json.loads(r["output"])
            assert len(set(value["tags"])) == len(value["tags"])
        else:
            assert "resample" in r["violation"] and r["attempts"] == 6
    assert sum(r["valid"] for r in rows) >= len(rows) * 3 // 4
