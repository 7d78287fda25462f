"""The hub's server: the JSON API over a recorded history, loopback only, no foreign Host, a
strict content security policy, `llmspec view` starting and stopping as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from llmspec.errors import LlmspecError
from llmspec.hub import server
from tests.conftest import REPO
from tests.hubdata import record_fake_runs


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hub")
    ids = record_fake_runs(root, 3, rows=130, change=0.3)
    running = server.start(root)
    yield running.url, ids
    running.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_api_serves_runs_rows_compare_series_and_locks(hub) -> None:
    url, (a, b, c) = hub
    status, headers, body = get(url + "api/runs")
    assert status == 200 and headers["content-type"] == "application/json"
    assert [r["id"] for r in json.loads(body)] == [a, b, c]
    run = json.loads(get(url + f"api/runs/{c}")[2])
    assert run["previous"] == b and run["row_counts"]["quality"]["base"]["rows"] == 130
    page = json.loads(get(url + f"api/runs/{c}/rows?suite=quality&page=3&size=50")[2])
    assert (page["total"], page["pages"], len(page["rows"])) == (130, 3, 30)
    changed = json.loads(
        get(url + f"api/runs/{c}/rows?suite=quality&filter=changed&base={a}&with_base=1")[2]
    )
    assert changed["base"] == a and 0 < changed["total"] < 130
    assert all(r["_changed"] for r in changed["rows"])
    cmp = json.loads(get(url + f"api/compare?a={a}&b={c}")[2])
    assert (cmp["a"]["id"], cmp["b"]["id"]) == (a, c) and cmp["suites"][0]["changed_rows"] > 0
    assert json.loads(get(url + f"api/compare?a={a}&b={c}")[2]) == cmp  # cached, the same
    series = json.loads(get(url + "api/series")[2])
    rouge = next(s for s in series if s["metric"] == "rouge_l")
    assert [p["run"] for p in rouge["variants"]["base"]] == [a, b, c]
    assert len(json.loads(get(url + "api/locks")[2])) == 3
    lock = get(url + f"api/runs/{a}/lock")
    assert lock[0] == 200 and json.loads(lock[2])["project"] == "support-bot"
    whole = json.loads(get(url + f"api/runs/{a}/results")[2])
    assert len(whole["suites"][0]["rows"]) == 130


def test_api_errors_are_json(hub) -> None:
    url, (a, _, _) = hub
    status, _, body = get(url + "api/runs/999")
    assert status == 404 and json.loads(body)["code"] == "E120"
    status, _, body = get(url + f"api/runs/{a}/rows?suite=quality&filter=bogus")
    assert status == 400 and "filter" in json.loads(body)["error"]
    assert get(url + f"api/runs/{a}/rows")[0] == 400  # no suite
    assert get(url + "api/compare?a=1")[0] == 400


def test_the_page_and_its_assets_are_served_with_a_strict_policy(hub) -> None:
    url, _ = hub
    status, headers, body = get(url)
    assert status == 200 and b'<script src="/static/app.js"' in body
    policy = headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe" not in policy
    for asset in ("static/app.js", "static/app.css"):
        assert get(url + asset)[0] == 200
    text = (server.STATIC / "app.js").read_text() + (server.STATIC / "index.html").read_text()
    text = text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace, not a fetch
    assert "http://" not in text and "https://" not in text  # nothing comes from elsewhere


def test_a_foreign_host_header_is_refused(hub) -> None:
    url, _ = hub
    assert get(url + "api/runs", {"Host": "attacker.example"})[0] == 421
    port = url.rsplit(":", 1)[1].strip("/")
    assert get(url + "api/runs", {"Host": f"localhost:{port}"})[0] == 200
    assert server.accepted_hosts("0.0.0.0") is None
    assert server._host_of("[::1]:8765") == "::1" and server._host_of("127.0.0.1:80") == "127.0.0.1"


def test_loopback_and_the_warning_for_other_addresses(monkeypatch, tmp_path: Path) -> None:
    assert server.is_loopback("127.0.0.1") and server.is_loopback("::1")
    assert server.is_loopback("localhost") and not server.is_loopback("0.0.0.0")
    seen = {}
    monkeypatch.setattr(server, "serve", lambda root, **kw: seen.update(kw))
    r = CliRunner().invoke(main, ["view", str(tmp_path), "--host", "0.0.0.0", "--no-browser"])
    assert r.exit_code == 0 and "warning: serving on 0.0.0.0" in r.stderr
    assert seen["host"] == "0.0.0.0" and seen["open_browser"] is False
    quiet = CliRunner().invoke(main, ["view", str(tmp_path), "--port", "0", "--no-browser"])
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr and seen["host"] == "127.0.0.1"


def test_a_port_in_use_is_a_diagnostic(tmp_path: Path) -> None:
    sock = server.bind("127.0.0.1", 0)
    sock.listen(1)
    try:
        with pytest.raises(LlmspecError) as e:
            server.bind("127.0.0.1", sock.getsockname()[1])
        assert e.value.diagnostics[0].code == "E123"
    finally:
        sock.close()


def test_view_runs_as_a_process_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    record_fake_runs(tmp_path, 2, rows=5)
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmspec", "view", str(tmp_path), "--port", "0", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # "llmspec hub: http://127.0.0.1:PORT/  (Ctrl-C stops it)"
        assert line.startswith("llmspec hub: http://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[2]
        assert len(json.loads(get(url + "api/runs")[2])) == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            get(url + "api/runs")
        except (urllib.error.URLError, ConnectionError):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the hub still answers after Ctrl-C")
