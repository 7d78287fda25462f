"""`target: {kind: ray_serve, route, port, host, replicas, ...}`: serve a deployment on Ray
Serve, OpenAI-compatible, and keep it running after apply.

By default it runs on a Ray head llmspec starts on this machine (`llmspec.serve.head`), one
per port, reused across applies and stopped when its last deployment is destroyed; with
`runner: NAME` on the Ray cluster of that runner profile (never stopped by llmspec; a
non-loopback address needs Ray token authentication unless the profile allows otherwise).
The deploy job assembles the release (`deploy` below: pure, no side effect); `ship` puts it in
place once apply has written the lock, so that every answer can name that lock; `live` and
`running` read the records under `.llmspec/serve/` for plan and `deploy status`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from llmspec.secrets import ENV_REF
from llmspec.targets import Live, Release


def check(c: Any, name: str, target: Any) -> None:
    from llmspec.runner.profile import _loopback

    base = ("deployments", name, "target")
    if target.api_key is not None and not ENV_REF.fullmatch(target.api_key):
        c.error(
            "E051",
            f"`api_key` of deployment `{name}` must be a `${{env:NAME}}` reference",
            base + ("api_key",),
            "never write a secret into a spec: set it in the environment and reference it",
        )
    if not _loopback(target.host) and target.api_key is None:
        c.error(
            "E100",
            f"deployment `{name}` listens on `{target.host}` without an API key",
            base + ("host",),
            "anyone who can reach that address could use the model: add `api_key: "
            "${env:NAME}`, or keep the default host 127.0.0.1",
        )


def url(settings: dict[str, Any]) -> str:
    host = settings["host"]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings['port']}{settings['route'].rstrip('/')}"


def deploy(manifest: dict[str, Any], settings: dict[str, Any], local: dict[str, Any]):
    """Inside the deploy job: where the release will run (it ships after the lock)."""
    return {"kind": "ray_serve", "url": url(settings) + "/v1", "app": manifest["deployment"]}, {}


# -- records -----------------------------------------------------------------------------------


def _live(root: Path, name: str, d: dict[str, Any], state: dict[str, Any], local: dict) -> Live:
    from llmspec.serve.app import key_digest
    from llmspec.serve.head import alive

    running, why = True, ""
    if d.get("head") is not None:
        head = state["heads"].get(d["head"])
        running = alive(head)
        if not running:
            pid = head.get("pid") if head else "?"
            why = f"its Ray head (pid {pid}) is gone"
    stale = None
    ref = local.get("api_key") if local else d.get("api_key")
    if (ref is None) != (d.get("auth") is None):
        stale = "its API key setting changed: it ships again"
    elif ref is not None:
        value = (
            os.environ.get(ENV_REF.fullmatch(ref).group(1), "") if ENV_REF.fullmatch(ref) else ""
        )
        if value and key_digest(value) != d.get("auth"):
            stale = f"the API key in {ref} changed: it ships again"
    return Live(name, d["key"], d["url"], d.get("lock"), running, why, stale)


def live(root: Path, name: str, local: dict[str, Any]) -> Live | None:
    from llmspec.serve.head import read_state

    state = read_state(root)
    d = state["deployments"].get(name)
    return None if d is None else _live(root, name, d, state, local)


def running(root: Path) -> dict[str, Live]:
    from llmspec.serve.head import read_state

    state = read_state(root)
    return {n: _live(root, n, d, state, {}) for n, d in sorted(state["deployments"].items())}


# -- shipping -----------------------------------------------------------------------------------


def config_for(root: Path, r: Release, lock_digest: str | None) -> dict[str, Any]:
    """What a replica is built from: the release, its model's files here, the index from the
    store, the lock it ships with, the digest of its API key."""
    from llmspec.jobs import JobError
    from llmspec.serve.app import key_digest
    from llmspec.store import Store

    rel = r.output["release"]
    local = r.local or r.meta.get("local", {})
    target = rel["target"]
    retrieval = None
    if rel.get("index"):
        s = Store(root).get(rel["index"])
        if s is None or "embeddings" not in s.meta:
            raise JobError(
                f"the index deployment `{r.name}` retrieves from is not in the store "
                "(.llmspec/): run `llmspec apply`"
            )
        retrieval = {
            "top_k": rel["retrieval"]["top_k"],
            "embed": local["embed"],
            "chunks": s.output["chunks"],
            "vectors": s.meta["embeddings"],
        }
    auth = None
    ref = local.get("api_key")
    if ref is not None:
        var = ENV_REF.fullmatch(ref).group(1)
        if not os.environ.get(var):
            raise JobError(f"environment variable `{var}` is not set (api_key of `{r.name}`)")
        auth = key_digest(os.environ[var])
    params = rel["model"]["params"]
    return {
        "deployment": r.name,
        "key": r.key,
        "lock": lock_digest,
        "model_name": rel["model_name"],
        "model": rel["model"] | local.get("model", {}),
        "prompt": rel["prompt"],
        "schema": rel.get("schema"),
        "retrieval": retrieval,
        "limits": {
            "max_tokens": target["max_tokens"] or params["max_tokens"],
            "max_body_bytes": target["max_body_bytes"],
            "concurrency": target["concurrency"],
        },
        "auth": auth,
        "threads": max(1, (os.cpu_count() or 1) // target["replicas"]),
        "target": target,
    }


def _place(root: Path, target: dict[str, Any]) -> tuple[str, dict[str, str], str | None]:
    """(address, client environment, runner name) of a cluster target."""
    from llmspec.runner.profile import (
        check_address,
        check_reachable,
        cluster_address,
        is_loopback,
        load_profile,
    )

    where = f"deployment target runner `{target['runner']}`"
    profile = load_profile(target["runner"], root)
    check_address(profile, where)
    address = cluster_address(profile, where) if not profile.embedded else ""
    if not address:
        from llmspec.jobs import JobError

        raise JobError(f"runner `{target['runner']}` is not a Ray cluster (address: local)")
    check_reachable(address, where)
    env = dict(os.environ)
    if is_loopback(address):
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    return address, env, target["runner"]


def ship(root: Path, releases: list[Release], lock_digest: str | None) -> dict[str, str | None]:
    """Deploy or update releases on Serve (their heads started when needed); per name, the
    error or None. The records are updated for what runs."""
    import datetime as dt

    from llmspec.errors import LlmspecError
    from llmspec.jobs import JobError
    from llmspec.serve import head as H

    state = H.read_state(root)
    errors: dict[str, str | None] = {}
    groups: dict[tuple, list[Release]] = {}
    for r in releases:
        t = r.output["release"]["target"]
        groups.setdefault((t["runner"], t["port"]), []).append(r)
    for (runner, port), group in groups.items():
        target = group[0].output["release"]["target"]
        names = [r.name for r in group]
        started = None
        try:
            configs = [config_for(root, r, lock_digest) for r in group]
            if runner is not None:
                address, env, _ = _place(root, target)
                head_id = None
            else:
                head_id = str(port)
                head = _own_head(root, state, head_id, target, names)
                if head is None:
                    head = started = H.start_head(root, port, target["host"])
                    state["heads"][head_id] = head
                    H.write_state(root, state)
                address, env = head["address"], H.head_env(root)
            req = {
                "address": address,
                "http": {"host": target["host"], "port": port},
                "apps": [
                    {"name": r.name, "route": r.output["release"]["target"]["route"], "config": c}
                    for r, c in zip(group, configs, strict=True)
                ],
                "timeout_s": max(_timeout(r) for r in group),
            }
            H.run_ctl("ship", req, env, req["timeout_s"] + 120)
        except (JobError, LlmspecError) as e:
            message = str(e) if isinstance(e, JobError) else e.diagnostics[0].message
            errors.update({n: message for n in names})
            if started is not None and not any(
                d.get("head") == str(port) for d in state["deployments"].values()
            ):
                H.stop_head(started)
                state["heads"].pop(str(port), None)
            continue
        now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
        for r, c in zip(group, configs, strict=True):
            before = state["deployments"].get(r.name)
            t = r.output["release"]["target"]
            state["deployments"][r.name] = {
                "key": r.key,
                "app": r.name,
                "url": url(t),
                "route": t["route"],
                "port": port,
                "host": t["host"],
                "lock": lock_digest,
                "head": head_id,
                "runner": runner,
                "auth": c["auth"],
                "since": now,
                "api_key": (r.local or r.meta.get("local", {})).get("api_key"),
            }
            errors[r.name] = None
            if before and (before.get("head"), before.get("runner")) != (head_id, runner):
                try:  # it moved: remove the old copy
                    _delete_at(root, state, r.name, before)
                except (JobError, LlmspecError) as e:
                    errors[r.name] = f"it runs at {url(t)}, but its old copy remains: {e}"
    _stop_idle(root, state)
    H.write_state(root, state)
    return errors


def _timeout(r: Release) -> float:
    local = r.local or r.meta.get("local", {})
    return float((local.get("target") or {}).get("timeout_s", 600))


def _own_head(root: Path, state: dict, head_id: str, target: dict, names: list[str]) -> Any:
    """The running head for a port, or None to start one; refuses a port in other use."""
    from llmspec.jobs import JobError
    from llmspec.serve import head as H

    head = state["heads"].get(head_id)
    if H.alive(head):
        if head["host"] == target["host"]:
            return head
        others = [
            n
            for n, d in state["deployments"].items()
            if d.get("head") == head_id and n not in names
        ]
        if others:
            raise JobError(
                f"port {head_id} serves {', '.join(others)} on {head['host']}; "
                f"destroy them first to listen on {target['host']}"
            )
        H.stop_head(head)
    state["heads"].pop(head_id, None)
    for n in [n for n, d in state["deployments"].items() if d.get("head") == head_id]:
        state["deployments"].pop(n)  # they ran on a head that is gone
    if H.listening(target["host"], int(head_id)):
        raise JobError(f"port {head_id} is in use by another program: choose another `port`")
    return None


def _delete_at(root: Path, state: dict, name: str, d: dict[str, Any]) -> None:
    from llmspec.serve import head as H

    if d.get("head") is not None:
        head = state["heads"].get(d["head"])
        still = [
            n for n, x in state["deployments"].items() if x.get("head") == d["head"] and n != name
        ]
        if H.alive(head) and still:  # the head stays: remove the app from it
            H.run_ctl(
                "delete", {"address": head["address"], "apps": [d["app"]]}, H.head_env(root), 300
            )
    else:
        address, env, _ = _place(root, {"runner": d["runner"]})
        H.run_ctl("delete", {"address": address, "apps": [d["app"]]}, env, 300)


def _stop_idle(root: Path, state: dict[str, Any]) -> None:
    """Stop the heads llmspec started that no deployment uses any more."""
    from llmspec.serve import head as H

    used = {d.get("head") for d in state["deployments"].values()}
    for head_id in [h for h in state["heads"] if h not in used]:
        H.stop_head(state["heads"].pop(head_id))


def destroy(root: Path, name: str) -> dict[str, Any] | None:
    """Remove a deployment (and the head it ran on, when nothing else runs there)."""
    from llmspec.serve import head as H

    state = H.read_state(root)
    d = state["deployments"].get(name)
    if d is None:
        return None
    state["deployments"].pop(name)
    try:
        _delete_at(root, state, name, d)
    except BaseException:
        state["deployments"][name] = d  # still running: keep its record
        raise
    finally:
        _stop_idle(root, state)
        H.write_state(root, state)
    return d


def serve_config(name: str, config: dict[str, Any], config_file: str) -> str:
    """The `serve deploy` config (YAML) of one deployment: its application reads `config_file`
    (copy it to the same path on the head node, or edit `args`)."""
    import io

    from ruamel.yaml import YAML

    from llmspec.serve.deployment_options import options

    t = config["target"]
    doc = {
        "proxy_location": "HeadOnly",
        "http_options": {"host": t["host"], "port": t["port"], "request_timeout_s": 600},
        "applications": [
            {
                "name": name,
                "route_prefix": t["route"],
                "import_path": "llmspec.serve.deployment:build",
                "args": {"config_file": config_file},
                "deployments": [{"name": "llmspec", **options(t)}],
            }
        ],
    }
    buf = io.StringIO()
    buf.write(
        f"# Ray Serve config of llmspec deployment `{name}` ({config['key']}).\n"
        "# The cluster needs llmspec installed, the weights at the path in the JSON\n"
        "# file (checked by digest when a replica starts) and that file on the head.\n"
    )
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(doc, buf)
    return buf.getvalue()
