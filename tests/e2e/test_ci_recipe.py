"""The CI recipe for pull requests (docs/ci.md, examples/ci/llmspec.yml), run as written.

The commands are taken from the workflow file itself, so the file, the docs and this test
cannot drift apart. They run, as GitHub runs a `shell: bash` step, in a temporary git
repository holding the example project: a first commit with its lock, then pull requests that
change a prompt (without and with the new lock), a gate and the spec's validity. Each run
checks the exit code and the comment it assembles. No network: nothing is posted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.conftest import REPO, copy_project

WORKFLOW = REPO / "examples" / "ci" / "llmspec.yml"
DOCS = REPO / "docs" / "ci.md"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.com",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def workflow() -> dict:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def step(name_or_id: str) -> dict:
    steps = workflow()["jobs"]["llmspec"]["steps"]
    return next(s for s in steps if name_or_id in (s.get("id"), s.get("name")))


def recipe() -> str:
    """The commands of the workflow's `llmspec` step."""
    return step("llmspec")["run"]


def test_the_workflow_is_valid_and_the_docs_give_the_same_commands() -> None:
    wf = workflow()
    assert "pull_request" in wf["on"] and wf["permissions"]["pull-requests"] == "write"
    job = wf["jobs"]["llmspec"]
    assert all("uses" in s or "run" in s for s in job["steps"])
    assert step("llmspec")["shell"] == "bash"
    script = recipe()
    for command in (
        'llmspec validate "$P"',
        'llmspec plan "$P" --locked',
        'llmspec plan "$P" --format markdown',
        'llmspec apply "$P" --quiet',
        'llmspec report "$P" --format markdown',
        'llmspec lock diff --git "$BASE" --project "$P"',
    ):
        assert command in script, command
    post = step("Post the comment on the pull request")
    assert "always()" in post["if"] and "gh pr comment" in post["run"]
    assert "--body-file" in post["run"] and post["env"]["GH_TOKEN"]
    blocks = re.findall(r"^````bash\n(.*?)^````$", DOCS.read_text(), re.S | re.M)
    assert script in blocks, "docs/ci.md must show the workflow's `llmspec` step as it is"
    readme = (REPO / "README.md").read_text()
    assert "docs/ci.md" in readme and "docs/hub.md" in readme


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, env=os.environ | GIT_ENV, check=True,
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    return out.stdout


@pytest.fixture
def repo(applied_example: Path, tmp_path: Path) -> Path:
    """A git repository with the example project and its lock in a first commit. The
    project's .llmspec/ store comes along (gitignored), as a CI cache would restore it."""
    root = tmp_path / "repo"
    root.mkdir()
    copy_project(applied_example, root / "specs")
    (root / ".gitignore").write_text(".llmspec/\nspecs/models/\nllmspec-comment.md\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "The example project and its lock")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "llmspec"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m llmspec "$@"\n')
    shim.chmod(0o755)
    return root


def run_recipe(repo: Path) -> tuple[int, str, str]:
    """The workflow's step, run as GitHub runs it; (exit code, comment, output)."""
    script = repo.parent / "llmspec-step.sh"
    script.write_text(recipe())
    env = (
        os.environ
        | GIT_ENV
        | {
            "PATH": f"{repo.parent / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
            "LLMSPEC_RUNNER": "inline",
            "LLMSPEC_PROJECT": "specs",
            "LLMSPEC_APPLY": "1",
            "LLMSPEC_BASE": "HEAD~1",
            "LLMSPEC_COMMENT": "llmspec-comment.md",
            "HF_HUB_OFFLINE": "1",
        }
    )
    out = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    comment = (repo / "llmspec-comment.md").read_text()
    return out.returncode, comment, out.stdout + out.stderr


def edit(repo: Path, name: str, old: str, new: str, message: str) -> None:
    path = repo / "specs" / name
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    git(repo, "commit", "-qam", message)


def test_a_pull_request_that_changes_a_prompt(repo: Path) -> None:
    ticket = 'template: "{}:'
    edit(repo, "prompts.yaml", ticket.format("Ticket"), ticket.format("Support ticket"),
         "triage: say it is a support ticket")  # fmt: skip

    code, comment, out = run_recipe(repo)  # the lock was not updated with the prompt
    assert code == 2, out
    sections = comment.split("\n### ")
    assert sections[0].startswith("## ⚠️ llmspec: llmspec.lock is out of date (exit 2)")
    plan = next(s for s in sections if s.startswith("llmspec plan: `support-bot`"))
    assert "| `~` | `generate.routing.base.0` | prompt `triage` template" in plan
    results = next(s for s in sections if s.startswith("llmspec results: `support-bot`"))
    assert "#### ✅ `routing`: passed" in results and "#### ✅ `quality`: passed" in results
    assert "<details><summary>Lock diff against HEAD~1</summary>" in comment
    assert "Prompts:\n  ~ triage: template changed" in comment
    assert "llmspec plan --locked" not in comment and "error[" not in comment

    git(repo, "commit", "-qam", "llmspec.lock after the triage change")  # the author applies
    code, comment, out = run_recipe(repo)
    assert code == 0, out
    assert comment.startswith("## ✅ llmspec: the lock is current and every gate passed")
    assert "Prompts:\n  ~ triage: template changed" in comment  # HEAD~1 had the old lock


def test_a_failing_gate_and_an_invalid_spec(repo: Path) -> None:
    routing = '    metrics: [schema_valid, exact_match]\n    gates: ["{}"]'
    edit(repo, "evals.yaml", routing.format("schema_valid == 1.0"),
         routing.format("exact_match >= 0.9"), "routing: demand exact matches")  # fmt: skip
    code, comment, out = run_recipe(repo)
    assert code == 3, out  # a failed gate outranks the lock being out of date
    assert comment.startswith("## ❌ llmspec: a suite's gate failed (exit 3)")
    assert "#### ❌ `routing`: failed" in comment and "**FAIL** `exact_match >= 0.9`" in comment

    edit(repo, "llmspec.yaml", "batch_size: 8", "batch_size: 8\n    temprature: 0.5", "typo")
    code, comment, out = run_recipe(repo)
    assert code == 1, out
    assert comment.startswith("## ❌ llmspec: error (exit 1)")
    assert "<details open><summary>validate.txt</summary>" in comment
    assert "error[E010]: unknown field `temprature`" in comment
