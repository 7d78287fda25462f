"""Each folder under tests/golden/diagnostics is a broken project with its expected report."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from tests.conftest import GOLDEN

CASES = GOLDEN / "diagnostics"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_broken_project_reports_golden_diagnostics(case: str, golden, monkeypatch) -> None:
    monkeypatch.chdir(CASES)
    result = CliRunner().invoke(main, ["validate", case])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{case}/"), first
    assert any(": error[E" in line for line in result.stderr.splitlines())
    golden(CASES / case / "expected.txt", result.stderr)


def test_every_case_has_one_folder_per_diagnostic() -> None:
    codes = set()
    for case in CASES.iterdir():
        if (case / "expected.txt").exists():
            text = (case / "expected.txt").read_text()
            codes |= {
                line.split("error[")[1][:4] for line in text.splitlines() if "error[E" in line
            }
    # every error code llmspec emits at validate time is exercised by a golden case
    assert {
        "E001",
        "E002",
        "E003",
        "E004",
        "E005",
        "E006",
        "E010",
        "E011",
        "E012",
        "E013",
        "E020",
        "E021",
        "E022",
        "E030",
        "E031",
        "E032",
        "E033",
        "E034",
        "E035",
        "E040",
        "E041",
        "E042",
        "E050",
        "E051",
    } <= codes, sorted(codes)


def test_json_format_lists_diagnostics(monkeypatch) -> None:
    import json

    monkeypatch.chdir(CASES)
    result = CliRunner().invoke(main, ["validate", "unknown_field", "--format", "json"])
    assert result.exit_code == 1
    items = json.loads(result.stdout)
    assert items[0]["code"] == "E010"
    assert (items[0]["file"], items[0]["line"], items[0]["col"]) == (
        os.path.join("unknown_field", "llmspec.yaml"),
        6,
        14,
    )
    assert items[0]["hint"] == "did you mean `temperature`?"
