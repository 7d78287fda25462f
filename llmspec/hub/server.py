"""The hub's web app: one static page and a JSON API over the run history.

Starlette routes on an in-process uvicorn server, bound to 127.0.0.1 unless `--host` says
otherwise. The page (`static/`: HTML, JS and CSS, no build step, nothing fetched from elsewhere)
draws its charts itself as inline SVG and reads everything from `/api/`:

    GET /api/info                          project, history file, llmspec version
    GET /api/runs                          every run, oldest first, with suite verdicts
    GET /api/runs/{id}                     one run: plan, results (without rows), jobs, counts
    GET /api/runs/{id}/rows?suite=S&variant=V&page=N&size=K&filter=all|failed|changed
                            &base=ID&with_base=1   one page of a suite's rows
    GET /api/runs/{id}/results             the whole results document (rows included)
    GET /api/runs/{id}/lock                the lock the run produced (text)
    GET /api/compare?a=ID&b=ID             metric deltas with paired intervals, gates, spec
                                           and lock diffs, changed rows per suite
    GET /api/series                        per suite and metric, each variant run after run
    GET /api/locks                         the lock versions and the runs that produced them

A request whose Host header is not the address served is refused (no DNS rebinding), and every
answer carries a content security policy that allows nothing but this server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from llmspec.errors import LlmspecError
from llmspec.hub import compare, history, queries

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK_NAMES = ("localhost",)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
COMPARE_CACHE = 64  # comparisons of finished runs kept in memory (they never change)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: refuse requests for another Host (a DNS-rebinding page would send its
    own name), and add security headers to every answer."""

    def __init__(self, app: Any, hosts: frozenset[str] | None):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.hosts is not None:
            host = _host_of(dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1"))
            if host not in self.hosts:
                await PlainTextResponse("unknown host", status_code=421)(scope, receive, send)
                return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers += [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store"),
                ]
                message = message | {"headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _host_of(header: str) -> str:
    """`[::1]:8765` -> `::1`; `localhost:8765` -> `localhost`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def make_app(root: Path, hosts: frozenset[str] | None = None) -> Any:
    """The hub for the project at `root`. `hosts`: the Host names accepted (None: any)."""
    root = Path(root)
    cache: dict[tuple[int, int], dict[str, Any]] = {}
    lock = threading.Lock()

    @contextlib.contextmanager
    def db() -> Iterator[Any]:
        conn = history.connect(root, readonly=True)
        try:
            yield conn
        finally:
            if conn is not None:
                conn.close()

    def answer(fn: Callable[[Any], Any], need: bool = True) -> Response:
        try:
            with db() as conn:
                if conn is None and need:
                    raise queries.no_history(str(history.history_path(root)))
                return JSONResponse(fn(conn))
        except LlmspecError as e:
            d = e.diagnostics[0]
            status = 404 if d.code == "E120" else 500
            return JSONResponse({"error": d.message, "code": d.code}, status_code=status)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    def ints(request: Request, *names: str) -> list[int | None]:
        out = []
        for n in names:
            raw = request.query_params.get(n)
            if raw in (None, ""):
                out.append(None)
                continue
            try:
                out.append(int(raw))
            except ValueError:
                raise ValueError(f"`{n}` must be a whole number") from None
        return out

    def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    def info(request: Request) -> Response:
        from llmspec import __version__

        def fn(conn: Any) -> dict[str, Any]:
            project = None
            if conn is not None:
                r = conn.execute("SELECT project FROM runs ORDER BY id DESC LIMIT 1").fetchone()
                project = r[0] if r else None
            return {
                "project": project,
                "root": str(root),
                "llmspec_version": __version__,
                "history": str(history.history_path(root)),
                "recorded": conn is not None,
                "page_size": queries.PAGE_SIZE,
            }

        return answer(fn, need=False)

    def runs(request: Request) -> Response:
        return answer(queries.list_runs, need=False)

    def run(request: Request) -> Response:
        return answer(lambda c: queries.get_run(c, request.path_params["run"]))

    def rows(request: Request) -> Response:
        def fn(conn: Any) -> dict[str, Any]:
            run_id = request.path_params["run"]
            page, size, base = ints(request, "page", "size", "base")
            suite = request.query_params.get("suite")
            if not suite:
                raise ValueError("`suite` is required")
            return queries.rows_page(
                conn,
                run_id,
                suite,
                variant=request.query_params.get("variant") or None,
                page=page or 1,
                size=size or queries.PAGE_SIZE,
                filter=request.query_params.get("filter") or "all",
                base=base,
                with_base=request.query_params.get("with_base") in ("1", "true"),
            )

        return answer(fn)

    def results(request: Request) -> Response:
        return answer(lambda c: queries.run_results(c, request.path_params["run"]))

    def lock_text(request: Request) -> Response:
        try:
            with db() as conn:
                if conn is None:
                    raise queries.no_history(str(history.history_path(root)))
                text = queries.lock_text(conn, request.path_params["run"])
        except LlmspecError as e:
            return JSONResponse({"error": e.diagnostics[0].message}, status_code=404)
        if text is None:
            return JSONResponse({"error": "this run recorded no lock"}, status_code=404)
        return PlainTextResponse(text, media_type="application/json; charset=utf-8")

    def compared(request: Request) -> Response:
        def fn(conn: Any) -> dict[str, Any]:
            a, b = ints(request, "a", "b")
            if a is None or b is None:
                raise ValueError("give two runs: /api/compare?a=ID&b=ID")
            with lock:
                if (a, b) in cache:
                    return cache[(a, b)]
            out = compare.compare_runs(conn, a, b)
            if "running" not in (out["a"]["status"], out["b"]["status"]):
                with lock:
                    if len(cache) >= COMPARE_CACHE:
                        cache.pop(next(iter(cache)))
                    cache[(a, b)] = out
            return out

        return answer(fn)

    def series(request: Request) -> Response:
        return answer(queries.series, need=False)

    def locks(request: Request) -> Response:
        return answer(queries.locks, need=False)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/runs", runs),
        Route("/api/runs/{run:int}", run),
        Route("/api/runs/{run:int}/rows", rows),
        Route("/api/runs/{run:int}/results", results),
        Route("/api/runs/{run:int}/lock", lock_text),
        Route("/api/compare", compared),
        Route("/api/series", series),
        Route("/api/locks", locks),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    return Guard(app, hosts)


def accepted_hosts(host: str) -> frozenset[str] | None:
    """The Host names a request may carry: this machine's loopback names when serving on
    loopback; any when serving on another address (whoever reaches it can name it)."""
    if not is_loopback(host):
        return None
    return frozenset({"127.0.0.1", "localhost", "::1", host.strip("[]").lower()})


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on (host, port); E123 when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        raise LlmspecError.one(
            "E123",
            f"cannot serve on {host}:{port}: {e.strerror or e}",
            hint="choose another port (`--port 0` picks a free one) or another `--host`",
        ) from None
    return sock


@dataclass
class Running:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def start(root: Path, host: str = "127.0.0.1", port: int = 0) -> Running:
    """Serve the hub in a background thread; `stop()` ends it."""
    import uvicorn

    with contextlib.suppress(LlmspecError):
        conn = history.connect(root, readonly=True)  # migrates an older history once, up front
        if conn is not None:
            conn.close()
    sock = bind(host, port)
    config = uvicorn.Config(
        make_app(root, accepted_hosts(host)),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=3,  # Ctrl-C ends requests still running (a page left open)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        sock.close()
        raise LlmspecError.one("E123", f"the hub did not start on {host}:{port}")
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return Running(f"http://{shown}:{bound[1]}/", server, thread)


def serve(
    root: Path, *, host: str, port: int, open_browser: bool, echo: Callable[..., None]
) -> None:
    """`llmspec view`: serve until Ctrl-C (or SIGTERM)."""
    # Handled here, before the address is printed: where SIGINT was ignored when the process
    # started (a background job of a non-interactive shell) Python installs no
    # KeyboardInterrupt of its own
    stop = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        running = start(root, host, port)
        try:
            if not history.history_path(root).exists():
                echo("note: no runs recorded yet; `llmspec apply` records each run", err=True)
            echo(f"llmspec hub: {running.url}  (Ctrl-C stops it)")
            if open_browser:
                _open(running.url, echo)
            while running.thread.is_alive() and not stop.is_set():
                stop.wait(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            running.stop()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def _open(url: str, echo: Callable[..., None]) -> None:
    """Open a browser where one can be shown; never fail, never take over the terminal with a
    text browser."""
    import webbrowser

    graphical = sys.platform in ("darwin", "win32") or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    if not graphical:
        return
    try:
        webbrowser.open(url)
    except Exception:  # a broken browser set-up must not stop the hub
        echo("note: could not open a browser; open the address above", err=True)
