"""`python -m llmspec.serve.ctl OP`: deploy or delete Serve applications on a Ray head.

The CLI runs this as a short-lived process of its own (an apply may have its own Ray
initialised; one process connects to one Ray), with the request as JSON on stdin:

    {"address": "127.0.0.1:6390", "http": {"host": "127.0.0.1", "port": 8765},
     "apps": [{"name": ..., "route": "/support", "config": {...}}], "timeout_s": 600}

`ship` starts Serve (listening on `http`) if it is not running, deploys or updates each app and
waits until every one is RUNNING, or failed, or `timeout_s` passed. `delete` deletes apps by
name. The last line of stdout is the answer: `{"ok": true, ...}` or `{"ok": false, "error"}`.
Ray's own log lines go to stderr, which the CLI shows only when something went wrong.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


def connect(address: str) -> None:
    import ray

    logging.getLogger("ray").setLevel(logging.ERROR)
    ray.init(address=address, namespace="llmspec", log_to_driver=False, logging_level="ERROR")


def ship(req: dict[str, Any]) -> dict[str, Any]:
    from ray import serve
    from ray.serve.api import RunTarget
    from ray.serve.context import _get_global_client

    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    want = req["http"]
    serve.start(
        http_options={
            "host": want["host"],
            "port": want["port"],
            "request_timeout_s": want.get("request_timeout_s", 600),
        }
    )
    have = _get_global_client().http_config
    if (have.host, have.port) != (want["host"], want["port"]):
        return {
            "ok": False,
            "error": f"Serve on this Ray listens on {have.host}:{have.port}, "
            f"not {want['host']}:{want['port']}",
        }
    from llmspec.serve.deployment import Server, options

    targets = [
        RunTarget(
            target=Server.options(**options(app["config"]["target"])).bind(app["config"]),
            name=app["name"],
            route_prefix=app["route"],
        )
        for app in req["apps"]
    ]
    serve.run_many(targets, wait_for_applications_running=False)
    deadline = time.monotonic() + float(req.get("timeout_s", 600))
    names = [app["name"] for app in req["apps"]]
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        apps = serve.status().applications
        states = {n: apps[n].status.value if n in apps else "MISSING" for n in names}
        failed = {n: apps[n].message for n in names if states[n] in ("DEPLOY_FAILED", "UNHEALTHY")}
        if failed:
            return {
                "ok": False,
                "error": "; ".join(f"{n}: {_short(m)}" for n, m in failed.items()),
                "states": states,
            }
        if all(s == "RUNNING" for s in states.values()):
            return {"ok": True, "states": states}
        time.sleep(0.25)
    return {
        "ok": False,
        "error": f"not running after {req.get('timeout_s')} s: {states}",
        "states": states,
    }


def delete(req: dict[str, Any]) -> dict[str, Any]:
    from ray import serve

    present = set(serve.status().applications)
    gone = []
    for name in req["apps"]:
        if name in present:
            serve.delete(name)
            gone.append(name)
    left = sorted(set(serve.status().applications) - set(gone))
    return {"ok": True, "deleted": gone, "left": left}


def _short(message: str, limit: int = 600) -> str:
    """The end of Serve's message: where a replica's constructor failed, its error is last."""
    message = " ".join((message or "").split())
    return message if len(message) <= limit else "..." + message[-limit:]


def main(argv: list[str]) -> int:
    op = argv[1] if len(argv) > 1 else ""
    req = json.loads(sys.stdin.read())
    fn = {"ship": ship, "delete": delete}.get(op)
    try:
        if fn is None:
            raise ValueError(f"unknown operation `{op}`")
        connect(req["address"])
        answer = fn(req)
    except Exception as e:  # noqa: BLE001 - the CLI shows the message, never a traceback
        answer = {"ok": False, "error": f"{type(e).__name__}: {_short(str(e))}"}
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    sys.stdout.flush()
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
