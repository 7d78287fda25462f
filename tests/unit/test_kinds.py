"""A job kind is one module with one record: a synthetic kind registered here shows up in plan,
graph (Mermaid and DOT), apply, the lock (its own section) and lock diff with no other code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llmspec import jobs
from llmspec.cli import main
from llmspec.jobs import JobKind


def _build(cx: Any, name: str) -> Any:
    ins = cx.inputs().take("prompt", "prompts", name)
    return cx.job("lint", f"lint.{name}", ins, loc=cx.loc("prompts", name))


def _run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    template = job.inputs["prompt"]["template"]
    return {"length": len(template), "braces": template.count("{{")}, {}


KIND = JobKind(
    name="lint",
    version=1,
    names=lambda spec: spec.prompts,
    build=_build,
    run=_run,
    pool="driver",
    shape="hexagon",
    lock_section="lints",
    lock_name=lambda job: job.id.removeprefix("lint."),
    lock_entry=lambda job, output: output,
    rows=lambda job: 1,
)

SPEC = """\
version: 1
name: kinds
models:
  m: {provider: echo}
prompts:
  p: {template: "Q: {{ question }}"}
"""


@pytest.fixture
def lint_kind():
    jobs.register(KIND, "tests.unit.test_kinds:KIND")
    yield
    jobs.unregister("lint")


def test_a_kind_in_one_module_reaches_every_stage(tmp_path: Path, lint_kind: None) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "llmspec.yaml").write_text(SPEC)
    cli = CliRunner()

    plan = cli.invoke(main, ["plan", str(root)])
    assert plan.exit_code == 0, plan.output
    assert "+ lint.p" in plan.stdout

    mermaid = cli.invoke(main, ["graph", str(root)]).stdout
    assert 'n_lint_p{{"+ lint.p"}}' in mermaid
    dot = cli.invoke(main, ["graph", str(root), "--format", "dot"]).stdout
    assert '"lint.p" [label="+ lint.p", shape=hexagon];' in dot

    applied = cli.invoke(main, ["apply", str(root)])
    assert applied.exit_code == 0, applied.output
    assert "lint.p: ok" in applied.stdout
    old = (root / "llmspec.lock").read_text()
    lock = json.loads(old)
    assert lock["jobs"]["lint.p"]["kind"] == "lint"
    assert lock["lints"] == {"p": {"braces": 1, "length": 17}}

    (root / "llmspec.yaml").write_text(SPEC.replace("Q: {{ question }}", "Q: {{ q }}"))
    plan = cli.invoke(main, ["plan", str(root)])
    assert '~ lint.p\n      prompt `p` template "Q: {{ question }}" -> "Q: {{ q }}"' in (
        plan.stdout
    )
    assert cli.invoke(main, ["apply", str(root)]).exit_code == 0
    (tmp_path / "old.lock").write_text(old)
    new = str(root / "llmspec.lock")
    diff = cli.invoke(main, ["lock", "diff", str(tmp_path / "old.lock"), new])
    assert diff.exit_code == 0, diff.output
    assert "Lints:\n  ~ p: length 17 -> 10" in diff.stdout
    assert "~ lint.p: output changed (inputs: prompt)" in diff.stdout


def test_unknown_kinds_are_not_drawn_by_name(tmp_path: Path) -> None:
    """Every built-in kind's shape is one the graph knows."""
    from llmspec.graphviz import SHAPES

    for record in jobs.all_kinds():
        assert record.shape in SHAPES, record.name
