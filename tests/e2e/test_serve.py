"""A deployment on Ray Serve end to end, on the tiny model: plan -> apply (the suite passes, the
deployment is created) -> HTTP requests get schema-valid JSON naming the lock -> a suite run
through the `openai` provider over HTTP answers exactly as in-process generation at
temperature 0 -> change the prompt -> plan shows `~` with the reason -> apply updates it ->
`apply --lock OLD` rolls it back from the store -> a second deployment through a runner
profile -> deploy status and export -> destroy removes everything: nothing listens on the
port, the Ray head's processes are gone.

Heavy (a Ray head, Serve, replicas loading a model: ~1.5 GB for a few minutes on a loaded
2-core machine): one head for the module, always stopped, also on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.hashing import file_digest
from tests.conftest import REPO
from tests.served import call

pytestmark = pytest.mark.slow
pytest.importorskip("ray.serve")
pytest.importorskip("starlette")

SPEC = """\
version: 1
name: support
models:
  small:
    provider: transformers
    path: models/tiny
    batch_size: 4
    params: {{temperature: 0, max_tokens: 96, seed: 7}}
schemas:
  answer:
    type: object
    required: [answer, confidence]
    additionalProperties: false
    properties:
      answer: {{type: string, maxLength: 24}}
      confidence: {{type: string, enum: [low, medium, high]}}
prompts:
  grounded:
    system: Answer only from the context. Reply in JSON.
    template: >-
      Context: {{% for c in context %}}{{{{ c }}}} {{% endfor %}}
      Question: {{{{ question }}}}
    output: {{schema: answer}}
knowledge:
  help: {{source: {{path: kb}}, chunk: {{size: 300, overlap: 30}}, top_k: 2}}
datasets:
  golden: {{path: golden.jsonl, expected: answer}}
suites:
  answers:
    prompt: grounded
    models: [small]
    dataset: golden
    retrieve: help
    metrics: [schema_valid]
    gates: ["schema_valid == 1"]
deployments:
  api:
    model: small
    prompt: grounded
    retrieve: help
    requires: [answers]
    target: {{kind: ray_serve, route: /support, port: {port}, concurrency: 4}}
"""

CLIENT = """\
version: 1
name: client
models:
  served:
    provider: openai
    base_url: "http://127.0.0.1:{port}/support/v1"
    model: api
    max_retries: 1
    timeout_s: 120
    params: {{temperature: 0, max_tokens: 96, seed: 7}}
schemas:
  answer: {schema}
prompts:
  ask: {{template: "{{{{ question }}}}", output: {{schema: answer}}}}
datasets:
  golden: {{path: golden.jsonl, expected: answer}}
suites:
  over-http:
    prompt: ask
    models: [served]
    dataset: golden
    metrics: [schema_valid]
"""

ROWS = [
    {"question": "How long do refunds take?", "answer": "5 business days"},
    {"question": "Can I change my shipping address?", "answer": "until the order ships"},
    {"question": "How do I reset my password?", "answer": "the Forgot password link"},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _run(*args: str, env: dict[str, str] | None = None):
    if args[0] == "apply":
        args = (*args, "--runner", "inline")
    return CliRunner(env=env).invoke(main, list(args))


@pytest.fixture(scope="module")
def project(tmp_path_factory, example_models):
    """The project, with a free port; whatever it starts is stopped at the end."""
    from llmspec.serve.head import read_state, session_pids, stop_head

    root = tmp_path_factory.mktemp("serve") / "support"
    root.mkdir()
    port = _free_port()
    (root / "llmspec.yaml").write_text(SPEC.format(port=port))
    shutil.copytree(example_models["tiny"], root / "models" / "tiny")
    shutil.copytree(REPO / "specs" / "kb", root / "kb")
    (root / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    heads: dict[str, dict] = {}
    try:
        yield root, port, heads
    finally:
        _run("destroy", str(root), "--auto-approve")
        for head in list(read_state(root)["heads"].values()) + list(heads.values()):
            stop_head(head)  # by its pid; a no-op when destroy stopped it
            for pid in session_pids(int(head["pid"])):
                os.kill(pid, 9)


def _head(root: Path) -> dict:
    from llmspec.serve.head import read_state

    (head,) = read_state(root)["heads"].values()
    return head


def test_deploy_serve_update_roll_back_and_destroy(project, tmp_path: Path) -> None:
    from llmspec.serve.head import alive, session_pids

    root, port, heads = project
    base = f"http://127.0.0.1:{port}/support/v1"

    plan = _run("plan", str(root))
    assert plan.exit_code == 0 and "+ deploy.api" in plan.stdout

    # apply: the suite passes, then the deployment ships (after the lock is written)
    first = _run("apply", str(root))
    assert first.exit_code == 0, first.output
    assert f"Deployed `api`: http://127.0.0.1:{port}/support" in first.stdout
    heads["api"] = _head(root)
    lock_v1 = (root / "llmspec.lock").read_bytes()
    old_lock = tmp_path / "v1.lock"
    old_lock.write_bytes(lock_v1)
    key_v1 = json.loads(lock_v1)["jobs"]["deploy.api"]["key"]

    status, headers, models = call(f"{base}/models")
    assert status == 200 and models["data"][0]["id"] == "api"
    assert models["data"][0]["llmspec"]["lock"] == file_digest(lock_v1)
    status, headers, body = call(
        f"{base}/chat/completions",
        {"model": "api", "messages": [{"role": "user", "content": ROWS[0]["question"]}]},
    )
    assert status == 200, body
    answer = json.loads(body["choices"][0]["message"]["content"])  # schema-valid JSON
    assert set(answer) == {"answer", "confidence"} and body["llmspec"]["valid"] is True
    assert body["llmspec"]["guarantee"] == "token" and body["llmspec"]["context"]
    assert headers["x-llmspec-lock"] == file_digest(lock_v1)
    assert headers["x-llmspec-key"] == key_v1
    assert body["system_fingerprint"] == "llmspec-" + key_v1.split(":")[1][:16]
    too_many, _, err = call(
        f"{base}/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 97},
    )
    assert too_many == 400 and "limit is 96" in err["error"]["message"]

    # a suite through the openai provider over HTTP answers as in-process generation did
    report = json.loads(_run("report", str(root), "--format", "json").stdout)
    local = {r["row"]: r["output"] for r in report["suites"][0]["rows"]}
    client = tmp_path / "client"
    client.mkdir()
    schema = json.dumps(json.loads(lock_v1)["schemas"]["answer"])
    (client / "llmspec.yaml").write_text(CLIENT.format(port=port, schema=schema))
    shutil.copy(root / "golden.jsonl", client / "golden.jsonl")
    over_http = _run("apply", str(client))
    assert over_http.exit_code == 0, over_http.output
    remote = json.loads(_run("report", str(client), "--format", "json").stdout)
    rows = remote["suites"][0]["rows"]
    assert {r["row"]: r["output"] for r in rows} == local
    assert all(r["valid"] for r in rows)

    # change the prompt: plan says why, apply updates the deployment
    spec = root / "llmspec.yaml"
    spec.write_text(spec.read_text().replace("Reply in JSON.", "Reply in JSON, briefly."))
    plan = _run("plan", str(root))
    assert "~ deploy.api" in plan.stdout, plan.stdout
    assert "prompt `grounded` system" in plan.stdout
    second = _run("apply", str(root))
    assert second.exit_code == 0, second.output
    assert "Deployed `api`" in second.stdout
    key_v2 = json.loads((root / "llmspec.lock").read_text())["jobs"]["deploy.api"]["key"]
    assert key_v2 != key_v1
    _, headers, body = call(
        f"{base}/chat/completions", {"messages": [{"role": "user", "content": ROWS[1]["question"]}]}
    )
    assert headers["x-llmspec-key"] == key_v2 and body["system_fingerprint"].endswith(
        key_v2.split(":")[1][:16]
    )
    assert _head(root)["pid"] == heads["api"]["pid"]  # the same head, reused

    # roll back: the old version from the store, nothing runs
    back = _run("apply", str(root), "--lock", str(old_lock))
    assert back.exit_code == 0, back.output
    assert "Rolled back `api`" in back.stdout and "Nothing ran" in back.stdout
    _, headers, _ = call(f"{base}/models")
    assert headers["x-llmspec-key"] == key_v1
    assert headers["x-llmspec-lock"] == file_digest(lock_v1)
    assert "* deploy.api" in _run("plan", str(root)).stdout  # the spec ships v2

    # a second deployment through a runner profile that points at a running cluster
    head = _head(root)
    (root / "runners").mkdir()
    (root / "runners" / "mine.yaml").write_text(f"address: {head['address']}\n")
    spec.write_text(
        spec.read_text()
        + (
            "  beta:\n    model: small\n    prompt: grounded\n    retrieve: help\n"
            f"    target: {{kind: ray_serve, route: /beta, port: {port}, runner: mine}}\n"
        )
    )
    token = root / ".llmspec" / "serve" / "ray_token"
    env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    third = _run("apply", str(root), env=env)
    assert third.exit_code == 0, third.output
    assert "Deployed `api`" in third.stdout and "Deployed `beta`" in third.stdout
    assert call(f"http://127.0.0.1:{port}/beta/v1/models")[0] == 200

    status = json.loads(_run("deploy", "status", str(root), "--format", "json").stdout)
    names = {d["name"]: d for d in status["deployments"]}
    assert names["api"]["running"] and names["api"]["spec"] == "current"
    assert names["beta"]["runner"] == "mine" and names["beta"]["lock_is_current"]

    out = tmp_path / "export"
    exported = _run("deploy", "export", str(root), "api", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    from ray.serve.schema import ServeDeploySchema
    from ruamel.yaml import YAML

    ServeDeploySchema.model_validate(YAML(typ="safe").load((out / "serve.yaml").read_text()))
    assert json.loads((out / "api.json").read_text())["key"] == key_v2

    # destroy: beta leaves the cluster's head running; api takes the head llmspec started
    gone = _run("destroy", str(root), "beta", "--auto-approve", env=env)
    assert gone.exit_code == 0, gone.output
    assert alive(head) and call(f"http://127.0.0.1:{port}/beta/v1/models")[0] == 404
    gone = _run("destroy", str(root), "--auto-approve")
    assert gone.exit_code == 0, gone.output
    assert not _listening(port)
    assert not alive(head) and session_pids(int(head["pid"])) == []
    assert not Path(head["temp_dir"]).exists()
    assert "* deploy.api" in _run("plan", str(root)).stdout  # not deployed: apply ships it
