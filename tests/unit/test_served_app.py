"""The served app over real HTTP (uvicorn on 127.0.0.1, no Ray): the prompt applied
server-side, response_format, the identity every answer carries, and a clear 4xx for every
bad request."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from llmspec.serve.app import ServedModel, key_digest
from tests.served import LOCK, SCHEMA, Recording, Uvicorn, call, config


@pytest.fixture
def served():
    provider = Recording()
    model = ServedModel(config(), provider)
    with Uvicorn(model.asgi()) as server:
        yield server.url, provider


def chat(content: str = "where is my parcel?", **extra):
    return {"model": "api", "messages": [{"role": "user", "content": content}], **extra}


def test_models_names_the_deployment_and_its_lock(served) -> None:
    url, _ = served
    status, headers, body = call(f"{url}/v1/models")
    assert status == 200
    (model,) = body["data"]
    assert model["id"] == "api" and model["llmspec"]["lock"] == LOCK
    assert model["llmspec"]["model"] == "preview" and model["llmspec"]["guarantee"] == "token"
    assert headers["x-llmspec-lock"] == LOCK


def test_chat_applies_the_prompt_server_side_and_the_declared_schema(served) -> None:
    url, provider = served
    status, headers, body = call(f"{url}/v1/chat/completions", chat(temperature=0))
    assert status == 200, body
    (req,) = provider.batches[-1]
    assert req.system == "Answer briefly."
    assert req.prompt == "Q: where is my parcel?"
    assert req.constraint.value == SCHEMA and req.max_tokens == 32 and req.seed == 7
    answer = json.loads(body["choices"][0]["message"]["content"])
    assert set(answer) == {"answer"}
    assert body["model"] == "api" and body["system_fingerprint"].startswith("llmspec-aaaa")
    assert body["llmspec"]["lock"] == LOCK and body["llmspec"]["valid"] is True
    assert body["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert headers["x-llmspec-lock"] == LOCK


def test_variables_and_completions(served) -> None:
    url, provider = served
    status, _, body = call(f"{url}/v1/chat/completions", chat(variables={"topic": "refunds"}))
    assert status == 200 and provider.batches[-1][0].prompt.endswith("(refunds)")
    status, _, body = call(f"{url}/v1/completions", {"prompt": "hello", "max_tokens": 8})
    assert status == 200 and body["object"] == "text_completion"
    assert provider.batches[-1][0].prompt == "Q: hello" and provider.batches[-1][0].max_tokens == 8
    assert "text" in body["choices"][0]


def test_response_format_replaces_or_keeps_the_declared_constraint(served) -> None:
    url, provider = served
    other = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": other, "strict": True}}
    status, _, body = call(f"{url}/v1/chat/completions", chat(response_format=fmt))
    assert status == 200 and provider.batches[-1][0].constraint.value == other
    assert isinstance(json.loads(body["choices"][0]["message"]["content"])["n"], int)
    for kind in ("json_object", "text"):
        call(f"{url}/v1/chat/completions", chat(response_format={"type": kind}))
        assert provider.batches[-1][0].constraint.value == SCHEMA


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (chat(model="gpt-4"), 404, "not served here"),
        (chat(stream=True), 400, "streaming"),
        (chat(n=2), 400, "n=1"),
        (chat(max_tokens=33), 400, "limit is 32"),
        (chat(max_tokens="8"), 400, "max_tokens"),
        (chat(temperature=3), 400, "temperature"),
        (chat(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
        ({"messages": [{"role": "system", "content": "hi"}]}, 400, "no user message"),
        ({"messages": []}, 400, "non-empty"),
        ([1, 2], 400, "JSON object"),
        (chat(response_format={"type": "yaml"}), 400, "response_format.type"),
        (chat(response_format={"type": "json_schema", "json_schema": {"schema": {"type": "x"}}}),
         400, "not a JSON Schema type"),
        (chat(response_format={"type": "json_schema",
                               "json_schema": {"schema": {"$ref": "https://x.test/s.json"}}}),
         400, "only refs inside the schema"),
        (chat(variables=["a"]), 400, "variables"),
        (chat(content=[{"type": "image_url", "image_url": {"url": "x"}}]), 400, "text parts"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_clear_4xx(served, body, status, needle) -> None:
    url, _ = served
    got, _, reply = call(f"{url}/v1/chat/completions", body)
    assert got == status, reply
    assert needle in reply["error"]["message"]
    assert reply["error"]["type"] == "invalid_request_error"


def test_missing_template_variable_is_a_400() -> None:
    cfg = config(prompt=config()["prompt"] | {"template": "{{ question }} for {{ customer }}"})
    with Uvicorn(ServedModel(cfg, Recording()).asgi()) as server:
        status, _, body = call(f"{server.url}/v1/chat/completions", chat())
    assert status == 400 and "customer" in body["error"]["message"]


def test_bodies_not_json_too_large_or_to_unknown_paths(served) -> None:
    url, _ = served
    status, _, body = call(f"{url}/v1/chat/completions", raw=b"{not json")
    assert status == 400 and "not JSON" in body["error"]["message"]
    status, _, body = call(f"{url}/v1/chat/completions", raw=b"x" * 5000)
    assert status == 413 and "4,096 bytes" in body["error"]["message"]
    status, _, body = call(f"{url}/v1/chat/completions", method="GET")
    assert status == 405
    status, _, body = call(f"{url}/v2/anything")
    assert status == 404 and "no such endpoint" in body["error"]["message"]


def test_api_key_is_checked_against_its_digest() -> None:
    model = ServedModel(config(auth=key_digest("s3cret")), Recording())
    with Uvicorn(model.asgi()) as server:
        assert call(f"{server.url}/v1/models")[0] == 401
        bad = {"Authorization": "Bearer nope"}
        assert call(f"{server.url}/v1/chat/completions", chat(), headers=bad)[0] == 401
        good = {"Authorization": "Bearer s3cret"}
        assert call(f"{server.url}/v1/chat/completions", chat(), headers=good)[0] == 200
    assert "s3cret" not in json.dumps(model.config)


def test_concurrent_requests_are_batched_and_bounded() -> None:
    gate = threading.Event()
    provider = Recording(gate)
    model = ServedModel(config(limits={"max_tokens": 32, "max_body_bytes": 4096,
                                       "concurrency": 4}), provider)  # fmt: skip
    with Uvicorn(model.asgi()) as server, ThreadPoolExecutor(6) as pool:
        url = f"{server.url}/v1/chat/completions"
        first = pool.submit(call, url, chat("first"))
        deadline = time.monotonic() + 60
        while not provider.batches:  # the first batch holds the model
            assert not first.done(), first.result()
            assert time.monotonic() < deadline, "the first request never reached the model"
            threading.Event().wait(0.01)
        rest = [pool.submit(call, url, chat(f"q{i}")) for i in range(5)]
        statuses = []
        while len(statuses) < 2:  # over the limit of 4 in flight: answered at once
            assert time.monotonic() < deadline, "no request was refused while 4 were in flight"
            statuses = [f.result()[0] for f in rest if f.done()]
            threading.Event().wait(0.01)
        gate.set()
        results = [first.result()] + [f.result() for f in rest]
    codes = sorted(r[0] for r in results)
    assert codes == [200, 200, 200, 200, 429, 429], codes
    too_many = next(r for r in results if r[0] == 429)
    assert "in flight" in too_many[2]["error"]["message"]
    # the three that waited while the first batch ran were decoded together
    assert [len(b) for b in provider.batches] == [1, 3]
