"""Job behaviours through the CLI with the echo provider: repeats, CSV datasets, gates that
block a deployment, and the http deployment target."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from click.testing import CliRunner

from llmspec.cli import main

SPEC = """\
version: 1
name: jobs
models:
  m: {{provider: echo}}
prompts:
  p: {{template: "{{{{ question }}}}"}}
datasets:
  d: {{path: d.csv, expected: answer}}
suites:
  s: {{prompt: p, models: [m], dataset: d, repeats: 2, metrics: [exact_match],
      gates: ["exact_match {gate}"]}}
deployments:
  prod: {{model: m, prompt: p, requires: [s], target: {target}}}
"""


def _project(tmp_path: Path, gate: str, target: str) -> Path:
    root = tmp_path / "jobs"
    root.mkdir()
    (root / "llmspec.yaml").write_text(SPEC.format(gate=gate, target=target))
    (root / "d.csv").write_text("question,answer\nyes,yes\nno,nope\n")
    return root


def _outputs(root: Path) -> dict[str, dict]:
    from llmspec.store import Store

    return {s.job: s.output for s in Store(root).records()}


def test_repeats_csv_and_export(tmp_path: Path) -> None:
    root = _project(tmp_path, ">= 0.5", "{kind: export, path: out/prod.json}")
    r = CliRunner().invoke(main, ["apply", str(root)])
    assert r.exit_code == 0, r.output
    rows = _outputs(root)["generate.s.m.0"]["rows"]
    assert [(x["row"], x["repeat"]) for x in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    summary = _outputs(root)["summary.s.m"]
    assert summary["stats"]["exact_match"]["mean"] == 0.5 and summary["rows"] == 4
    # two repeats of each row at temperature 0 (echo): they agree, no verdict flips
    assert summary["repeats"]["exact_match"] == {"rows": 2, "agreement": 1.0, "flip_rate": 0.0}
    manifest = json.loads((root / "out" / "prod.json").read_text())
    assert manifest["deployment"] == "prod" and manifest["requires"] == {"s": True}


def test_failed_gate_blocks_the_deployment(tmp_path: Path) -> None:
    root = _project(tmp_path, ">= 0.9", "{kind: export, path: out/prod.json}")
    r = CliRunner().invoke(main, ["apply", str(root)])
    assert r.exit_code == 3, r.output
    assert "deploy.prod: blocked" in r.stderr and "Gates failed: s." in r.stdout
    # which gate blocked it, with the numbers, at the deployment's spec line
    assert "error[E092]: job `deploy.prod` is blocked: required suite gates failed: " in r.stderr
    assert "s: `exact_match >= 0.9` [m] = 0.5" in r.stderr
    assert not (root / "out" / "prod.json").exists()
    lock = json.loads((root / "llmspec.lock").read_text())
    assert lock["suites"]["s"]["passed"] is False
    assert lock["suites"]["s"]["gates"][0]["value"] == 0.5
    assert "deploy.prod" not in lock["jobs"]


class _Hook(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    received: list[tuple[str, dict]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Hook.received.append((self.headers.get("Authorization", ""), body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_http_target_posts_the_manifest_with_the_token(tmp_path: Path, monkeypatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/deploy"
        target = f'{{kind: http, url: "{url}", token: "${{env:DEPLOY_TOKEN}}"}}'
        root = _project(tmp_path, ">= 0.5", target)
        missing = CliRunner().invoke(main, ["apply", str(root)])
        assert missing.exit_code == 1 and "`DEPLOY_TOKEN` is not set" in missing.stderr
        monkeypatch.setenv("DEPLOY_TOKEN", "tok-123")
        r = CliRunner().invoke(main, ["apply", str(root)])
        assert r.exit_code == 0, r.output
    finally:
        server.shutdown()
        server.server_close()
    auth, body = _Hook.received[-1]
    assert auth == "Bearer tok-123" and body["deployment"] == "prod"
    assert "tok-123" not in (root / "llmspec.lock").read_text()
