"""Progress points from jobs running under Ray: a named actor holds them until the driver
takes them, and any process of the same Ray job (a model worker, a Ray Train worker) sends to
it by name."""

from __future__ import annotations

from typing import Any


class Progress:
    """An actor holding the progress points jobs send until the driver takes them."""

    LIMIT = 10_000  # points kept between two takes; more are dropped (progress only)

    def __init__(self) -> None:
        self.points: list[tuple[str, dict[str, Any]]] = []

    def put(self, job_id: str, point: dict[str, Any]) -> None:
        if len(self.points) < self.LIMIT:
            self.points.append((job_id, point))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        out, self.points = self.points, []
        return out


def progress_sender(name: str | None) -> Any:
    """A function (job id, point) -> None sending to the progress actor `name` without
    waiting; None without one. Works in any process of the same Ray job (Ray Train workers)."""
    if name is None:
        return None
    actor: list[Any] = []

    def send(job_id: str, point: dict[str, Any]) -> None:
        import ray

        try:
            if not actor:
                actor.append(ray.get_actor(name))
            actor[0].put.remote(job_id, point)
        except Exception:  # noqa: BLE001 - progress is best effort; the job goes on
            pass

    return send
