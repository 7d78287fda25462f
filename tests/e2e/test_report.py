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
    assert header.split() == [
        "base/qa",
        "small/qa",
        "tuned/qa",
        "base/terse",
        "small/terse",
        "tuned/terse",
    ]
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
    # short enough for a PR comment: what shows before a reader opens a <details> block
    visible, folded = [], 0
    for line in md.splitlines():
        folded += line.startswith("<details>") - line.startswith("</details>")
        if not folded and not line.startswith("</details>"):
            visible.append(line)
    # a heading, a description, the variants' table and the gates per suite; rows, A/B pairs
    # and transcripts fold away
    suites = sum(line.startswith("#### ") for line in md.splitlines())
    assert suites == 6 and len(visible) < 14 * suites, len(visible)
    assert "Attack success rate by strategy" in md and "LLM07 System Prompt Leakage" in md

    out = tmp_path / "results.xml"
    junit = cli.invoke(main, ["report", str(root), "--format", "junit", "--out", str(out)])
    assert junit.exit_code == 0
    tree = ET.parse(out).getroot()
    cases = tree.findall(".//testcase")
    assert tree.tag == "testsuites" and {c.get("classname") for c in cases} == {
        "quality", "retrieval", "routing", "prompt-review", "safety", "variants"
    }  # fmt: skip
    assert [c.get("name") for c in cases if c.get("classname") == "routing"] == [
        "schema_valid == 1 [base]"
    ]
    # 6 variants (base, small, tuned x qa, terse): two gates per variant and two pair gates
    assert len([c for c in cases if c.get("classname") == "quality"]) == 6 + 6 + 2

    data = json.loads(cli.invoke(main, ["report", str(root), "--format", "json"]).stdout)
    committed = json.loads((REPO / "schemas" / "results.schema.json").read_text())
    assert committed == results_json_schema(), "llmspec schema --artifact results"
    assert validation_errors(committed, data) == []
    quality = next(s for s in data["suites"] if s["name"] == "quality")
    assert quality["variants"][0]["rows"] == 6 and len(quality["rows"]) == 6 * 6
    row = quality["rows"][0]
    assert row["input"]["question"] and row["reference"] and row["guarantee"] == "token"
    assert [c["source"] for c in row["context"]] and "rouge_l" in row["metrics"]
    assert row["reasons"]["judge"] is not None  # the judge's reason, or why it has none
    # every pair of 6 variants x every metric but latency (which varies run to run)
    assert len(quality["comparisons"]) == 15 * 8
    # retrieval against each question's reference page, with the chunks' ids
    retrieval = next(s for s in data["suites"] if s["name"] == "retrieval")
    for r in retrieval["rows"]:
        assert r["context"][0]["id"].startswith("kb/") and "#" in r["context"][0]["id"]
        assert r["metrics"]["hit_rate"] in (0.0, 1.0) and r["failure"] in (
            None,
            "retriever",
            "generator",
            "knowledge base",
        )
    info = {m["name"]: m for m in retrieval["metric_info"]}
    assert "no judge declared" in info["groundedness"]["method"]


def test_report_from_the_lock_without_a_store(applied, tmp_path: Path) -> None:
    """A fresh CI checkout has the lock but no .llmspec/: the lock's record is reported."""
    root, _ = applied
    copy = tmp_path / "checkout"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".llmspec"))
    r = CliRunner().invoke(main, ["report", str(copy)])
    assert r.exit_code == 0, r.output
    assert "Suite quality: passed (from the lock)" in r.stdout
    # a red-team suite from the lock: its rates by family and strategy, no transcripts
    assert "Suite safety: passed (from the lock)" in r.stdout
    assert "Attack success rate by strategy" in r.stdout
    data = json.loads(CliRunner().invoke(main, ["report", str(copy), "--format", "json"]).stdout)
    safety = next(s for s in data["suites"] if s["name"] == "safety")
    assert safety["kind"] == "redteam" and safety["from_lock"] and not safety["rows"]
    cells = {(c["family"], c["strategy"]) for c in safety["redteam"]["variants"][0]["cells"]}
    assert ("prompt_injection", "indirect") in cells and ("jailbreak", "rot13") in cells


def test_the_example_fine_tune_beats_its_base(applied) -> None:
    """The example's tuned model answers what its random base cannot, by a significant margin,
    and the deployment ships exactly those weights."""
    root, out = applied
    assert "Models made by jobs:" in out
    assert "  tuned: full fine-tune of base on train (12 rows, 40 epochs, 120 steps)" in out
    assert "  tuned-int8: dynamic_int8 of tuned" in out
    assert "pass  tuned/qa.exact_match - base/qa.exact_match >= 0.5" in out
    doc = json.loads(CliRunner().invoke(main, ["report", str(root), "--format", "json"]).stdout)
    quality = next(s for s in doc["suites"] if s["name"] == "quality")
    pair = next(
        c
        for c in quality["comparisons"]
        if {c["a"], c["b"]} == {"base/qa", "tuned/qa"} and c["metric"] == "exact_match"
    )
    assert pair["significant_holm"] and abs(pair["mean"]) >= 0.5, pair
    lock = json.loads((root / "llmspec.lock").read_text())
    manifest = json.loads((root / "build" / "staging.json").read_text())
    assert manifest["model"]["finetune"]["key"] == lock["models"]["tuned"]["finetune"]["key"]
    assert manifest["weights"]["tuned"]["files"] == lock["weights"]["tuned"]["files"]


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
        headings = [h.split(":")[0] for h in page.locator("h2").all_inner_texts()]
        # the example's tuned and quantized models come first, then one heading per suite
        assert headings == ["Models made by jobs"] + [f"Suite {s['name']}" for s in data["suites"]]

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
