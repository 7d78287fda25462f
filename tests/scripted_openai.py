"""A scripted OpenAI-compatible server on 127.0.0.1 for tests of quality paths (judges, test-set
generation, drift): it answers `POST /v1/chat/completions` with JSON that satisfies the
request's `response_format` schema, built from the text it is sent, so a test can tell what the
"model" saw. Deterministic, threaded, stopped by the test.

    with ScriptedOpenAI() as server:
        ...  # a model spec with base_url: server.url
        assert server.calls
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def instance(schema: Any, text: str, path: str = "") -> Any:
    """A value valid for the (simple) `schema`, derived from `text`: strings quote a piece of
    it, integers and enums pick by its hash, so different prompts get different answers."""
    if not isinstance(schema, dict):
        return None
    h = int(hashlib.sha256((text + path).encode()).hexdigest(), 16)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][h % len(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return instance(schema[key][0], text, path)
    t = schema.get("type")
    if isinstance(t, list):
        t = t[0]
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        keys = list(props)
        return {k: instance(props[k], text, f"{path}/{k}") for k in keys}
    if t == "array":
        n = max(schema.get("minItems", 1), 1)
        return [instance(schema.get("items", {}), text, f"{path}/{i}") for i in range(n)]
    if t == "integer":
        lo, hi = schema.get("minimum", 0), schema.get("maximum", 100)
        return lo + h % (hi - lo + 1)
    if t == "number":
        return float(schema.get("minimum", 0))
    if t == "boolean":
        return bool(h % 2)
    if t == "string":
        words = text.split()
        start = h % max(len(words), 1)
        value = " ".join(words[start : start + 6]) or "ok"
        lo, hi = schema.get("minLength", 0), schema.get("maxLength", 10_000)
        value = value[:hi]
        return value + "x" * max(0, lo - len(value))
    return None


class ScriptedOpenAI:
    """The server. `answer(body)` may return the message content (str, or a value that is sent
    as JSON) to override the schema-built answer; `fingerprint` and `model_id` are what it
    reports (a drift test changes them). `calls` holds the requests it answered, except the
    minimal drift probes every apply sends first (`llmspec.jobs.drift.PROBE`), kept in
    `probes`."""

    def __init__(self, answer: Callable[[dict], Any] | None = None):
        self.answer = answer
        self.calls: list[dict[str, Any]] = []
        self.probes: list[dict[str, Any]] = []
        self.fingerprint = "fp-1"
        self.model_id = "scripted-1"
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = outer._reply(body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from llmspec.jobs.drift import PROBE

        messages = body.get("messages") or [{}]
        with self._lock:
            (self.probes if messages[-1].get("content") == PROBE else self.calls).append(body)
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        content: Any = None
        if self.answer is not None:
            content = self.answer(body)
        if content is None:
            fmt = body.get("response_format") or {}
            schema = (fmt.get("json_schema") or {}).get("schema")
            content = instance(schema, text) if schema else text[-200:]
        if not isinstance(content, str):
            content = json.dumps(content)
        return 200, {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "model": self.model_id,
            "system_fingerprint": self.fingerprint,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 8},
        }

    def __enter__(self) -> ScriptedOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class RagScript:
    """An `answer` for `ScriptedOpenAI` that plays two models of a RAG project, by model id:

    - `writer` writes test-set items as a capable model would (llmspec's testgen prompts):
      per kind a question about words of Text 1 (and Text 2), the answer quoted from the
      texts; `bad` maps a slot to a flaw (`blank`, `one_word`, `unsupported`, `duplicate`) so
      a test sees each quality filter at work. The slot is read from the request's seed.
    - any other model answers a question from the first chunk of its context (its first
      sentence), and declines questions about a phone number (the out-of-scope kind here).

    Judge requests get None: the schema-built verdict."""

    def __init__(self, bad: dict[int, str] | None = None, writer: str = "writer"):
        self.bad = dict(bad or {})
        self.writer = writer
        self.items: list[dict[str, Any]] = []  # (slot, kind) of each item asked for

    def __call__(self, body: dict[str, Any]) -> Any:
        messages = body.get("messages", [])
        system = str(messages[0].get("content", "")) if messages else ""
        user = str(messages[-1].get("content", "")) if messages else ""
        if system.startswith("You are a strict, fair grader"):
            return None
        from llmspec.jobs.drift import PROBE

        if user == PROBE:  # the minimal drift probe every apply sends a remote model first
            return "OK"
        if body.get("model") == self.writer:
            return self._item(body, user)
        return self._answer(user)

    def _item(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        import re

        from llmspec.testsets import INSTRUCTIONS

        kind = next(k for k, text in INSTRUCTIONS.items() if user.startswith(text))
        slot = int(body.get("seed", 0)) % 100_003
        self.items.append({"slot": slot, "kind": kind})
        texts = re.findall(r"Text \d+: (.*?)(?=\n\nText \d+: |\n\nJSON:)", user, re.S)
        topics = [_topic(t, slot) for t in texts]
        answers = [_first_sentence(t) for t in texts]
        question = {
            "simple": f"What does the documentation say about {topics[0]}?",
            "complex": f"Could you explain the matter of {topics[0]} to me?",
            "situational": f"I ordered last week and I am worried. What about {topics[0]}?",
            "distracting": f"Thinking of {topics[-1]}, what about {topics[0]}?",
            "double": f"What about {topics[0]}, and what about {topics[-1]}?",
            "multi_hop": f"How do {topics[0]} and {topics[-1]} relate?",
            "out_of_scope": f"What is the phone number of the team for {topics[0]}?",
        }[kind]
        answer = answers[0] if kind not in ("double", "multi_hop") else " ".join(answers)
        flaw = self.bad.get(slot)
        if flaw == "blank":
            question = "?"
        elif flaw == "one_word":
            question = "Refunds?"
        elif flaw == "duplicate":
            question = "Which of these questions is asked twice in this set?"
        elif flaw == "unsupported":
            answer = "Bananas are yellow and grow in bunches."
        return {"question": question} if kind == "out_of_scope" else {
            "question": question, "answer": answer}  # fmt: skip

    def _answer(self, user: str) -> dict[str, Any]:
        if "phone number" in user:
            return {"answer": "I don't know: the documents do not say."}
        context = user.split("Context:\n", 1)[-1].split("\nQuestion:", 1)[0]
        chunks = [c for c in ("\n" + context).split("\n- ") if c.strip()]
        return {"answer": _first_sentence(chunks[0]) if chunks else "No context."}


def _first_sentence(text: str) -> str:
    import re

    body = " ".join(line for line in text.splitlines() if not line.startswith("#"))
    parts = re.split(r"(?<=[.!?])\s+", body.strip())
    return parts[0] if parts else body


def _topic(text: str, slot: int) -> str:
    import re

    words = [w for w in re.findall(r"[A-Za-z]+", text) if len(w) > 3]
    if not words:
        return "this"
    start = (slot * 2) % max(1, len(words) - 3)
    return " ".join(words[start : start + 4]).lower()
