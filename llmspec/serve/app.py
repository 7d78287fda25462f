"""The served app: a deployment's model and prompt behind an OpenAI-compatible API.

    POST {route}/v1/chat/completions   the last user message is the question
    POST {route}/v1/completions        `prompt` is the question
    GET  {route}/v1/models             the one model served, with its identity

The deployment's prompt is applied here, server-side: the question (and any `variables` the
request adds, an llmspec extension) fill its template; with `retrieve`, the top_k chunks of the
knowledge source nearest to the question fill `context`. The output is constrained to the
prompt's declared output token by token (transformers); a request's `response_format`
(`json_schema`, `json_object`) replaces that constraint, `text` keeps it. Every answer names
the deployment (`model`), its version (`system_fingerprint`, from the deploy job's key), and
the lock it was deployed from (`llmspec.lock`, and the `x-llmspec-lock` header).

Requests are bounded: the body (413), `max_tokens` (400 above the deployment's limit), the
requests in flight (429); a malformed request gets a 400 that says what is wrong, a wrong key
401, an unknown model 404, never a traceback. Concurrent requests are decoded together: a
batcher gathers what arrived while the model was busy into the next batch.

`ServedModel(config)` is plain Python (`await chat(body)` -> (status, payload)); `asgi()` wraps
it in a Starlette app, which a Serve replica (`deployment.py`) or uvicorn serves.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

QUESTION_KEYS = ("question", "query", "input")
MAX_SCHEMA_CHARS = 65_536  # a response_format schema larger than this is refused (400)
MAX_STOP = 4


class HttpError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str = ""):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.code = code or {
            400: "invalid_request",
            401: "invalid_api_key",
            404: "not_found",
            413: "request_too_large",
            429: "rate_limited",
        }.get(status, "error")

    def payload(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }


@dataclass(frozen=True)
class Call:
    """One parsed request: the template's variables and the decoding it asks for."""

    row: dict[str, Any]
    constraint: Any
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...]


@dataclass
class Answer:
    text: str
    finish: str
    tokens: int | None
    prompt_tokens: int | None
    guarantee: str
    valid: bool | None
    context: list[dict[str, Any]] | None
    error: str | None = None
    batch: int = 1  # requests decoded together with this one
    seconds: float = 0.0  # its own time in the model, from the start of its batch


def key_digest(key: str) -> str:
    """What a deployment keeps of its API key: the key itself never leaves the CLI."""
    return hashlib.sha256(key.encode()).hexdigest()


class ServedModel:
    """A deployment's model, prompt and retrieval, loaded once (see the module docstring)."""

    def __init__(self, config: dict[str, Any], provider: Any = None):
        from llmspec.jobs.generate import constraint_of

        self.config = config
        self.name: str = config["deployment"]
        self.key: str = config["key"]
        self.lock: str | None = config.get("lock")
        self.fingerprint = "llmspec-" + self.key.split(":")[-1][:16]
        limits = config["limits"]
        self.max_tokens: int = limits["max_tokens"]
        self.max_body: int = limits["max_body_bytes"]
        self.concurrency: int = limits["concurrency"]
        self.auth: str | None = config.get("auth")
        settings = config["model"]
        self.params = settings["params"]
        self.prompt = config["prompt"]
        self.declared = constraint_of({"prompt": self.prompt, "schema": config.get("schema")})
        loaded = provider is None  # not one handed in (a test's): warm it before traffic
        if provider is None:
            provider = self._load(settings, config)
        self.provider = provider
        self.retrieval = config.get("retrieval")
        self.embedder = None
        if self.retrieval is not None:
            from llmspec.jobs.index import load_embedder

            self.embedder = load_embedder(self.retrieval["embed"])
        from llmspec.serve.batcher import Batcher, torch_threads

        self.inflight = 0
        self.batcher = Batcher(self.run_batch, max(1, int(settings.get("batch_size", 16))))
        threads = config.get("threads")
        if threads:
            self.batcher.thread.submit(torch_threads, int(threads)).result()
        if config.get("warm", True) and loaded and not provider.capabilities.remote:
            self.batcher.thread.submit(self.warm).result()

    def warm(self) -> None:
        """Decode one short request before taking traffic: a fresh process's first batch
        costs several times a warm one (measured: 3.2 s, then 0.3 s, on the tiny model)."""
        row = {k: "warm-up" for k in QUESTION_KEYS}
        call = Call(row, self.declared, min(8, self.max_tokens), 0.0, 1.0, 0, ())
        self.run_batch([call])  # a template that needs more variables: it answers 400 later

    @staticmethod
    def _load(settings: dict[str, Any], config: dict[str, Any]) -> Any:
        from llmspec.providers import load_provider

        if config.get("verify", True) and settings.get("files") and settings.get("weights"):
            verify_weights(settings["weights"], settings["files"])
        return load_provider(settings)

    # -- identity ----------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        from llmspec.hashing import digest

        files = self.config["model"].get("files")
        return {
            "deployment": self.name,
            "model": self.config.get("model_name"),
            "weights": digest(files) if files else None,
            "prompt": digest(self.prompt),
            "key": self.key,
            "lock": self.lock,
            "guarantee": self.provider.capabilities.guarantee,
        }

    def headers(self) -> dict[str, str]:
        return {
            "x-llmspec-key": self.key,
            "x-llmspec-lock": self.lock or "",
            "x-llmspec-deployment": self.name,
        }

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "llmspec",
                    "llmspec": self.identity(),
                }
            ],
        }

    # -- requests ----------------------------------------------------------------------------

    def check_key(self, authorization: str | None) -> None:
        if self.auth is None:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not given or not hmac.compare_digest(key_digest(given), self.auth):
            raise HttpError(401, "missing or wrong API key (Authorization: Bearer KEY)")

    async def chat(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /v1/chat/completions on a parsed JSON body."""
        return await self._complete(body, chat=True)

    async def completion(self, body: Any) -> tuple[int, dict[str, Any]]:
        """POST /v1/completions on a parsed JSON body."""
        return await self._complete(body, chat=False)

    async def _complete(self, body: Any, chat: bool) -> tuple[int, dict[str, Any]]:
        try:
            call = self.parse(body, chat)
            if self.inflight >= self.concurrency:
                raise HttpError(
                    429,
                    f"too many requests in flight (this replica takes "
                    f"{self.concurrency}); retry later",
                )
            self.inflight += 1
            try:
                answer = await self.batcher.submit(call)
            finally:
                self.inflight -= 1
            if answer.error is not None:
                status = 400 if answer.error.startswith(("prompt is", "template")) else 500
                raise HttpError(status, answer.error)
        except HttpError as e:
            return e.status, e.payload()
        return 200, self.render(answer, chat)

    def parse(self, body: Any, chat: bool) -> Call:
        """A request body as a Call, or HttpError(400/404) saying what is wrong."""
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.name:
            raise HttpError(
                404,
                f"model `{model}` is not served here; this endpoint serves `{self.name}`",
                "model",
                "model_not_found",
            )
        for key, why in (
            ("stream", "streaming"),
            ("tools", "tools"),
            ("functions", "functions"),
            ("logprobs", "logprobs"),
        ):
            if body.get(key):
                raise HttpError(400, f"{why} is not supported by this endpoint", key)
        if body.get("n", 1) != 1:
            raise HttpError(400, "only n=1 is supported", "n")
        question = self._question(body) if chat else self._prompt(body)
        row = {k: question for k in QUESTION_KEYS}
        variables = body.get("variables")
        if variables is not None:
            if not isinstance(variables, dict) or not all(isinstance(k, str) for k in variables):
                raise HttpError(400, "`variables` must be an object of template variables")
            row |= variables
        limit = self.max_tokens
        asked = body.get("max_completion_tokens", body.get("max_tokens"))
        max_tokens = limit if asked is None else _int(asked, "max_tokens", 1, limit)
        temperature = _number(
            body.get("temperature"), "temperature", 0.0, 2.0, self.params["temperature"]
        )
        top_p = _number(body.get("top_p"), "top_p", 1e-9, 1.0, self.params["top_p"])
        seed = body.get("seed")
        seed = self.params["seed"] if seed is None else _int(seed, "seed", 0, 2**63 - 1)
        stop = body.get("stop")
        if stop is None:
            stops = tuple(self.params["stop"])
        elif isinstance(stop, str):
            stops = (stop,)
        elif (
            isinstance(stop, list)
            and len(stop) <= MAX_STOP
            and all(isinstance(s, str) for s in stop)
        ):
            stops = tuple(stop)
        else:
            raise HttpError(400, f"`stop` must be a string or a list of at most {MAX_STOP}", "stop")
        constraint = self._constraint(body.get("response_format"))
        return Call(row, constraint, max_tokens, temperature, top_p, seed, stops)

    def _question(self, body: dict[str, Any]) -> str:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HttpError(400, "`messages` must be a non-empty list", "messages")
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "user":
                return _text(m.get("content"))
        raise HttpError(400, "`messages` has no user message: it holds the question", "messages")

    def _prompt(self, body: dict[str, Any]) -> str:
        p = body.get("prompt")
        if isinstance(p, list) and len(p) == 1:
            p = p[0]
        if not isinstance(p, str):
            raise HttpError(400, "`prompt` must be a string (one prompt per request)", "prompt")
        return p

    def _constraint(self, fmt: Any) -> Any:
        from llmspec.constraints import Constraint

        if fmt is None:
            return self.declared
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "text":
            return self.declared
        if kind == "json_object":
            if self.declared is not None and self.declared.kind == "json_schema":
                return self.declared
            return Constraint("json_schema", {"type": "object"})
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise HttpError(
                    400, "response_format.json_schema.schema must be an object", "response_format"
                )
            if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
                raise HttpError(
                    400, f"the schema is over {MAX_SCHEMA_CHARS:,} characters", "response_format"
                )
            c = Constraint("json_schema", schema)
            why = _schema_problem(c)
            if why:
                raise HttpError(400, f"the schema cannot be enforced: {why}", "response_format")
            return c
        raise HttpError(
            400, "response_format.type must be text, json_object or json_schema", "response_format"
        )

    # -- generation --------------------------------------------------------------------------

    def run_batch(self, calls: list[Call]) -> list[Answer]:
        """Decode a batch of calls together (called on one thread at a time)."""
        from llmspec.jobs.generate import query_of, render_requests

        contexts: list[list[dict[str, Any]]] | None = None
        if self.retrieval is not None:
            from llmspec.jobs.index import retrieve

            index = {"chunks": self.retrieval["chunks"]}
            contexts = retrieve(
                index,
                self.retrieval["vectors"],
                [query_of(c.row) for c in calls],
                self.embedder,
                self.retrieval["top_k"],
            )
        texts = None if contexts is None else [[x["text"] for x in cs] for cs in contexts]
        # each call's constraint replaces the declared one below: render without it
        prompt = self.prompt | {"output": None}
        inputs = {"prompt": prompt, "model": {"params": self.params}, "schema": None}
        requests, slots = render_requests(inputs, [c.row for c in calls], texts, 0, 1)
        answers: list[Answer | None] = [None] * len(calls)
        for i, _rep, err in slots:
            if err is not None:
                answers[i] = Answer("", "error", None, None, "none", None, None, err)
        todo = [i for i, _r, err in slots if err is None]
        sent = [
            replace(
                r,
                constraint=calls[i].constraint,
                max_tokens=calls[i].max_tokens,
                temperature=calls[i].temperature,
                top_p=calls[i].top_p,
                seed=calls[i].seed,
                stop=calls[i].stop,
            )
            for i, r in zip(todo, requests, strict=True)
        ]
        results = self.provider.generate(sent) if sent else []
        for i, r in zip(todo, results, strict=True):
            c = calls[i].constraint
            valid = None
            if c is not None and r.finish != "error":
                valid = r.finish != "length" and c.check(r.text) is None
            ctx = None
            if contexts is not None:
                ctx = [{k: x[k] for k in ("id", "source", "score")} for x in contexts[i]]
            answers[i] = Answer(
                r.text,
                r.finish,
                r.tokens,
                r.prompt_tokens,
                r.guarantee,
                valid,
                ctx,
                r.error if r.finish == "error" else None,
                len(calls),
                round(r.seconds, 4),
            )
        return [a for a in answers if a is not None]

    def render(self, a: Answer, chat: bool) -> dict[str, Any]:
        usage = {
            "prompt_tokens": a.prompt_tokens or 0,
            "completion_tokens": a.tokens or 0,
            "total_tokens": (a.prompt_tokens or 0) + (a.tokens or 0),
        }
        finish = "length" if a.finish == "length" else "stop"
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": a.text},
                "finish_reason": finish,
                "logprobs": None,
            }
            obj, prefix = "chat.completion", "chatcmpl"
        else:
            choice = {"index": 0, "text": a.text, "finish_reason": finish, "logprobs": None}
            obj, prefix = "text_completion", "cmpl"
        extra = {
            "deployment": self.name,
            "key": self.key,
            "lock": self.lock,
            "guarantee": a.guarantee,
            "valid": a.valid,
            "batch": a.batch,
            "model_seconds": a.seconds,
        }
        if a.context is not None:
            extra["context"] = a.context
        return {
            "id": f"{prefix}-{uuid.uuid4().hex[:24]}",
            "object": obj,
            "created": int(time.time()),
            "model": self.name,
            "system_fingerprint": self.fingerprint,
            "choices": [choice],
            "usage": usage,
            "llmspec": extra,
        }

    # -- HTTP --------------------------------------------------------------------------------

    def asgi(self) -> Any:
        """The Starlette app serving this model (routes relative to the route prefix)."""
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        def reply(status: int, payload: dict[str, Any]) -> JSONResponse:
            return JSONResponse(payload, status_code=status, headers=self.headers())

        async def body_of(request: Request) -> Any:
            self.check_key(request.headers.get("authorization"))
            size = request.headers.get("content-length")
            if size is not None and (not size.isdigit() or int(size) > self.max_body):
                raise HttpError(413, f"the body is over {self.max_body:,} bytes")
            data, n = [], 0
            async for chunk in request.stream():
                n += len(chunk)
                if n > self.max_body:
                    raise HttpError(413, f"the body is over {self.max_body:,} bytes")
                data.append(chunk)
            try:
                return json.loads(b"".join(data))
            except (ValueError, UnicodeDecodeError) as e:
                raise HttpError(400, f"the body is not JSON: {e}") from None

        def endpoint(handler: Callable[[Any], Any]) -> Callable[[Request], Any]:
            async def run(request: Request) -> JSONResponse:
                try:
                    body = await body_of(request)
                except HttpError as e:
                    return reply(e.status, e.payload())
                status, payload = await handler(body)
                return reply(status, payload)

            return run

        async def models(request: Request) -> JSONResponse:
            try:
                self.check_key(request.headers.get("authorization"))
            except HttpError as e:
                return reply(e.status, e.payload())
            return reply(200, self.models())

        async def not_found(request: Request, exc: Exception) -> JSONResponse:
            status = getattr(exc, "status_code", 404)
            what = "method not allowed" if status == 405 else "no such endpoint"
            return reply(
                status,
                HttpError(
                    status, f"{what}: {request.method} {request.url.path}; see GET .../v1/models"
                ).payload(),
            )

        async def failed(request: Request, exc: Exception) -> JSONResponse:
            e = HttpError(500, f"internal error: {type(exc).__name__}: {exc}")
            return reply(500, e.payload())

        routes = [
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/chat/completions", endpoint(self.chat), methods=["POST"]),
            Route("/v1/completions", endpoint(self.completion), methods=["POST"]),
        ]
        handlers = {404: not_found, 405: not_found, Exception: failed}
        return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


def verify_weights(path: str, files: dict[str, str]) -> None:
    """Refuse to serve weights other than the ones that passed the suites."""
    from pathlib import Path

    from llmspec.hashing import HashCache, tree_digests

    p = Path(path)
    if p.is_file():
        found = {p.name: HashCache(None).file(p)}
    else:
        found = {k: v for k, v in tree_digests(p, HashCache(None)).items() if not k.startswith(".")}
    if found != files:
        moved = sorted(k for k in set(found) | set(files) if found.get(k) != files.get(k))
        raise RuntimeError(
            f"the weights at {path} are not the ones that passed the suites "
            f"({', '.join(moved[:3])}{' ...' if len(moved) > 3 else ''} differ)"
        )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only text parts are read
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if parts and all(isinstance(t, str) for t in parts):
            return "".join(parts)
    raise HttpError(400, "a message's content must be a string or text parts", "messages")


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        limit = f"; this deployment's limit is {hi}" if name == "max_tokens" else ""
        raise HttpError(400, f"`{name}` must be an integer from {lo} to {hi}{limit}", name)
    return value


def _number(value: Any, name: str, lo: float, hi: float, default: float) -> float:
    if value is None:
        return float(default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise HttpError(400, f"`{name}` must be a number from {lo:g} to {hi:g}", name)
    return float(value)


def _schema_problem(c: Any) -> str | None:
    from llmspec.jsonschemas import check_schema, refs

    outside = sorted({ref for _, ref in refs(c.value) if not ref.startswith("#")})
    if outside:
        return f"`$ref` to `{outside[0]}`: only refs inside the schema (#/...) are read"
    errors = check_schema(c.value)
    if errors:
        path, message = errors[0]
        return f"{message} (at /{'/'.join(map(str, path))})" if path else message
    return c.enforceable()
