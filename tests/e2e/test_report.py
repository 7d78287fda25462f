"""`llmspec report` on the applied example project, in every format; the results document
against its committed JSON Schema; the summary `apply` prints."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.jsonschemas import validation_errors
from llmspec.results import results_json_schema
from tests.conftest import REPO


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    dest = tmp_path_factory.mktemp("report") / "specs"
    shutil.copytree(REPO / "specs", dest, ignore=shutil.ignore_patterns("models", ".llmspec"))
    shutil.copytree(tiny_model_dir, dest / "models" / "tiny")
    (dest / "llmspec.lock").unlink(missing_ok=True)
    r = CliRunner().invoke(main, ["apply", str(dest), "--runner", "inline"])
    assert r.exit_code == 0, r.output
    return dest, r.stdout


def test_apply_ends_with_the_summary_table(applied) -> None:
    _, out = applied
    assert "Suite quality: passed - Answers grounded in the docs, always valid JSON." in out
    header = next(line for line in out.splitlines() if line.strip().startswith("variant"))
    for col in ("rows", "errors", "truncated", "schema_valid", "rouge_l", "bleu", "latency"):
        assert col in header
    assert "  pass  schema_valid == 1 [base] = 1.000" in out


def test_report_formats(applied, tmp_path: Path) -> None:
    root, _ = applied
    cli = CliRunner()
    text = cli.invoke(main, ["report", str(root)])
    assert text.exit_code == 0 and "Suite routing: passed" in text.stdout

    md = cli.invoke(main, ["report", str(root), "--format", "markdown"]).stdout
    assert md.startswith("### llmspec results: `support-bot`")
    assert "| variant | rows | errors | truncated | closed early | schema_valid |" in md
    assert len(md.splitlines()) < 60  # short enough for a PR comment

    out = tmp_path / "results.xml"
    junit = cli.invoke(main, ["report", str(root), "--format", "junit", "--out", str(out)])
    assert junit.exit_code == 0
    tree = ET.parse(out).getroot()
    cases = tree.findall(".//testcase")
    assert tree.tag == "testsuites" and {c.get("classname") for c in cases} == {
        "quality", "routing", "prompt-review"
    }  # fmt: skip
    assert [c.get("name") for c in cases if c.get("classname") == "quality"] == [
        "schema_valid == 1 [base]"
    ]

    data = json.loads(cli.invoke(main, ["report", str(root), "--format", "json"]).stdout)
    committed = json.loads((REPO / "schemas" / "results.schema.json").read_text())
    assert committed == results_json_schema(), "llmspec schema --artifact results"
    assert validation_errors(committed, data) == []
    quality = next(s for s in data["suites"] if s["name"] == "quality")
    assert quality["variants"][0]["rows"] == 6 and len(quality["rows"]) == 6
    row = quality["rows"][0]
    assert row["input"]["question"] and row["reference"] and row["guarantee"] == "token"
    assert [c["source"] for c in row["context"]] and "rouge_l" in row["metrics"]


def test_report_from_the_lock_without_a_store(applied, tmp_path: Path) -> None:
    """A fresh CI checkout has the lock but no .llmspec/: the lock's record is reported."""
    root, _ = applied
    copy = tmp_path / "checkout"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".llmspec"))
    r = CliRunner().invoke(main, ["report", str(copy)])
    assert r.exit_code == 0, r.output
    assert "Suite quality: passed (from the lock)" in r.stdout
