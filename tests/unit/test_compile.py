"""Compile: jobs carry their inputs; keys come from inputs, kind versions and dependency keys;
what is machine-local is not keyed; a lock records only what finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llmspec.compile import compile_project
from llmspec.project import load_project

SPEC = """\
version: 1
name: c
models:
  m: {provider: echo, params: {seed: 1}}
prompts:
  p: {system: Be brief., template: "Q: {{ question }}"}
datasets:
  d: {path: d.jsonl, shard_rows: 2}
suites:
  s: {prompt: p, models: [m], dataset: d, metrics: [exact_match], gates: ["exact_match >= 0"]}
"""


def _graph(root: Path):
    return compile_project(load_project(root))


def _project(root: Path, spec: str = SPEC, rows: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "llmspec.yaml").write_text(spec)
    lines = [json.dumps({"question": f"q{i}", "expected": f"q{i}"}) for i in range(rows)]
    (root / "d.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_a_job_carries_what_it_reads(tmp_path: Path) -> None:
    g = _graph(_project(tmp_path / "p"))
    gen = g.jobs["generate.s.m.0"]
    assert gen.inputs["prompt"]["system"] == "Be brief."
    assert gen.inputs["prompt"]["template"] == "Q: {{ question }}"
    assert gen.inputs["model"]["params"]["seed"] == 1
    assert gen.inputs["rows"]["range"] == [0, 2] and gen.inputs["expected"] == "expected"
    assert gen.deps == {} and gen.pool == "model:m"
    assert g.jobs["score.s.m.1"].deps == {"generate": "generate.s.m.1"}
    assert g.jobs["summary.s.m"].deps == {"shard.0": "score.s.m.0", "shard.1": "score.s.m.1"}
    assert g.jobs["score.s.m.0"].pool == "general" and g.jobs["summary.s.m"].pool == "driver"
    assert g.jobs["gate.s"].inputs["gates"] == ["exact_match >= 0"]
    assert g.jobs["gate.s"].pool == "driver"


def test_keys_ignore_where_the_project_lives(tmp_path: Path) -> None:
    a = _graph(_project(tmp_path / "a"))
    b_root = tmp_path / "elsewhere" / "b"
    shutil.copytree(tmp_path / "a", b_root)
    b = _graph(b_root)
    assert {j.id: j.key for j in a.jobs.values()} == {j.id: j.key for j in b.jobs.values()}
    assert (
        a.jobs["generate.s.m.0"].local["dataset"]["path"]
        != (b.jobs["generate.s.m.0"].local["dataset"]["path"])
    )


def test_a_changed_dependency_changes_the_keys_downstream_only(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    before = {j.id: j.key for j in _graph(root).jobs.values()}
    lines = (root / "d.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"question": "changed", "expected": "x"})
    (root / "d.jsonl").write_text("\n".join(lines) + "\n")
    after = {j.id: j.key for j in _graph(root).jobs.values()}
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {"generate.s.m.1", "score.s.m.1", "summary.s.m", "gate.s"}


def test_a_kind_version_is_part_of_the_key(tmp_path: Path, monkeypatch) -> None:
    import dataclasses

    from llmspec import jobs

    root = _project(tmp_path / "p")
    before = _graph(root).jobs["gate.s"].key
    record = jobs.kind("gate")
    monkeypatch.setitem(jobs._loaded, "gate", dataclasses.replace(record, version=99))
    assert _graph(root).jobs["gate.s"].key != before


def test_lock_inputs_are_short_values_or_digests(tmp_path: Path) -> None:
    g = _graph(_project(tmp_path / "p"))
    locked = g.jobs["generate.s.m.0"].lock_inputs()
    assert locked["repeats"] == 1 and locked["expected"] == "expected"
    assert locked["rows"] == g.jobs["generate.s.m.0"].inputs["rows"]  # short: as itself
    from llmspec.compile import lock_value
    from llmspec.hashing import digest

    long = {"template": "x" * 200}
    assert lock_value(long) == digest(long)  # long: by digest


MADE = """\
version: 1
name: made
models:
  base: {provider: transformers, path: w}
  tuned:
    provider: transformers
    finetune: {from: base, dataset: d, prompt: p, method: full, epochs: 2}
  small:
    provider: transformers
    quantize: {from: tuned}
prompts:
  p: {template: "Q: {{ question }}"}
datasets:
  d: {path: d.jsonl}
suites:
  s: {prompt: p, models: [small], dataset: d, metrics: [exact_match]}
"""


def test_a_made_model_is_keyed_by_its_job_and_depends_on_it(tmp_path: Path) -> None:
    """No torch here: a made model's identity and dependencies come from compile alone."""
    from llmspec.apply import stored_keys
    from llmspec.plan import make_plan
    from llmspec.store import Store

    root = _project(tmp_path / "p", MADE)
    (root / "w").mkdir()
    (root / "w" / "model.safetensors").write_bytes(b"weights-1")
    g = _graph(root)
    ft, q = g.jobs["finetune.tuned"], g.jobs["quantize.small"]
    assert g.facts["models"]["tuned"]["finetune"]["key"] == ft.key
    assert g.facts["models"]["small"]["quantize"]["key"] == q.key
    assert q.deps == {"weights.tuned": "finetune.tuned"}
    gen = g.jobs["generate.s.small.0"]
    assert gen.deps == {"weights.small": "quantize.small"}
    assert gen.local["model"]["weights"] == str(Store(root.resolve()).tree_path(q.key))
    # the chain is content: the base's bytes move every key downstream
    (root / "w" / "model.safetensors").write_bytes(b"weights-2")
    g2 = _graph(root)
    for job_id in ("finetune.tuned", "quantize.small", "generate.s.small.0"):
        assert g2.jobs[job_id].key != g.jobs[job_id].key, job_id

    # a stored result of a kind that leaves a folder counts only with its folder
    store = Store(root)
    store.put(ft.id, ft.kind, ft.key, {"files": {}})
    assert ft.key not in stored_keys(g, store)
    tmp = store.tmp_dir()
    (tmp / "config.json").write_text("{}")
    store.put_tree(ft.key, tmp)
    assert ft.key in stored_keys(g, store)
    plan = make_plan(g, None, stored_keys(g, store), "none")
    assert next(c for c in plan.changes if c.job_id == "finetune.tuned").cached
