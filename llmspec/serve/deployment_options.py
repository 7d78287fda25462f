"""Serve's deployment options from a ray_serve target's settings (no Ray import: `deploy
export` writes them into a config)."""

from __future__ import annotations

from typing import Any


def options(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_replicas": settings["replicas"],
        "max_ongoing_requests": settings["concurrency"],
        "max_queued_requests": settings["queue"],
        "ray_actor_options": {"num_cpus": 0},
    }
