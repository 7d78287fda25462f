"""Test helpers for the served app: a config around a model, a provider that says what it was
asked, and the app's Starlette app under uvicorn on 127.0.0.1 in a thread (no Ray)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from llmspec.providers import Capabilities, Result
from tests.scripted_openai import instance

SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "additionalProperties": False,
    "properties": {"answer": {"type": "string", "maxLength": 40}},
}
KEY = "sha256:" + "a" * 64
LOCK = "sha256:" + "b" * 64


def config(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "deployment": "api",
        "key": KEY,
        "lock": LOCK,
        "model_name": "preview",
        "model": {
            "provider": "echo",
            "params": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 32, "seed": 7, "stop": []},
        },
        "prompt": {
            "system": "Answer briefly.",
            "template": "Q: {{ question }}{% if topic is defined %} ({{ topic }}){% endif %}",
            "output": {"schema": "answer", "regex": None, "choice": None},
            "description": None,
        },
        "schema": SCHEMA,
        "retrieval": None,
        "limits": {"max_tokens": 32, "max_body_bytes": 4096, "concurrency": 4},
        "auth": None,
    }
    return base | over


class Recording:
    """A provider that answers what the constraint asks for (built from the prompt) and
    records each batch it was given; `gate` (an Event) holds every batch until set."""

    capabilities = Capabilities(True, True, True, False, True, "token")

    def __init__(self, gate: threading.Event | None = None):
        self.batches: list[list[Any]] = []
        self.gate = gate

    def generate(self, requests: list[Any]) -> list[Result]:
        self.batches.append(list(requests))
        if self.gate is not None:
            self.gate.wait(30)
        out = []
        for r in requests:
            c = r.constraint
            text = r.prompt
            if c is not None and c.kind == "json_schema":
                text = json.dumps(instance(c.value, r.prompt))
            out.append(Result(text, "stop", "token", tokens=3, prompt_tokens=5))
        return out


class Uvicorn:
    """An ASGI app served on 127.0.0.1 (a free port) in a thread; stopped on exit."""

    def __init__(self, app: Any):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="off"))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Uvicorn:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.server.started, "uvicorn did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def call(
    url: str,
    body: Any = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 60,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body) of one request: the body as JSON, or as text when it is not
    (Serve's own 404 for an unknown route is text)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), _parse(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), _parse(e.read())


def _parse(data: bytes) -> Any:
    try:
        return json.loads(data or b"null")
    except ValueError:
        return data.decode("utf-8", "replace")
