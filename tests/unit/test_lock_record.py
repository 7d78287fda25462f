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

    def run(self, graph, jobs, output_of, on_start, on_outcome, on_progress=None) -> None:
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
