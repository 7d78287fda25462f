from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from llmspec import __version__
from llmspec.cli import main
from llmspec.spec import json_schema
from tests.conftest import REPO

HEAVY = ("ray", "torch", "transformers", "guidance", "sentence_transformers", "starlette",
         "uvicorn")  # fmt: skip


def test_committed_json_schema_matches_the_models() -> None:
    committed = json.loads((REPO / "schemas" / "llmspec.schema.json").read_text())
    assert committed == json_schema(), (
        "regenerate: llmspec schema --out schemas/llmspec.schema.json"
    )


def test_schema_command_prints_the_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output)["title"] == "llmspec project"


def test_example_specs_point_editors_at_the_schema() -> None:
    for spec in sorted((REPO / "specs").glob("*.yaml")):
        first = spec.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../schemas/llmspec.schema.json", spec


def test_version_and_help() -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["--version"]).output.strip() == f"llmspec, version {__version__}"
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0 and "validate" in top.output and "Examples:" in top.output
    for cmd in ("validate", "schema", "tiny-model", "plan", "apply", "graph", "report",
                "lock diff", "runs", "view", "deploy status", "deploy export", "destroy",
                "drift"):  # fmt: skip
        sub = runner.invoke(main, [*cmd.split(), "--help"])
        assert sub.exit_code == 0 and "Examples:" in sub.output, cmd


def _run_fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )


def test_validate_plan_graph_and_report_import_no_heavy_library(example_project) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from llmspec.cli import main\n"
        "r = CliRunner()\n"
        "r.invoke(main, ['--help'])\n"
        "r.invoke(main, ['schema'])\n"
        "r.invoke(main, ['validate', 'tests/golden/diagnostics/unknown_reference'])\n"
        f"for cmd in ('validate', 'plan', 'graph', 'report', 'runs'):\n"
        f"    res = r.invoke(main, [cmd, {str(example_project)!r}])\n"
        "    assert res.exit_code == 0, (cmd, res.output)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))\n"
    )
    out = _run_fresh(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bad_path_is_a_diagnostic_not_a_traceback() -> None:
    result = CliRunner().invoke(main, ["validate", "/nonexistent/place"])
    assert result.exit_code == 1
    assert "error[E008]" in result.stderr and "Traceback" not in result.output


def test_example_project_is_valid(example_project, monkeypatch) -> None:
    monkeypatch.chdir(example_project.parent)
    result = CliRunner().invoke(main, ["validate", "specs"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("support-bot: valid (4 files)")
    assert "qa, terse x base, small, tuned on golden; 9 metrics, 4 gates" in result.stdout
    assert "tuned          transformers full fine-tune of base on train" in result.stdout


ECHO_SPEC = """\
version: 1
name: tiny
models:
  m: {provider: echo}
prompts:
  p: {template: "{{ question }}"}
datasets:
  d: {path: d.jsonl}
suites:
  s: {prompt: p, models: [m], dataset: d, metrics: [contains], gates: ["contains >= 0.5"]}
deployments:
  prod: {model: m, prompt: p, requires: [s]}
"""


def _echo_project(root) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "llmspec.yaml").write_text(ECHO_SPEC)
    (root / "d.jsonl").write_text('{"question": "q", "expected": "q"}\n')


def test_graph_mermaid_and_dot(tmp_path, golden) -> None:
    from tests.conftest import GOLDEN

    _echo_project(tmp_path / "g")
    runner = CliRunner()
    for fmt in ("mermaid", "dot"):
        r = runner.invoke(main, ["graph", str(tmp_path / "g"), "--format", fmt])
        assert r.exit_code == 0, r.output
        golden(GOLDEN / "graph" / f"graph.{fmt}", r.stdout)


def test_lock_diff_against_git(tmp_path, monkeypatch) -> None:
    root = tmp_path / "repo"
    _echo_project(root)
    runner = CliRunner()
    assert runner.invoke(main, ["apply", str(root)]).exit_code == 0
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(root)]
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "one"]):
        subprocess.run([*git, *args], check=True)
    (root / "llmspec.yaml").write_text(ECHO_SPEC.replace('"{{ question }}"', '"Q: {{ question }}"'))
    assert runner.invoke(main, ["apply", str(root)]).exit_code == 0
    r = runner.invoke(main, ["lock", "diff", "--git", "HEAD", "--project", str(root)])
    assert r.exit_code == 0, r.output
    assert 'Prompts:\n  ~ p: template "{{ question }}" -> "Q: {{ question }}"' in r.stdout
    bad = runner.invoke(main, ["lock", "diff", "--git", "nope", "--project", str(root)])
    assert bad.exit_code == 1 and "error[E008]" in bad.stderr
