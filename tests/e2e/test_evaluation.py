"""Suites as a team reviews them: prompt variants x models, judges that re-score without
regenerating, A/B comparisons, baselines, `--only` and `--limit`. Generation by the echo
provider (it returns the rendered prompt), the judge a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from tests.scripted_openai import ScriptedOpenAI

SPEC = """\
version: 1
name: evals
models:
  m: {{provider: echo}}
  n: {{provider: echo, params: {{seed: 3}}}}
  grader: {{provider: openai, base_url: "{url}", model: grader}}
prompts:
  ask: {{template: "Q: {{{{ question }}}}"}}
  bare: {{template: "Please answer."}}
datasets:
  d: {{path: d.jsonl}}
suites:
  answers:
    prompts: [ask, bare]
    models: [m, n]
    dataset: d
    expected: question
    metrics:
      - contains
      - {{judge: {{model: grader, rubric: "{rubric}"}}}}
    gates:
      - "contains.lcb95 >= {threshold}"
      - "m/ask.contains - m/bare.contains >= 0.5"
      - "contains >= baseline - 0.1"
  other:
    prompt: ask
    models: [m]
    dataset: d
    metrics: [contains]
"""


def _project(tmp_path: Path, url: str, rubric: str = "Score 1-5", threshold: str = "0") -> Path:
    root = tmp_path / "evals"
    root.mkdir(exist_ok=True)
    (root / "llmspec.yaml").write_text(SPEC.format(url=url, rubric=rubric, threshold=threshold))
    rows = [{"question": f"where is parcel {i}?", "expected": f"parcel {i}"} for i in range(24)]
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _invoke(*args: str):
    return CliRunner().invoke(main, [*args, "--runner", "inline"] if args[0] == "apply" else args)


@pytest.fixture
def grader():
    with ScriptedOpenAI() as server:
        yield server


def test_variants_judges_ab_and_baseline(tmp_path: Path, grader, monkeypatch) -> None:
    root = _project(tmp_path, grader.url)
    r = _invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    # 4 variants: model x prompt; a judge call per generated row
    assert len(grader.calls) == 4 * 24
    assert (
        "skip  contains >= baseline - 0.1: m/ask 1.000, m/bare 0.000, n/ask 1.000, n/bare 0.000 "
        "(no baseline recorded yet)"
    ) in r.stdout
    data = json.loads(_invoke("report", str(root), "--format", "json").stdout)
    suite = next(s for s in data["suites"] if s["name"] == "answers")
    assert [v["name"] for v in suite["variants"]] == ["m/ask", "n/ask", "m/bare", "n/bare"]
    ab = {(c["a"], c["b"], c["metric"]): c for c in suite["comparisons"]}
    diff = ab[("m/ask", "m/bare", "contains")]
    assert diff["mean"] == 1.0 and diff["significant"] and diff["significant_holm"]
    assert not ab[("m/ask", "n/ask", "contains")]["significant"]
    judged = [r for r in suite["rows"] if r["reasons"].get("judge")]
    assert len(judged) == 96 and all(0 <= r["metrics"]["judge"] <= 1 for r in judged)

    # a new rubric: judge and scores re-run, generation does not
    (root / "llmspec.yaml").write_text(
        SPEC.format(url=grader.url, rubric="Score 1-5: strictly", threshold="0")
    )
    plan = _invoke("plan", str(root)).stdout
    assert "~ judge.answers.m/ask.judge.0" in plan and "generate." not in plan
    from llmspec.providers.echo import EchoProvider

    def no_generation(self, requests):
        raise AssertionError("the judge's rubric changed: nothing may be generated again")

    monkeypatch.setattr(EchoProvider, "generate", no_generation)
    calls = len(grader.calls)
    r = _invoke("apply", str(root))
    assert r.exit_code == 0, r.output
    assert len(grader.calls) == calls + 96
    # the judge's scores moved; baseline gates now compare with the lock's previous values
    lock = json.loads((root / "llmspec.lock").read_text())
    assert lock["suites"]["answers"]["baseline"]["m/ask"]["contains"]["mean"] == 1.0
    assert "pass  contains >= baseline - 0.1: m/ask 1.000, m/bare 0.000" in r.stdout


def test_a_failed_gate_exits_3(tmp_path: Path, grader) -> None:
    root = _project(tmp_path, grader.url, threshold="0.9")
    r = _invoke("apply", str(root))
    assert r.exit_code == 3, r.output
    assert "FAIL  contains.lcb95 >= 0.9: m/ask 1.000, m/bare 0.000 FAIL" in r.stdout
    assert "Gates failed: answers." in r.stdout


def test_only_runs_one_suite_and_what_it_needs(tmp_path: Path, grader) -> None:
    root = _project(tmp_path, grader.url)
    r = _invoke("apply", str(root), "--only", "other")
    assert r.exit_code == 0, r.output
    lock = json.loads((root / "llmspec.lock").read_text())
    assert set(lock["jobs"]) == {
        "generate.other.m.0",
        "score.other.m.0",
        "summary.other.m",
        "gate.other",
    }
    assert grader.calls == []
    assert "Suite other: passed" in r.stdout and "Suite answers" not in r.stdout
    plan = _invoke("plan", str(root)).stdout
    assert "+ gate.answers" in plan and "gate.other" not in plan
    bad = _invoke("apply", str(root), "--only", "othr")
    assert bad.exit_code == 1 and "did you mean `other`?" in bad.stderr


def test_limit_is_a_smoke_run_that_never_writes_the_lock(tmp_path: Path, grader) -> None:
    root = _project(tmp_path, grader.url)
    r = _invoke("apply", str(root), "--limit", "3")
    assert r.exit_code == 0, r.output
    assert "Smoke run: the first 3 rows of each dataset; llmspec.lock is not written." in r.stdout
    assert not (root / "llmspec.lock").exists()
    assert len(grader.calls) == 4 * 3
    report = json.loads(CliRunner().invoke(main, ["report", str(root), "--format", "json"]).stdout)
    assert all(s["status"] == "not run" for s in report["suites"])  # the full run has not run
