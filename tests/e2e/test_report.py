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
from tests.conftest import REPO, copy_example


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, example_models: dict[str, Path]):
    dest = copy_example(tmp_path_factory.mktemp("report") / "specs", example_models)
    (dest / "llmspec.lock").unlink(missing_ok=True)
    r = CliRunner().invoke(main, ["apply", str(dest), "--runner", "inline"])
    assert r.exit_code == 0, r.output
    return dest, r.stdout


def test_apply_ends_with_the_summary_table(applied) -> None:
    _, out = applied
    assert "Suite quality: passed - Answers grounded in the docs, always valid JSON." in out
    lines = out.splitlines()
    header = lines[lines.index(next(x for x in lines if x.startswith("Suite quality"))) + 1]
    assert header.split() == ["base/qa", "small/qa", "base/terse", "small/terse"]
    first = {x.split()[0]: x for x in lines if x.split()}
    for row in (
        "rows",
        "errors",
        "truncated",
        "schema_valid",
        "rouge_l",
        "bleu",
        "judge",
        "perplexity",
        "latency",
        "cost",
    ):
        assert row in first, row
    # means with their intervals; gates grouped with a value per variant
    assert "[" in first["judge"]
    assert "  pass  schema_valid == 1: base/qa 1.000, base/terse 1.000, small/qa 1.000" in out


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
    assert [c.get("name") for c in cases if c.get("classname") == "routing"] == [
        "schema_valid == 1 [base]"
    ]
    assert len([c for c in cases if c.get("classname") == "quality"]) == 9

    data = json.loads(cli.invoke(main, ["report", str(root), "--format", "json"]).stdout)
    committed = json.loads((REPO / "schemas" / "results.schema.json").read_text())
    assert committed == results_json_schema(), "llmspec schema --artifact results"
    assert validation_errors(committed, data) == []
    quality = next(s for s in data["suites"] if s["name"] == "quality")
    assert quality["variants"][0]["rows"] == 6 and len(quality["rows"]) == 4 * 6
    row = quality["rows"][0]
    assert row["input"]["question"] and row["reference"] and row["guarantee"] == "token"
    assert [c["source"] for c in row["context"]] and "rouge_l" in row["metrics"]
    assert row["reasons"]["judge"] is not None  # the judge's reason, or why it has none
    # every pair of 4 variants x every metric but latency (which varies run to run)
    assert len(quality["comparisons"]) == 6 * 8


def test_report_from_the_lock_without_a_store(applied, tmp_path: Path) -> None:
    """A fresh CI checkout has the lock but no .llmspec/: the lock's record is reported."""
    root, _ = applied
    copy = tmp_path / "checkout"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".llmspec"))
    r = CliRunner().invoke(main, ["report", str(copy)])
    assert r.exit_code == 0, r.output
    assert "Suite quality: passed (from the lock)" in r.stdout


def test_html_report_in_chromium(applied, browser, tmp_path: Path) -> None:
    """The HTML report in headless Chromium: one self-contained page (no request but its own
    file), a chart per metric whose bars have the widths of the values, the row filter works."""
    from tests.browser import open_page

    root, _ = applied
    out = tmp_path / "report.html"
    r = CliRunner().invoke(main, ["report", str(root), "--format", "html", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(CliRunner().invoke(main, ["report", str(root), "--format", "json"]).stdout)

    requests: list[str] = []
    browser_visit = open_page(browser, "about:blank")
    browser_visit.page.on("request", lambda req: requests.append(req.url))
    browser_visit.page.goto(out.as_uri(), wait_until="load")
    page = browser_visit.page
    try:
        assert page.title() == f"llmspec results: {data['project']}"
        headings = page.locator("h2").all_inner_texts()
        assert [h.split(":")[0] for h in headings] == [f"Suite {s['name']}" for s in data["suites"]]

        quality = next(s for s in data["suites"] if s["name"] == "quality")
        index = data["suites"].index(quality)
        charts = page.locator(f"#suite-{index} ~ .charts").first.locator("svg.metric-chart")
        plotted = charts.evaluate_all("els => els.map(e => e.dataset.metric)")
        assert "rouge_l" in plotted and "judge" in plotted
        # rouge_l lies in [0, 1]: each bar's rendered width is its mean's share of the axis
        chart = page.locator(f"#suite-{index} ~ .charts").first.locator(
            'svg.metric-chart[data-metric="rouge_l"]'
        )
        widths = chart.locator("rect.bar").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().width)"
        )
        means = [v["metrics"]["rouge_l"]["mean"] for v in quality["variants"]]
        assert len(widths) == len(means) and min(widths) >= 1
        if max(means) > 0:
            scale = max(widths) / max(means)
            for w, m in zip(widths, means, strict=True):
                assert abs(w - max(1.0, scale * m)) <= 1.5, (widths, means)

        table = page.locator("table[id^=rows-]").first
        before = table.locator("tbody tr:visible").count()
        assert before > 0
        page.locator("input.rowfilter").first.fill("no row holds this text")
        assert table.locator("tbody tr:visible").count() == 0
        page.locator("input.rowfilter").first.fill("")
        assert table.locator("tbody tr:visible").count() == before
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        assert browser_visit.errors == []
        assert requests == [out.as_uri()], "the report loads nothing but itself"
    finally:
        browser_visit.close()
