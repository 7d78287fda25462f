"""Deployment targets: one record per `target.kind`, read by the deploy job kind.

A record names the function that ships a manifest (`deploy(manifest, settings, local)`), the
checks `resolve` runs on the target's settings, and, like every spec value, its settings enter
the deploy job's key except the output-neutral ones (secret references).

A target that keeps something running (`ray_serve`) has state besides the lock, and three more
hooks: `live` says, without importing anything heavy, what runs under a deployment's name on
this machine's record (plan compares it with the deploy job's key: a deployment that stopped
or runs another version shows as `*`); `ship` starts or updates it after apply has written the
lock (so a running deployment can name the lock it came from); `destroy` removes it (when it
leaves the spec, on `llmspec destroy`). The deploy job itself stays a pure function of its
inputs: it checks the gates and assembles the release that `ship` puts in place.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _call(ref: str, *args: Any) -> Any:
    module, _, attr = ref.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return fn(*args)


@dataclass(frozen=True)
class TargetRecord:
    kind: str
    deploy: str  # "module:function": (manifest, settings, local) -> (output, meta)
    check: str | None = None  # "module:function" run by resolve: check(checker, name, target)
    description: str = ""
    # Stateful targets only ("module:function" each):
    live: str | None = None  # (root, name, local) -> Live | None: what runs now, from records
    ship: str | None = None  # (root, releases, lock_digest) -> {name: error or None}
    destroy: str | None = None  # (root, name) -> what was removed (None: nothing ran)
    running: str | None = None  # (root) -> {name: Live}: every deployment on record

    def run(self, manifest: dict[str, Any], settings: dict[str, Any], local: dict[str, Any]):
        return _call(self.deploy, manifest, settings, local)


@dataclass(frozen=True)
class Live:
    """A running deployment as its target's records have it."""

    name: str
    key: str  # the deploy job's key it was shipped from
    url: str
    lock: str | None  # digest of the lock it was shipped with
    running: bool  # its process is alive
    why: str = ""  # when not running, or running stale: in words
    stale: str | None = None  # when its settings moved outside the key (a new API key)


@dataclass(frozen=True)
class Release:
    """What `ship` puts in place: a deploy job's output and where its inputs live here."""

    name: str
    key: str
    output: dict[str, Any]
    meta: dict[str, Any]
    local: dict[str, Any]


TARGETS: dict[str, TargetRecord] = {
    "export": TargetRecord(
        "export",
        "llmspec.targets.export:deploy",
        "llmspec.targets.export:check",
        "write the manifest to a file in the project",
    ),
    "http": TargetRecord(
        "http",
        "llmspec.targets.http:deploy",
        "llmspec.targets.http:check",
        "POST the manifest to a URL",
    ),
    "ray_serve": TargetRecord(
        "ray_serve",
        "llmspec.targets.ray_serve:deploy",
        "llmspec.targets.ray_serve:check",
        "serve it OpenAI-compatible on Ray Serve, kept running after apply",
        live="llmspec.targets.ray_serve:live",
        ship="llmspec.targets.ray_serve:ship",
        destroy="llmspec.targets.ray_serve:destroy",
        running="llmspec.targets.ray_serve:running",
    ),
}


def stateful() -> list[TargetRecord]:
    return [r for r in TARGETS.values() if r.ship is not None]


def _target_kind(job: Any) -> str | None:
    target = job.inputs.get("target")
    return target.get("kind") if isinstance(target, dict) else None


def effects(graph: Any) -> tuple[dict[str, str], dict[str, str]]:
    """What plan must add for stateful targets: per deploy job whose deployment does not run
    its key on this machine, the reason; per deployment on record that no deploy job of the
    graph ships any more, the reason it goes. Reads records only (no Ray, no network)."""
    from llmspec.hashing import short

    restore: dict[str, str] = {}
    wanted: set[str] = set()
    for job in graph.jobs.values():
        if job.kind != "deploy":
            continue
        rec = TARGETS.get(_target_kind(job) or "")
        if rec is None or rec.live is None:
            continue
        name = job.id.removeprefix("deploy.")
        wanted.add(name)
        live = _call(rec.live, graph.root, name, job.local)
        if live is None:
            restore[job.id] = "not deployed on this machine"
        elif not live.running:
            restore[job.id] = f"not running: {live.why}"
        elif live.key != job.key:
            restore[job.id] = f"{live.url} runs another version ({short(live.key)})"
        elif live.stale:
            restore[job.id] = live.stale
    orphans: dict[str, str] = {}
    for rec in stateful():
        for name, live in _call(rec.running, graph.root).items():
            if name not in wanted:
                orphans[f"deploy.{name}"] = f"no longer in the spec: {live.url} is removed"
    return restore, orphans


def releases(graph: Any, store: Any, jobs: dict[str, Any]) -> dict[str, list]:
    """The releases to ship after an apply, by target kind: each deploy job (of `jobs`) that
    finished or was already stored, whose deployment does not run its key."""
    out: dict[str, list[Release]] = {}
    for job in jobs.values():
        if job.kind != "deploy":
            continue
        rec = TARGETS.get(_target_kind(job) or "")
        if rec is None or rec.ship is None or rec.live is None:
            continue
        name = job.id.removeprefix("deploy.")
        live = _call(rec.live, graph.root, name, job.local)
        if live is not None and live.running and live.key == job.key and not live.stale:
            continue
        s = store.get(job.key)
        if s is None:
            continue  # blocked by a gate, failed, or never run: what runs now stays
        out.setdefault(rec.kind, []).append(Release(name, job.key, s.output, s.meta, job.local))
    return out


def ship(root: Any, kind: str, items: list[Release], lock_digest: str) -> dict[str, str | None]:
    """Put releases in place on their target; per deployment, None or the error."""
    rec = TARGETS[kind]
    return _call(rec.ship, root, items, lock_digest)


def remove_orphans(root: Any, keep: set[str]) -> dict[str, str | None]:
    """Destroy every deployment on record whose name is not in `keep`."""
    out: dict[str, str | None] = {}
    for rec in stateful():
        for name in _call(rec.running, root):
            if name not in keep:
                out[name] = destroy(root, name, rec)
    return out


def destroy(root: Any, name: str, rec: TargetRecord | None = None) -> str | None:
    """Remove a deployment from every stateful target (or `rec`); the error, or None."""
    from llmspec.errors import LlmspecError
    from llmspec.jobs import JobError

    for r in [rec] if rec is not None else stateful():
        try:
            _call(r.destroy, root, name)
        except (JobError, LlmspecError) as e:
            return str(e)
    return None


def live_of(root: Any, kind: str, name: str, local: dict[str, Any] | None = None) -> Live | None:
    """What runs under `name` on a stateful target, from its records."""
    rec = TARGETS[kind]
    return None if rec.live is None else _call(rec.live, root, name, local or {})


def running(root: Any) -> dict[str, tuple[str, Live]]:
    """Every deployment on record on this machine: name -> (target kind, Live)."""
    out = {}
    for rec in stateful():
        for name, live in _call(rec.running, root).items():
            out[name] = (rec.kind, live)
    return out
