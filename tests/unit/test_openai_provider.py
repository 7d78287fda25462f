"""The `openai` provider against a scriptable OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from llmspec.constraints import Constraint, check_output  # noqa: E402
from llmspec.providers import CAPABILITIES, Request, load_provider  # noqa: E402
from llmspec.providers.openai import OpenAIProvider, parse_retry_after  # noqa: E402
from llmspec.spec import OpenAIModel  # noqa: E402

SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string"}, "echo": {"type": "object"}},
}
MODEL_ID = "served-model-v1"
FINGERPRINT = "fp_0123abcd"


@dataclass
class Seen:
    prompt: str
    body: dict[str, Any]
    headers: dict[str, str]
    t: float


class FakeOpenAI:
    """An OpenAI-compatible chat completions server on its own loop in a background thread.

    `script[prompt]` is a list of steps, one per attempt for that prompt; when it runs out the
    server answers normally. A step is a dict:
      {"status": 429, "headers": {...}, "message": "..."}   an error answer
      {"sleep": 1.0}                                      answer late (then normally)
      {"raw": b"..."}                                     HTTP 200 with this body
      {"finish": "length"}                                a normal answer with this finish_reason
      {"echo_auth": True}                                 put the Authorization header in the
                                                          error message / the content
    The normal answer is JSON that satisfies SCHEMA and echoes what the server received.
    """

    def __init__(self) -> None:
        self.script: dict[str, list[dict[str, Any]]] = {}
        self.seen: list[Seen] = []
        self.delay = 0.0
        self.inflight = 0
        self.max_inflight = 0
        self._ready = threading.Event()

    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        assert self._ready.wait(60), "test server did not start within 60 s"  # a busy machine

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        self.runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, shutdown_timeout=0.1)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    def attempts(self, prompt: str) -> list[Seen]:
        return [s for s in self.seen if s.prompt == prompt]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        prompt = body["messages"][-1]["content"]
        auth = request.headers.get("Authorization", "")
        self.seen.append(Seen(prompt, body, dict(request.headers), time.monotonic()))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            steps = self.script.get(prompt)
            step = steps.pop(0) if steps else {}
            await asyncio.sleep(step.get("sleep", self.delay))
            if "status" in step:
                message = step.get("message", "scripted failure")
                if step.get("echo_auth"):
                    message += f" (you sent {auth})"
                return web.json_response(
                    {"error": {"message": message, "type": "test"}},
                    status=step["status"],
                    headers=step.get("headers"),
                )
            if "raw" in step:
                return web.Response(body=step["raw"], content_type="application/json")
            answer = {"answer": prompt, "echo": {k: body.get(k) for k in ("model", "seed")}}
            if step.get("echo_auth"):
                answer["answer"] = f"I saw {auth}"
            return web.json_response(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "model": MODEL_ID,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": json.dumps(answer)},
                            "finish_reason": step.get("finish", "stop"),
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                }
            )
        finally:
            self.inflight -= 1


@pytest.fixture
def server():
    s = FakeOpenAI()
    s.start()
    yield s
    s.stop()


def provider(base_url: str, **fields: Any) -> OpenAIProvider:
    data = {
        "provider": "openai",
        "base_url": base_url,
        "model": "served",
        "timeout_s": 5.0,
        "max_retries": 3,
    } | fields
    return OpenAIProvider(
        OpenAIModel.model_validate(data), None, backoff_base=0.001, backoff_cap=0.01
    )


def req(prompt: str, constraint: dict | None = None, **kw: Any) -> Request:
    return Request(system=kw.pop("system", None), prompt=prompt,
                   constraint=Constraint.of(constraint),
                   max_tokens=kw.pop("max_tokens", 32), **kw)  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the request and the answer -----------------------------------------------------------------


def test_json_schema_goes_in_response_format(server: FakeOpenAI) -> None:
    p = provider(server.url)
    r = req("q1", {"json_schema": SCHEMA}, system="Be brief.", temperature=0.5, top_p=0.9,
            seed=11, stop=("\n\n",))  # fmt: skip
    [res] = p.generate([r])

    [seen] = server.seen
    body = seen.body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA, "strict": True},
    }
    assert not {"guided_json", "guided_regex", "guided_choice", "guided_grammar"} & set(body)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "q1"},
    ]
    assert body["model"] == "served"
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (32, 0.5, 0.9)
    assert (body["seed"], body["stop"]) == (11, ["\n\n"])
    assert "Authorization" not in seen.headers  # no api_key in the spec, no header

    assert res.finish == "stop" and res.guarantee == "provider" and res.error is None
    assert check_output({"json_schema": SCHEMA}, res.text) is None
    assert json.loads(res.text) == {"answer": "q1", "echo": {"model": "served", "seed": 11}}
    assert res.tokens == 7
    assert res.observed == {"model": MODEL_ID, "system_fingerprint": FINGERPRINT}
    assert 0 < res.seconds < 5


def test_no_constraint_sends_no_response_format(server: FakeOpenAI) -> None:
    [res] = provider(server.url).generate([req("free")])
    [seen] = server.seen
    assert "response_format" not in seen.body and "stop" not in seen.body
    assert seen.body["messages"] == [{"role": "user", "content": "free"}]
    assert res.finish == "stop" and res.guarantee == "none"


def test_finish_length(server: FakeOpenAI) -> None:
    server.script["long"] = [{"finish": "length"}]
    [res] = provider(server.url).generate([req("long", {"json_schema": SCHEMA})])
    assert res.finish == "length" and res.guarantee == "provider"


@pytest.mark.parametrize("kind", [{"regex": "[a-z]+"}, {"choice": ["yes", "no"]}])
def test_regex_and_choice_are_refused_not_sent(server: FakeOpenAI, kind: dict) -> None:
    res = provider(server.url).generate([req("a", kind), req("b")])
    assert res[0].finish == "error" and res[0].text == ""
    assert "cannot enforce" in res[0].error and next(iter(kind)) in res[0].error
    assert res[1].finish == "stop"
    assert [s.prompt for s in server.seen] == ["b"]


def test_schema_with_file_ref_is_refused(server: FakeOpenAI) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "defs.json#/a"}}}
    [res] = provider(server.url).generate([req("a", {"json_schema": schema})])
    assert res.finish == "error" and "defs.json" in res.error and not server.seen


def test_results_in_request_order(server: FakeOpenAI) -> None:
    server.script = {"slow": [{"sleep": 0.15}], "fast": [{}]}
    res = provider(server.url).generate([req("slow"), req("fast")])
    assert [json.loads(r.text)["answer"] for r in res] == ["slow", "fast"]


# -- retries ------------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured(server: FakeOpenAI) -> None:
    server.script["q"] = [{"status": 429, "headers": {"Retry-After": "0.2"}}]
    [res] = provider(server.url).generate([req("q")])
    first, second = server.attempts("q")
    assert res.finish == "stop"
    assert 0.19 <= second.t - first.t < 2.0


def test_503_retry_after_http_date_is_honoured(server: FakeOpenAI) -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    server.script["q"] = [{"status": 503, "headers": {"Retry-After": past}}]
    [res] = provider(server.url).generate([req("q")])
    assert res.finish == "stop" and len(server.attempts("q")) == 2


def test_parse_retry_after() -> None:
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("0.2") == 0.2
    assert parse_retry_after(" 3 ") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0
    assert parse_retry_after("-5") == 0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad) is None


def test_retry_after_is_capped(server: FakeOpenAI) -> None:
    server.script["q"] = [{"status": 429, "headers": {"Retry-After": "3600"}}]
    p = provider(server.url)
    p.retry_after_cap = 0.05
    t0 = time.monotonic()
    [res] = p.generate([req("q")])
    assert res.finish == "stop" and time.monotonic() - t0 < 2


def test_retry_after_pauses_the_other_requests(server: FakeOpenAI) -> None:
    server.script["a"] = [{"status": 429, "headers": {"Retry-After": "0.3"}}]
    p = provider(server.url, concurrency=1)  # b and c queue behind a, then find the pause
    res = p.generate([req("a"), req("b"), req("c")])
    assert [r.finish for r in res] == ["stop"] * 3
    a1, a2 = server.attempts("a")
    [b], [c] = server.attempts("b"), server.attempts("c")
    assert min(b.t, c.t, a2.t) - a1.t >= 0.29  # nobody called while the server asked for a pause


def test_5xx_then_success(server: FakeOpenAI) -> None:
    server.script["q"] = [{"status": 500}, {"status": 502}, {"status": 503}, {"status": 504}]
    [res] = provider(server.url, max_retries=4).generate([req("q", {"json_schema": SCHEMA})])
    assert res.finish == "stop" and res.guarantee == "provider"
    assert len(server.attempts("q")) == 5


@pytest.mark.parametrize("retries", [0, 2])
def test_retries_are_bounded(server: FakeOpenAI, retries: int) -> None:
    server.script["q"] = [{"status": 500, "message": "engine overloaded"}] * 10
    [res] = provider(server.url, max_retries=retries).generate([req("q")])
    assert len(server.attempts("q")) == retries + 1
    assert res.finish == "error" and res.text == "" and res.tokens is None
    assert "HTTP 500" in res.error and "engine overloaded" in res.error
    assert ("1 attempt" if retries == 0 else f"{retries + 1} attempts") in res.error


def test_timeout_is_retried_then_recorded(server: FakeOpenAI) -> None:
    server.script["slow"] = [{"sleep": 2.0}] * 3
    server.script["late-once"] = [{"sleep": 2.0}]
    p = provider(server.url, timeout_s=0.15, max_retries=1)
    t0 = time.monotonic()
    slow, once = p.generate([req("slow"), req("late-once")])
    assert time.monotonic() - t0 < 1.5
    assert slow.finish == "error" and "timeout_s=0.15" in slow.error
    assert len(server.attempts("slow")) == 2
    assert once.finish == "stop" and len(server.attempts("late-once")) == 2


@pytest.mark.parametrize(
    "bodies",
    [[b"this is not json"], [b'{"object": "chat.completion"}'], [b'{"choices": []}']],
)
def test_bad_200_body_is_retried(server: FakeOpenAI, bodies: list[bytes]) -> None:
    server.script["once"] = [{"raw": b} for b in bodies]
    server.script["always"] = [{"raw": b} for b in bodies] * 5
    once, always = provider(server.url, max_retries=2).generate([req("once"), req("always")])
    assert once.finish == "stop" and len(server.attempts("once")) == 2
    assert always.finish == "error" and "HTTP 200" in always.error and always.text == ""
    assert len(server.attempts("always")) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(server: FakeOpenAI, status: int) -> None:
    server.script["q"] = [{"status": status, "message": "Incorrect API key provided"}]
    [res] = provider(server.url).generate([req("q")])
    assert len(server.attempts("q")) == 1
    assert res.finish == "error" and f"HTTP {status}" in res.error
    assert "Incorrect API key provided" in res.error


def test_a_failed_row_leaves_the_others_alone(server: FakeOpenAI) -> None:
    server.script = {
        "denied": [{"status": 401}],
        "broken": [{"status": 500}] * 10,
        "garbled": [{"raw": b"<html>"}] * 10,
    }
    prompts = ["ok-1", "denied", "broken", "ok-2", "garbled", "ok-3"]
    res = provider(server.url, max_retries=1).generate([req(x) for x in prompts])
    assert [r.finish for r in res] == ["stop", "error", "error", "stop", "error", "stop"]
    for r, x in zip(res, prompts, strict=True):
        if r.finish == "stop":
            assert json.loads(r.text)["answer"] == x and r.error is None
        else:
            assert r.text == "" and r.error and r.observed is None


def test_connection_refused_is_retried_then_recorded() -> None:
    p = provider(f"http://127.0.0.1:{closed_port()}/v1", max_retries=2)
    [res] = p.generate([req("q")])
    assert res.finish == "error" and "connection failed" in res.error
    assert "3 attempts" in res.error


def test_backoff_is_full_jitter_and_capped() -> None:
    p = provider("http://127.0.0.1:1/v1")
    p.backoff_base, p.backoff_cap = 0.5, 20.0
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (6, 20.0), (12, 20.0)]:
        delays = [p.delay(attempt, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # spread over the whole range, not a fixed step
    assert p.delay(5, 0.2) == 0.2


# -- concurrency, loops ---------------------------------------------------------------------------


def test_concurrency_limit_is_respected(server: FakeOpenAI) -> None:
    server.delay = 0.1
    res = provider(server.url, concurrency=3).generate([req(f"q{i}") for i in range(12)])
    assert all(r.finish == "stop" for r in res)
    assert server.max_inflight == 3


def test_works_from_a_thread_and_under_a_running_loop(server: FakeOpenAI) -> None:
    p = provider(server.url)
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.setdefault("thread", p.generate([req("t")])))
    t.start()
    t.join(10)

    async def inside_a_loop() -> Any:
        return p.generate([req("l")])

    gc.collect()  # earlier tests' garbage must not be counted as this provider's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        in_loop = asyncio.run(inside_a_loop())
        again = p.generate([req("again")])
        gc.collect()
    assert out["thread"][0].finish == in_loop[0].finish == again[0].finish == "stop"
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def test_empty_batch_makes_no_call(server: FakeOpenAI) -> None:
    assert provider(server.url).generate([]) == []
    assert not server.seen


def test_load_provider(server: FakeOpenAI) -> None:
    p = load_provider({"provider": "openai", "base_url": server.url, "model": "m"})
    assert isinstance(p, OpenAIProvider) and p.capabilities == CAPABILITIES["openai"]
    assert p.capabilities.json_schema and not p.capabilities.regex and not p.capabilities.choice


# -- configuration from the environment, and the API key --------------------------------------


def test_base_url_from_the_environment(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSPEC_TEST_BASE_URL", server.url + "/")
    [res] = provider("${env:LLMSPEC_TEST_BASE_URL}").generate([req("q")])
    assert res.finish == "stop"
    monkeypatch.delenv("LLMSPEC_TEST_BASE_URL")
    [res] = provider("${env:LLMSPEC_TEST_BASE_URL}").generate([req("q")])
    assert res.finish == "error" and "`LLMSPEC_TEST_BASE_URL` is not set" in res.error


def test_missing_api_key_variable(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLMSPEC_TEST_NO_SUCH_KEY", raising=False)
    p = provider(server.url, api_key="${env:LLMSPEC_TEST_NO_SUCH_KEY}")
    res = p.generate([req("a"), req("b", {"json_schema": SCHEMA})])
    assert [r.finish for r in res] == ["error", "error"]
    assert all("`LLMSPEC_TEST_NO_SUCH_KEY` is not set" in r.error for r in res)
    assert res[1].guarantee == "provider"
    assert not server.seen


def test_literal_api_key_is_never_used(server: FakeOpenAI) -> None:
    [res] = provider(server.url, api_key="sk-literal-0000").generate([req("q")])
    assert res.finish == "error" and "sk-literal-0000" not in res.error and not server.seen


def test_api_key_never_leaks(
    server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("LLMSPEC_TEST_KEY", canary)
    caplog.set_level(logging.DEBUG)
    server.script = {
        "denied": [{"status": 401, "echo_auth": True, "message": "Incorrect API key"}],
        "flaky": [{"status": 500, "echo_auth": True}] * 10,
        "parrot": [{"echo_auth": True}],
    }
    p = provider(server.url, api_key="${env:LLMSPEC_TEST_KEY}", max_retries=1)
    res = p.generate([req("ok", {"json_schema": SCHEMA}), req("denied"), req("flaky"),
                      req("parrot")])  # fmt: skip
    unreachable = provider(
        f"http://127.0.0.1:{closed_port()}/v1", api_key="${env:LLMSPEC_TEST_KEY}"
    )
    res += unreachable.generate([req("down")])

    # the server did get the key, where it belongs
    assert {s.headers.get("Authorization") for s in server.seen} == {f"Bearer {canary}"}
    assert [r.finish for r in res] == ["stop", "error", "error", "stop", "error"]
    assert "***" in res[1].error and "***" in res[2].error and "***" in res[3].text
    # and nothing that comes back holds it
    out, err = capfd.readouterr()
    records = "\n".join(r.getMessage() for r in caplog.records)
    assert "retrying" in records  # the retry of `flaky` was logged...
    haystacks = [repr(res), repr(p), repr(p.spec), repr(vars(p)), caplog.text, records, out, err]
    for hay in haystacks:  # ...without the key
        assert canary not in hay
        assert canary[len("sk-canary-") :] not in hay


# -- the circuit breaker ------------------------------------------------------------------------


def _down(server: FakeOpenAI, prompts: list[str]) -> None:
    for x in prompts:
        server.script[x] = [{"status": 503, "message": "upstream down"}] * 50


def test_a_down_server_opens_the_circuit_and_the_shard_fails_fast(server: FakeOpenAI) -> None:
    prompts = [f"q{i}" for i in range(20)]
    _down(server, prompts)
    p = provider(server.url, max_retries=4, concurrency=4, circuit_breaker=5)
    res = p.generate([req(x) for x in prompts])
    assert all(r.finish == "error" for r in res)
    # without the breaker: 20 rows x 5 attempts; with it, the 5 failures and what was in flight
    assert 5 <= len(server.seen) <= 5 + 4 - 1, len(server.seen)
    opened = [r for r in res if "circuit open" in r.error]
    assert len(opened) >= 20 - 4 and "upstream down" in opened[0].error

    # the next shard: one probe, one attempt; the server is still down, so the rest fail at once
    before = len(server.seen)
    again = p.generate([req(x) for x in prompts[:6]])
    assert len(server.seen) == before + 1
    assert "a probe of a server that looked down" in again[0].error
    assert all("circuit open" in r.error for r in again[1:])

    # back up: the probe succeeds, the circuit closes, every row is answered
    server.script.clear()
    back = p.generate([req(x) for x in prompts[:6]])
    assert [r.finish for r in back] == ["stop"] * 6 and not p.breaker.open


def test_rate_limits_and_refusals_do_not_open_the_circuit(server: FakeOpenAI) -> None:
    slow_down = {"status": 429, "headers": {"Retry-After": "0"}}
    server.script = {"a": [slow_down] * 3, "b": [slow_down] * 3, "c": [{"status": 401}]}
    p = provider(server.url, max_retries=4, concurrency=1, circuit_breaker=2)
    a, b, c = p.generate([req("a"), req("b"), req("c")])
    assert a.finish == b.finish == "stop" and c.finish == "error" and "HTTP 401" in c.error
    assert not p.breaker.open


def test_circuit_breaker_0_never_opens(server: FakeOpenAI) -> None:
    prompts = ["x", "y", "z"]
    _down(server, prompts)
    res = provider(server.url, max_retries=2, circuit_breaker=0).generate([req(x) for x in prompts])
    assert len(server.seen) == 3 * 3 and all("gave up after 3 attempts" in r.error for r in res)
