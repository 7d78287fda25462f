"""The `openai` provider against scripted servers that answer the way vLLM, llama.cpp's server,
Ollama and OpenAI itself do where they differ, and through an HTTP proxy."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from llmspec.jsonschemas import strict_problem  # noqa: E402
from tests.unit.test_openai_provider import SCHEMA, FakeOpenAI, Seen, provider, req  # noqa: E402

STRICT = SCHEMA | {"additionalProperties": False, "required": ["answer", "echo"]}
STRICT["properties"] = {
    "answer": {"type": "string"},
    "echo": {"type": "object", "additionalProperties": False, "properties": {}, "required": []},
}


class Server(FakeOpenAI):
    """FakeOpenAI with one server's habits (`flavor`) applied before the normal answer."""

    def __init__(self, flavor: str) -> None:
        super().__init__()
        self.flavor = flavor
        self.loading = 0  # llama.cpp: requests answered 503 "Loading model" first
        self.models = {"served"}  # Ollama: the models pulled

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        refusal = self.refuse(body)
        if refusal is None:
            return await super().handle(request)
        status, payload = refusal
        prompt = body["messages"][-1]["content"]
        self.seen.append(Seen(prompt, body, dict(request.headers), time.monotonic()))
        return web.json_response(payload, status=status)

    def refuse(self, body: dict[str, Any]) -> tuple[int, dict] | None:
        if self.flavor == "openai":
            if "max_tokens" in body and body["model"].startswith(("o3", "gpt-5")):
                return 400, {"error": {
                    "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                    "model. Use 'max_completion_tokens' instead.",
                    "type": "invalid_request_error", "param": "max_tokens",
                    "code": "unsupported_parameter"}}  # fmt: skip
            fmt = body.get("response_format") or {}
            schema = (fmt.get("json_schema") or {}).get("schema")
            if schema is not None and fmt["json_schema"].get("strict") and strict_problem(schema):
                return 400, {"error": {
                    "message": "Invalid schema for response_format 'output': In context=(), "
                    "'additionalProperties' is required to be supplied and to be false.",
                    "type": "invalid_request_error", "param": "response_format",
                    "code": None}}  # fmt: skip
        if self.flavor == "vllm":
            limit = body.get("max_tokens") or body.get("max_completion_tokens") or 0
            if limit > 2000:
                return 400, {"object": "error", "type": "BadRequestError", "param": None,
                             "code": 400, "message": "This model's maximum context length is "
                             f"2048 tokens. However, you requested {limit + 12} tokens (12 in "
                             f"the messages, {limit} in the completion)."}  # fmt: skip
        if self.flavor == "llamacpp" and self.loading > 0:
            self.loading -= 1
            return 503, {"error": {"code": 503, "message": "Loading model",
                                   "type": "unavailable_error"}}  # fmt: skip
        if self.flavor == "ollama" and body["model"] not in self.models:
            return 404, {"error": {"message": f'model "{body["model"]}" not found, try '
                                   "pulling it first", "type": "api_error", "param": None,
                                   "code": None}}  # fmt: skip
        return None


@pytest.fixture
def serve():
    started: list[Server] = []

    def start(flavor: str) -> Server:
        s = Server(flavor)
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


# -- OpenAI -----------------------------------------------------------------------------------


def test_openai_newer_models_get_max_completion_tokens(serve) -> None:
    s = serve("openai")
    p = provider(s.url, model="o3-mini", max_retries=0, concurrency=1)
    res = p.generate([req(f"q{i}", max_tokens=20) for i in range(3)])
    assert [r.finish for r in res] == ["stop"] * 3
    sent = [("max_tokens" in x.body, x.body.get("max_completion_tokens")) for x in s.seen]
    assert sent == [(True, None), (False, 20), (False, 20), (False, 20)]  # one refusal, at once
    p.generate([req("later")])  # the provider remembers what this server takes
    assert "max_tokens" not in s.seen[-1].body

    s.seen.clear()
    p = provider(s.url, model="o3-mini", max_tokens_param="max_completion_tokens")
    assert p.generate([req("q")])[0].finish == "stop" and "max_tokens" not in s.seen[0].body
    [res] = provider(s.url, model="o3-mini", max_tokens_param="max_tokens").generate([req("x")])
    assert res.finish == "error" and "max_tokens_param: max_completion_tokens" in res.error


def test_openai_strict_mode_refuses_an_open_schema_and_takes_a_closed_one(serve) -> None:
    s = serve("openai")
    p = provider(s.url, model="gpt-4o-mini")
    open_, closed = p.generate([req("open", {"json_schema": SCHEMA}),
                                req("closed", {"json_schema": STRICT})])  # fmt: skip
    assert open_.finish == "error" and "'additionalProperties' is required" in open_.error
    assert len(s.attempts("open")) == 1  # a 400 is not retried
    assert closed.finish == "stop" and closed.guarantee == "provider"


# -- vLLM, llama.cpp's server, Ollama ---------------------------------------------------------


def test_vllm_error_shape_and_both_limit_names(serve) -> None:
    s = serve("vllm")
    p = provider(s.url)
    ok, too_long = p.generate([req("ok"), req("long", max_tokens=4000)])
    assert ok.finish == "stop"
    assert too_long.finish == "error" and len(s.attempts("long")) == 1
    assert "maximum context length is 2048 tokens" in too_long.error
    assert "object" not in too_long.error  # the message, not the whole body
    named = provider(s.url, max_tokens_param="max_completion_tokens").generate([req("named")])
    assert named[0].finish == "stop"


def test_llama_cpp_server_loading_the_model_is_waited_out(serve) -> None:
    s = serve("llamacpp")
    s.loading = 2
    [res] = provider(s.url, max_retries=3).generate([req("q", {"json_schema": SCHEMA})])
    assert res.finish == "stop" and len(s.attempts("q")) == 3


def test_ollama_model_not_pulled_fails_at_once_with_its_message(serve) -> None:
    s = serve("ollama")
    missing = provider(s.url, model="llama3").generate([req("a")])
    assert missing[0].finish == "error" and "try pulling it first" in missing[0].error
    assert len(s.attempts("a")) == 1
    pulled = provider(s.url, model="served").generate([req("b")])
    assert pulled[0].finish == "stop"


# -- proxies ----------------------------------------------------------------------------------


def test_proxy_from_the_environment_and_loopback_stays_direct(serve, monkeypatch) -> None:
    server, proxy = serve("vllm"), serve("vllm")  # the proxy answers as the server would
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
                 "http_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")

    [res] = provider("http://llm.example.test/v1").generate([req("far")])
    assert res.finish == "stop", res.error
    [via] = proxy.seen
    assert via.headers["Host"] == "llm.example.test" and via.prompt == "far"

    [res] = provider(server.url).generate([req("near")])  # 127.0.0.1: never through a proxy
    assert res.finish == "stop" and len(proxy.seen) == 1 and server.seen[0].prompt == "near"

    monkeypatch.setenv("NO_PROXY", "llm.example.test")
    [res] = provider("http://llm.example.test/v1", timeout_s=3.0, max_retries=0).generate(
        [req("bypass")]
    )
    assert res.finish == "error" and len(proxy.seen) == 1  # went direct, and found no such host
