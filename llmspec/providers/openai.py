"""The `openai` provider: any OpenAI-compatible chat completions server (vLLM, llama.cpp server,
Ollama, OpenAI) over HTTP with aiohttp.

- One POST to `{base_url}/chat/completions` per request, through the proxy HTTP(S)_PROXY names
  unless NO_PROXY lists the host (a server on this machine is always reached directly). The
  output limit goes as `max_tokens` (vLLM, llama.cpp's server, Ollama), or as
  `max_completion_tokens` for servers that refuse the first (newer OpenAI models): with
  `max_tokens_param: auto`, the default, the first refusal switches the name and the request is
  sent again at once. A `json_schema` constraint is sent as
  `response_format: {"type": "json_schema", ...}`, never as vLLM's old top-level `guided_json`
  (current vLLM ignores that key and answers unconstrained with HTTP 200). Regex and choice
  constraints are not part of the OpenAI API: such a row fails, it is never sent unconstrained.
- `generate` runs its own asyncio loop and its own session, both closed before it returns, so it
  works from a plain thread, a Ray actor, or under a running loop (then on a helper thread).
- The retry policy lives here: at most `1 + max_retries` attempts per request, exponential
  backoff with full jitter, `Retry-After` honoured on 429 and 503 (and shared: every request of
  the call waits it out). 408, 429, 500, 502, 503, 504, connection errors, timeouts and an HTTP
  200 whose body is not a chat completion are retried; any other status fails the row at once.
- The API key is read from the environment at call time, sent only in the Authorization header,
  and replaced by `***` in anything that comes back from the server or a library (texts, error
  messages, log lines). It is never stored on the provider.
- A circuit breaker per provider: after `circuit_breaker` consecutive failed attempts
  (connection errors, timeouts, 5xx, broken bodies; not 429, which is a live server asking to
  slow down, nor a 4xx refusal) with no success between them, the server is taken for down and
  every request of the call still waiting or retrying fails at once ("circuit open"). The next
  call sends its first request alone, one attempt, as a probe: a success closes the circuit, a
  failure fails that call's rows at once. Any success closes it.
- A row that fails is a `Result` with finish="error" and empty text; the other rows of the batch
  are unaffected. Nothing is cached here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from llmspec.jsonschemas import refs_with_base, resolves_inside
from llmspec.providers import CAPABILITIES, Request, Result
from llmspec.secrets import ENV_REF

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt; every other non-2xx status fails the row at once."""
HONOURS_RETRY_AFTER = frozenset({429, 503})
MESSAGE_CHARS = 200
"""How much of a server's error message a Result keeps."""
MASK = "***"


class _ConfigError(Exception):
    """The call cannot be made at all (missing variable, bad URL): every row fails with this."""


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix."""

    def __init__(self, message: str, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.rate_limited = rate_limited  # 429: the server is up, asking to slow down


class _Fail(Exception):
    """An attempt failed in a way no other attempt will fix."""


class _CircuitOpen(_Fail):
    """The server failed too many attempts in a row: no more are made."""


class _TokenParam(_Fail):
    """The server takes the output limit as `max_completion_tokens`, not `max_tokens` (newer
    OpenAI models answer HTTP 400 `unsupported_parameter`)."""


@dataclass
class Breaker:
    """Consecutive failed attempts against one server; open at `threshold` (0: never)."""

    threshold: int
    failures: int = 0
    last: str = ""

    @property
    def open(self) -> bool:
        return self.threshold > 0 and self.failures >= self.threshold

    def success(self) -> None:
        self.failures = 0

    def failure(self, why: str) -> None:
        self.failures += 1
        self.last = why

    def refusal(self) -> _CircuitOpen:
        return _CircuitOpen(
            f"circuit open: {self.failures} attempts in a row failed (last: {self.last}); the "
            "server looks down, so no more requests are sent in this call"
        )


@dataclass
class _Call:
    """What one `generate` call shares between its requests."""

    url: str
    headers: dict[str, str]
    secret: str | None
    semaphore: asyncio.Semaphore
    pause_until: float = 0.0  # loop time before which no attempt starts (from Retry-After)
    proxy: str | None = None  # from HTTP(S)_PROXY, unless NO_PROXY or a loopback host

    def scrub(self, text: str) -> str:
        return _scrub(text, self.secret)


class OpenAIProvider:
    """Chat completions on an OpenAI-compatible server; see the module docstring."""

    capabilities = CAPABILITIES["openai"]

    def __init__(
        self,
        spec: Any,
        weights: Any = None,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 20.0,
        retry_after_cap: float = 60.0,
    ):
        self.spec = spec
        mode = getattr(spec, "max_tokens_param", "auto")
        self.token_param = "max_tokens" if mode == "auto" else mode
        self.switch_token_param = mode == "auto"
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_after_cap = retry_after_cap
        self.breaker = Breaker(spec.circuit_breaker)

    def __repr__(self) -> str:
        return f"OpenAIProvider(model={self.spec.model!r}, base_url={self.spec.base_url!r})"

    # -- entry point -----------------------------------------------------------------------

    def generate(self, requests: list[Request]) -> list[Result]:
        """One Result per request, in request order; never raises for a failed request."""
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._generate(requests))
        # Called under a running loop (an async actor, a notebook): a blocking call must not
        # start a second loop on this thread, so the work gets a thread of its own.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="llmspec-openai") as pool:
            return pool.submit(lambda: asyncio.run(self._generate(requests))).result()

    async def _generate(self, requests: list[Request]) -> list[Result]:
        import aiohttp

        try:
            url = self._url()
            headers, secret = self._auth()
        except _ConfigError as e:
            return [_error(r, str(e), 0.0) for r in requests]
        call = _Call(url, headers, secret, asyncio.Semaphore(self.spec.concurrency))
        call.proxy = proxy_for(url)
        connector = aiohttp.TCPConnector(limit=self.spec.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.spec.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            first: list[Result] = []
            if self.breaker.open:  # down at the last call: one probe before the rest
                first = [await self._one(session, call, requests[0], probe=True)]
                if self.breaker.open:
                    why = str(self.breaker.refusal())
                    return first + [_error(r, call.scrub(why), 0.0) for r in requests[1:]]
                requests = requests[1:]
            rest = await asyncio.gather(*(self._one(session, call, r) for r in requests))
            return first + list(rest)

    # -- configuration, read at call time -------------------------------------------------

    def _url(self) -> str:
        def env(m: Any) -> str:
            value = os.environ.get(m.group(1))
            if not value:
                raise _ConfigError(
                    f"environment variable `{m.group(1)}` is not set "
                    f"(base_url of openai model `{self.spec.model}`)"
                )
            return value

        raw = self.spec.base_url
        base = ENV_REF.sub(env, raw).strip()
        if not base.startswith(("http://", "https://")):
            shown = raw if "${" in raw else base[:40]
            raise _ConfigError(f"base_url `{shown}` must start with http:// or https://")
        return base.rstrip("/") + "/chat/completions"

    def _auth(self) -> tuple[dict[str, str], str | None]:
        ref = self.spec.api_key
        if ref is None:
            return {}, None
        m = ENV_REF.fullmatch(ref.strip())
        if m is None:
            # compile refuses this (E051); the value is never echoed, it may be a key
            raise _ConfigError(
                f"api_key of openai model `{self.spec.model}` must be a reference like "
                "`${env:OPENAI_API_KEY}`; a literal key is never used"
            )
        key = os.environ.get(m.group(1))
        if not key:
            raise _ConfigError(
                f"environment variable `{m.group(1)}` is not set "
                f"(api_key of openai model `{self.spec.model}`)"
            )
        return {"Authorization": f"Bearer {key}"}, key

    # -- one request -------------------------------------------------------------------------

    def _body(self, r: Request) -> dict[str, Any]:
        """The JSON body sent for a request (raises `_Fail` for a constraint it cannot send)."""
        messages = []
        if r.system is not None:
            messages.append({"role": "system", "content": r.system})
        messages.append({"role": "user", "content": r.prompt})
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": messages,
            self.token_param: r.max_tokens,
            "temperature": r.temperature,
            "top_p": r.top_p,
            "seed": r.seed,
        }
        if r.stop:
            body["stop"] = list(r.stop)
        c = r.constraint
        if c is not None:
            if c.kind != "json_schema":
                raise _Fail(
                    f"the openai provider cannot enforce a {c.kind} constraint: OpenAI-compatible "
                    "servers take only a JSON schema (response_format); use a JSON schema, or a "
                    "transformers/llamacpp model"
                )
            # best_effort: send the part the schema engine can enforce; the rest is checked
            schema = c.enforced_schema()[0] if c.best_effort else c.value
            outside = sorted(
                {ref for _, ref, base in refs_with_base(schema)
                 if not ref.startswith("#") and not resolves_inside(schema, ref, base)}
            )  # fmt: skip
            if outside:
                raise _Fail(
                    f"the JSON schema refers to {', '.join(f'`{x}`' for x in outside)}: a server "
                    "cannot resolve `$ref`s to files; bundle them into `$defs` of the schema"
                )
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True},
            }
        return body

    async def _one(self, session: Any, call: _Call, r: Request, probe: bool = False) -> Result:
        try:
            return await self._attempts(session, call, r, probe)
        except Exception as e:  # a bug must not take the other rows of the batch with it
            return _error(r, call.scrub(f"{type(e).__name__}: {e}"), 0.0)

    async def _attempts(self, session: Any, call: _Call, r: Request, probe: bool) -> Result:
        try:
            body = self._body(r)
        except _Fail as e:
            return _error(r, call.scrub(str(e)), 0.0)
        loop = asyncio.get_running_loop()
        attempts = 1 if probe else self.spec.max_retries + 1
        breaker = self.breaker
        seconds = 0.0
        attempt = 0
        while True:
            async with call.semaphore:
                # checked once a slot is held: a pause may have begun while this one queued
                while (wait := call.pause_until - loop.time()) > 0:
                    await asyncio.sleep(wait)
                if self.token_param not in body:  # another request found the server's name
                    body = self._body(r)
                if breaker.open and not probe:
                    return _error(r, call.scrub(str(breaker.refusal())), seconds)
                t0 = time.perf_counter()
                try:
                    data = await self._post(session, call, body)
                    problem: Exception | None = None
                except (_Retry, _Fail) as e:
                    problem = e
                seconds = time.perf_counter() - t0
            if problem is None:
                try:
                    result = self._result(r, call, data, seconds)
                    breaker.success()
                    return result
                except (_Retry, _Fail) as e:
                    problem = e
            if isinstance(problem, _Retry) and not problem.rate_limited:
                breaker.failure(call.scrub(str(problem)))
            elif isinstance(problem, _Fail):
                breaker.success()  # the server is up: it answered, and said no
            if isinstance(problem, _TokenParam) and "max_tokens" in body:
                if self.switch_token_param:  # ask again at once, with the name it asked for
                    self.token_param = "max_completion_tokens"
                    log.info("openai model %s takes max_completion_tokens", self.spec.model)
                    body = self._body(r)
                    continue
                problem = _Fail(
                    f"{problem}; set `max_tokens_param: max_completion_tokens` (or `auto`) "
                    f"on openai model `{self.spec.model}`"
                )
            if isinstance(problem, _Fail):
                return _error(r, call.scrub(str(problem)), seconds)
            assert isinstance(problem, _Retry)
            if attempt + 1 == attempts:
                tries = f"{attempts} attempts" if attempts > 1 else "1 attempt, no retries"
                tries = "1 attempt, a probe of a server that looked down" if probe else tries
                return _error(r, call.scrub(f"{problem} (gave up after {tries})"), seconds)
            if breaker.open:
                return _error(r, call.scrub(str(breaker.refusal())), seconds)
            delay = self.delay(attempt, problem.retry_after)
            if problem.retry_after is not None:
                call.pause_until = max(call.pause_until, loop.time() + delay)
            log.info(
                "openai model %s: attempt %d/%d failed (%s); retrying in %.2f s",
                self.spec.model,
                attempt + 1,
                attempts,
                call.scrub(str(problem)),
                delay,
            )
            await asyncio.sleep(delay)
            attempt += 1

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1` (0-based `attempt` just failed)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        return random.uniform(0.0, min(self.backoff_cap, self.backoff_base * 2**attempt))

    async def _post(self, session: Any, call: _Call, body: dict[str, Any]) -> Any:
        import aiohttp

        try:
            post = session.post(call.url, json=body, headers=call.headers, proxy=call.proxy)
            async with post as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                raw = await resp.read()
        except TimeoutError:
            raise _Retry(f"no answer within timeout_s={self.spec.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as e:
            raise _Retry(call.scrub(f"connection failed: {type(e).__name__}: {e}")) from None
        if 200 <= status < 300:
            try:
                return json.loads(raw)
            except ValueError:
                raise _Retry(f"HTTP {status} with a body that is not JSON") from None
        message = call.scrub(_server_message(raw))
        text = f"HTTP {status} from the server" + (f": {message}" if message else "")
        if status in RETRYABLE:
            wait = parse_retry_after(retry_after) if status in HONOURS_RETRY_AFTER else None
            raise _Retry(text, wait, rate_limited=status == 429)
        if status == 400 and "max_completion_tokens" in message and "max_tokens" in body:
            raise _TokenParam(text)
        raise _Fail(text)

    def _result(self, r: Request, call: _Call, data: Any, seconds: float) -> Result:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Retry("HTTP 200 with a body that has no `choices`")
        choice = choices[0]
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            if isinstance(refusal, str) and refusal:
                raise _Fail(call.scrub(f"the model refused: {_short(refusal)}"))
            raise _Retry("HTTP 200 with a choice that has no message content")
        reason = choice.get("finish_reason")
        if reason == "content_filter":
            raise _Fail("stopped by the server's content filter")
        usage = data.get("usage")
        tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        observed = {}
        for key in ("model", "system_fingerprint"):
            value = data.get(key)
            if isinstance(value, str) and value:
                observed[key] = call.scrub(value)
        return Result(
            text=call.scrub(content),
            finish="length" if reason == "length" else "stop",
            guarantee=_guarantee(r),
            tokens=tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None,
            prompt_tokens=prompt_tokens
            if isinstance(prompt_tokens, int) and not isinstance(prompt_tokens, bool)
            else None,
            seconds=seconds,
            observed=observed or None,
        )


def proxy_for(url: str) -> str | None:
    """The proxy HTTP_PROXY / HTTPS_PROXY (or ALL_PROXY) name for `url`, unless NO_PROXY lists
    its host or the host is this machine: a server on 127.0.0.1 is reached directly whatever
    the environment says (a proxy elsewhere cannot reach it).

    >>> import os; os.environ["HTTP_PROXY"] = "http://proxy.internal:3128"
    >>> proxy_for("http://10.0.0.5:8000/v1/chat/completions"), proxy_for("http://127.0.0.1/v1")
    ('http://proxy.internal:3128', None)
    >>> del os.environ["HTTP_PROXY"]
    """
    import ipaddress
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass_environment(parts.netloc, proxies):
        return None
    return proxy


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP-date), or None.

    >>> parse_retry_after("0.2")
    0.2
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC))
    30.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(seconds, 0.0)


def _guarantee(r: Request) -> str:
    c = r.constraint
    return "provider" if c is not None and c.kind == "json_schema" else "none"


def _error(r: Request, message: str, seconds: float) -> Result:
    return Result("", "error", _guarantee(r), error=message, seconds=seconds)  # type: ignore[arg-type]


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, MASK) if secret else text


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def _server_message(raw: bytes) -> str:
    """The short message in an error body: OpenAI, vLLM, llama.cpp, Ollama and FastAPI shapes."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return _short(text)
    found: Any = data
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            found = err.get("message", err)
        elif isinstance(err, str):
            found = err
        elif "message" in data:
            found = data["message"]
        elif "detail" in data:
            found = data["detail"]
    if not isinstance(found, str):
        found = json.dumps(found, sort_keys=True)
    return _short(found)
