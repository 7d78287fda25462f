"""What runs outside the store, from the records alone (no Ray): plan shows a deployment that
does not run its key as `*` and one no longer in the spec as `-`; local models drift by their
files; the records of a Ray head; the config `deploy export` writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmspec.compile import compile_project
from llmspec.drift import DriftReport, with_local_models
from llmspec.lock import Lock, LockedJob
from llmspec.plan import make_plan, render_text
from llmspec.project import load_project
from llmspec.serve.head import alive, session_pids, write_state
from llmspec.targets import effects

SPEC = """\
version: 1
name: shop
models:
  m: {provider: echo}
prompts:
  qa: {template: "Q: {{ question }}"}
deployments:
  api:
    model: m
    prompt: qa
    target: {kind: ray_serve, route: /support, port: 18765, api_key: "${env:SHOP_KEY}"}
"""


def _graph(root: Path) -> object:
    root.mkdir(exist_ok=True)
    (root / "llmspec.yaml").write_text(SPEC)
    return compile_project(load_project(root))


def _locked(graph) -> Lock:
    jobs = {
        j.id: LockedJob(kind=j.kind, key=j.key, inputs=j.lock_inputs(), output="sha256:" + "0" * 64)
        for j in graph.jobs.values()
    }
    return Lock(project=graph.project, jobs=jobs)


def _record(root: Path, key: str, pid: int, auth: str | None = None, extra: dict | None = None):
    deployments = {
        "api": {"key": key, "app": "api", "url": "http://127.0.0.1:18765/support",
                "route": "/support", "port": 18765, "host": "127.0.0.1", "lock": None,
                "head": "18765", "runner": None, "auth": auth, "api_key": "${env:SHOP_KEY}"},
    } | (extra or {})  # fmt: skip
    heads = {"18765": {"pid": pid, "address": "127.0.0.1:1", "temp_dir": "/tmp/llmspec-ray-x",
                       "host": "127.0.0.1", "port": 18765}}  # fmt: skip
    write_state(root, {"heads": heads, "deployments": deployments})


def test_plan_shows_a_deployment_that_does_not_run_its_key(tmp_path, monkeypatch) -> None:
    from llmspec.serve.app import key_digest

    monkeypatch.setenv("SHOP_KEY", "k1")
    root = tmp_path / "p"
    graph = _graph(root)
    lock, stored = _locked(graph), {j.key for j in graph.jobs.values()}
    key = graph.jobs["deploy.api"].key

    def plan() -> str:
        return render_text(make_plan(graph, lock, stored, "none", effects(graph)))

    assert "not deployed on this machine" in plan()
    _record(root, key, pid=2**22 + 7, auth=key_digest("k1"))  # a pid that is not running
    assert "not running: its Ray head (pid 4194311) is gone" in plan()
    _record(root, key, pid=os.getpid(), auth=key_digest("k1"))  # alive() wants Ray's cmdline
    assert "* deploy.api" in plan()

    # a running head: the same key is up to date, another key or a new API key ships again
    monkeypatch.setattr("llmspec.serve.head.alive", lambda head: True)
    _record(root, key, pid=1, auth=key_digest("k1"))
    assert "deploy.api" not in plan()  # up to date
    monkeypatch.setenv("SHOP_KEY", "k2")
    assert "the API key in ${env:SHOP_KEY} changed" in plan()
    monkeypatch.setenv("SHOP_KEY", "k1")
    _record(root, "sha256:" + "9" * 64, pid=1, auth=key_digest("k1"))
    text = plan()
    assert "* deploy.api  (cached)" in text and "runs another version (999999999999)" in text

    # a deployment on record that no job ships any more goes, on plan and apply
    old = {"old": {"key": "sha256:" + "1" * 64, "app": "old", "url": "http://127.0.0.1:18765/old",
                   "head": "18765", "lock": None}}  # fmt: skip
    _record(root, key, pid=1, auth=key_digest("k1"), extra=old)
    text = plan()
    assert "- deploy.old" in text and "no longer in the spec: http://127.0.0.1:18765/old" in text


def test_local_models_drift_by_their_files(tmp_path) -> None:
    root = tmp_path / "local"
    root.mkdir()
    (root / "w").mkdir()
    (root / "w" / "config.json").write_text('{"model_type": "gpt2"}')
    (root / "w" / "model.safetensors").write_bytes(b"weights-1")
    (root / "llmspec.yaml").write_text(
        "version: 1\nname: local\nmodels: {m: {provider: transformers, path: w}}\n"
        'prompts: {p: {template: "{{ question }}"}}\n'
        "datasets: {d: {path: d.jsonl}}\n"
        "suites: {s: {prompt: p, models: [m], dataset: d, metrics: [contains]}}\n"
    )
    (root / "d.jsonl").write_text('{"question": "q", "expected": "q"}\n')
    before = compile_project(load_project(root))
    lock = _locked(before).model_copy(update={"models": before.facts["models"]})
    (root / "w" / "model.safetensors").write_bytes(b"weights-2")
    after = compile_project(load_project(root))
    empty = DriftReport(project="local", status="no drift", models=[], stale=[])
    report = with_local_models(empty, after, lock)
    assert report.status == "drift" and report.exit_code == 2
    (m,) = report.models
    assert m.moved == ["weights changed: model.safetensors"]
    assert m.stale == ["generate.s.m.0", "score.s.m.0", "summary.s.m", "gate.s"]
    assert with_local_models(empty, before, lock).status == "no drift"


def test_head_records_and_sessions() -> None:
    assert not alive(None) and not alive({"pid": os.getpid(), "temp_dir": "/nonexistent/x"})
    assert os.getpid() in session_pids(os.getsid(0))


def test_export_config_is_a_valid_serve_deploy_config() -> None:
    pytest.importorskip("ray.serve")
    from ray.serve.schema import ServeDeploySchema
    from ruamel.yaml import YAML

    from llmspec.targets.ray_serve import serve_config

    target = {"host": "127.0.0.1", "port": 8765, "route": "/support", "replicas": 2,
              "concurrency": 4, "queue": 16}  # fmt: skip
    text = serve_config("api", {"key": "sha256:" + "a" * 64, "target": target}, "/srv/api.json")
    doc = YAML(typ="safe").load(text)
    schema = ServeDeploySchema.model_validate(doc)
    (app,) = schema.applications
    assert app.import_path == "llmspec.serve.deployment:build"
    assert app.args == {"config_file": "/srv/api.json"} and app.route_prefix == "/support"
    assert app.deployments[0].num_replicas == 2 and app.deployments[0].name == "llmspec"
    assert json.dumps(doc)  # plain data, nothing YAML-specific


def test_rolling_back_to_a_version_the_store_lacks_says_so(tmp_path: Path) -> None:
    """`apply --lock OLD.lock` ships from the store; a deployment whose result at OLD's version
    is not there is E095 at the deployment, and nothing is shipped."""
    import shutil

    from click.testing import CliRunner

    from llmspec.cli import main

    root = tmp_path / "shop"
    root.mkdir()
    (root / "llmspec.yaml").write_text(
        SPEC.replace(
            'target: {kind: ray_serve, route: /support, port: 18765, api_key: "${env:SHOP_KEY}"}',
            "target: {kind: export, path: build/api.json}",
        )
    )
    cli = CliRunner()
    first = cli.invoke(main, ["apply", str(root), "--runner", "inline", "-q"])
    assert first.exit_code == 0, first.output
    old = tmp_path / "old.lock"
    shutil.copy(root / "llmspec.lock", old)
    shutil.rmtree(root / ".llmspec" / "store")
    (root / "build" / "api.json").unlink()

    back = cli.invoke(main, ["apply", str(root), "--lock", str(old)])
    assert back.exit_code == 1, back.output
    assert "error[E095]" in back.output and "deployment `api`" in back.output
    assert "llmspec.yaml:" in back.output  # at the deployment's spec line
    assert not (root / "build" / "api.json").exists()
