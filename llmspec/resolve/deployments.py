"""Deployments: what they ship, what must pass first, and their target's own checks; and the
drift probes of remote models (their canary datasets)."""

from __future__ import annotations

import importlib
from typing import Any


def check_deployments(c: Any) -> None:
    from llmspec.targets import TARGETS

    places: dict[tuple, str] = {}
    hosts: dict[tuple, tuple[str, str]] = {}
    for name, dep in c.p.deployments.items():
        base = ("deployments", name)
        c.ref("models", dep.model, base + ("model",))
        c.ref("prompts", dep.prompt, base + ("prompt",))
        if dep.retrieve is not None:
            c.ref("knowledge", dep.retrieve, base + ("retrieve",))
        for i, s in enumerate(dep.requires):
            c.ref("suites", s, base + ("requires", i))
        for i, s in enumerate(dep.after):
            c.ref("deployments", s, base + ("after", i))
        if dep.target is None:
            continue
        check = TARGETS[dep.target.kind].check
        if check:
            module, _, attr = check.partition(":")
            getattr(importlib.import_module(module), attr)(c, name, dep.target)
        if dep.target.kind == "ray_serve":
            _check_place(c, name, dep.target, places, hosts)


def _check_place(c: Any, name: str, t: Any, places: dict, hosts: dict) -> None:
    """Serve listens on one host and port per Ray and routes by prefix: two deployments on
    one port need distinct routes and the same host."""
    path = ("deployments", name, "target")
    where = (t.runner, t.port, t.route.rstrip("/") or "/")
    if where in places:
        c.error(
            "E101",
            f"deployments `{places[where]}` and `{name}` are both at port {t.port} "
            f"route `{t.route}`",
            path + ("route",),
            "give each deployment its own `route` (or `port`)",
        )
    places.setdefault(where, name)
    other = hosts.setdefault((t.runner, t.port), (t.host, name))
    if other[0] != t.host:
        c.error(
            "E101",
            f"deployment `{name}` listens on {t.host}:{t.port}, but `{other[1]}` "
            f"on {other[0]}:{t.port}: Ray Serve listens on one address per port",
            path + ("host",),
            "use one `host` per port",
        )


def check_drift(c: Any) -> None:
    """A model's canaries are a declared dataset read from a file."""
    for name, m in c.p.models.items():
        drift = getattr(m, "drift", None)
        if drift is None or drift.canaries is None:
            continue
        path = ("models", name, "drift", "canaries")
        if c.ref("datasets", drift.canaries, path) and c.p.datasets[drift.canaries].path is None:
            c.error(
                "E102",
                f"the canaries of model `{name}` must be a dataset read from a "
                f"file; `{drift.canaries}` is generated",
                path,
                "canary prompts stay the same from probe to probe: write them to a file",
            )
