"""The lock records only what finished; result sections belong to kinds; old locks are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.lock import parse_lock, read_lock
from tests.unit.test_compile import _project


class _Interrupted:
    name = "interrupted"

    def run(self, graph, jobs, output_of, on_start, on_outcome) -> None:
        raise KeyboardInterrupt

    def close(self) -> None:
        pass


def test_an_apply_that_runs_nothing_leaves_the_facts_alone(tmp_path: Path) -> None:
    from llmspec.apply import apply_plan
    from llmspec.cli.run_cmds import compile_path, plan_for

    root = _project(tmp_path / "p")
    assert CliRunner().invoke(main, ["apply", str(root)]).exit_code == 0
    before = read_lock(root)
    spec = (root / "llmspec.yaml").read_text().replace("seed: 1", "seed: 2")
    (root / "llmspec.yaml").write_text(spec)
    _, graph, store = compile_path(str(root))
    report = apply_plan(plan_for(graph, store), graph, store, _Interrupted())
    assert report.interrupted
    after = read_lock(root)
    assert after.models == before.models and after.models["m"]["params"]["seed"] == 1
    assert after.jobs == before.jobs
    # the plan still says what will change, and why
    plan = CliRunner().invoke(main, ["plan", str(root)])
    assert "model `m` params.seed 1 -> 2" in plan.stdout


def test_a_half_finished_apply_records_the_facts_of_what_finished(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    assert CliRunner().invoke(main, ["apply", str(root)]).exit_code == 0
    spec = (root / "llmspec.yaml").read_text().replace("seed: 1", "seed: 2")
    (root / "llmspec.yaml").write_text(spec)
    assert CliRunner().invoke(main, ["apply", str(root)]).exit_code == 0
    assert read_lock(root).models["m"]["params"]["seed"] == 2


def test_result_sections_are_top_level_and_round_trip(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    assert CliRunner().invoke(main, ["apply", str(root)]).exit_code == 0
    text = (root / "llmspec.lock").read_text()
    data = json.loads(text)
    assert data["lock_version"] == 2 and data["suites"]["s"]["passed"] is True
    assert "sections" not in data
    lock = parse_lock(text, "llmspec.lock")
    assert lock.suites["s"]["gates"][0]["variant"] == "m"


def test_a_version_1_lock_is_read_and_every_job_is_new_keyed(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    v1 = {
        "lock_version": 1,
        "project": "c",
        "models": {"m": {"provider": "echo"}},
        "jobs": {
            "gate.s": {
                "kind": "gate",
                "key": "sha256:00",
                "inputs": {"gates": "x"},
                "output": "sha256:01",
            }
        },  # fmt: skip
        "suites": {"s": {"passed": True, "metrics": {}, "gates": []}},
    }
    (root / "llmspec.lock").write_text(json.dumps(v1))
    lock = read_lock(root)
    assert lock.suites["s"]["passed"] is True
    plan = CliRunner().invoke(main, ["plan", str(root)])
    assert "~ gate.s\n      the lock was written by an older llmspec (lock version 1)" in (
        plan.stdout
    )


@pytest.mark.parametrize("bad", ['{"lock_version": 9, "project": "x"}', "[1, 2"])
def test_newer_or_damaged_locks_are_diagnostics(bad: str) -> None:
    from llmspec.errors import LlmspecError

    with pytest.raises(LlmspecError) as e:
        parse_lock(bad, "llmspec.lock")
    assert e.value.diagnostics[0].code in ("E080", "E081")


def _applied(tmp_path: Path) -> Path:
    root = _project(tmp_path / "p")
    assert CliRunner().invoke(main, ["apply", str(root)]).exit_code == 0
    return root


def _edit_lock(root: Path, edit) -> None:
    data = json.loads((root / "llmspec.lock").read_text())
    edit(data)
    (root / "llmspec.lock").write_text(json.dumps(data, indent=2))


def test_lock_verify_passes_an_untouched_lock(tmp_path: Path) -> None:
    root = _applied(tmp_path)
    r = CliRunner().invoke(main, ["lock", "verify", str(root)])
    assert r.exit_code == 0 and "consistent" in r.stdout, r.output
    assert CliRunner().invoke(main, ["plan", str(root), "--locked"]).exit_code == 0


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d["suites"]["s"]["gates"][0].update(passed=False), "says failed"),
        (lambda d: d["suites"]["s"].update(passed=False), "recorded as failed"),
        (
            lambda d: d["suites"]["s"]["metrics"]["m"]["exact_match"].update(mean=0.1),
            "exact_match.mean = 0.1",
        ),
        (
            lambda d: (
                d["deployments"]["prod"].update(target={"kind": "export", "path": "x"})
                if "deployments" in d
                else d["suites"]["s"].update(baseline={"m": {}})
            ),
            "does not match the digest",
        ),
    ],
)
def test_an_edited_lock_fails_plan_locked_even_without_a_store(tmp_path: Path, edit, words):
    import shutil

    root = _applied(tmp_path)
    _edit_lock(root, edit)
    shutil.rmtree(root / ".llmspec")  # a fresh CI checkout: only the lock
    r = CliRunner().invoke(main, ["plan", str(root), "--locked"])
    assert r.exit_code == 1 and "error[E086]" in r.stderr and words in r.stderr, r.stderr


def test_with_the_store_every_output_is_checked(tmp_path: Path) -> None:
    root = _applied(tmp_path)
    _edit_lock(root, lambda d: d["jobs"]["generate.s.m.0"].update(output="sha256:" + "0" * 64))
    r = CliRunner().invoke(main, ["lock", "verify", str(root)])
    assert r.exit_code == 1 and "is not the stored result's" in r.stderr
