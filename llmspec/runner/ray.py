"""The Ray runner: jobs become calls on Ray actors, results stream back as they finish.

- Each model gets a pool of `replicas` actors with the resources its spec asks for
  (`gpus: 1` -> `num_gpus=1`); a model loads once per actor. Jobs of the `general` pool
  (index, score) run on `general_workers` actors, which keep embedding models loaded, so a
  large suite is scored in parallel; cheap pure-Python jobs (the `driver` pool: summary, gate,
  deploy) run in the applying process itself, without a round trip to a worker.
- Dispatch is dynamic: the driver keeps a queue of ready jobs per pool and hands the next one
  to whichever replica is free, so a slow shard never holds up an idle replica. A remote call
  is one whole shard (`shard_rows` rows), enough to amortise Ray's per-call overhead.
- Model replicas never claim every CPU: `reserve_cpus` stay free for the general actors and
  the driver (actors that take all CPU slots can deadlock a small machine), so on a 2-CPU machine
  two replicas get 0.5 CPU each rather than 1.
- A crashed worker (a system failure, not an error in the job) is restarted by Ray and the job
  is sent again, up to `max_retries` times. Results are whole shards written by the driver, so
  a retry can never duplicate a row in the store.
- Ctrl-C stops submitting, cancels what is in flight and returns; finished jobs are kept.
- Jobs that report progress (fine-tunes) send it to a named actor (no CPU) that the driver
  empties while it waits; Ray Train workers send theirs there too.
"""

from __future__ import annotations

import collections
import os
from typing import Any

from llmspec.jobs import Deps, JobContext
from llmspec.runner import (
    OnOutcome,
    OnProgress,
    OnStart,
    Outcome,
    OutputOf,
    blocked_by,
    execute,
)
from llmspec.runner.inline import InlineRunner
from llmspec.runner.profile import RunnerProfile, check_address

GENERAL = "general"
DRIVER = "driver"
PROGRESS_SECONDS = 0.5  # how often the driver collects progress while jobs run


def _reports_progress(jobs: list[Any]) -> bool:
    from llmspec.jobs import kind

    return any(kind(j.kind).progress for j in jobs)


class _Worker:
    """Runs jobs in a Ray actor; the job context (models, embedders) lives as long as it."""

    def __init__(self, threads: int, progress: str | None = None):
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # `progress`: the name of the driver's progress actor (a name, not a handle: an
        # actor restarted after a crash gets its arguments again)
        self.ctx = JobContext(trainer="ray", progress_to=progress)
        self.ctx.progress = progress_sender(progress)
        self.threads = threads
        self._torch_threads_set = False

    def run(self, job: Any, roles: list[str], *values: tuple[Any, dict]) -> Outcome:
        deps = Deps.of(dict(zip(roles, values, strict=True)))
        if not self._torch_threads_set:
            try:
                import torch

                torch.set_num_threads(self.threads)
            except ImportError:
                pass
            self._torch_threads_set = True
        return execute(job, deps, self.ctx)

    def pid(self) -> int:
        return os.getpid()


class _Progress:
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


def _loopback_only() -> None:
    """Make an embedded Ray a one-machine instance that listens on 127.0.0.1 only.

    Ray rewrites a loopback `_node_ip_address` to the machine's reachable address and binds its
    servers on every interface, unless it is told the node is not part of a cluster (the flag
    Ray reads for single-machine macOS and Windows). The processes Ray starts read it from the
    environment; this process has read it already, so its constant is set too.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    except (ImportError, AttributeError):  # another Ray: the environment variable still holds
        pass


class RayRunner:
    name = "ray"

    def __init__(self, profile: RunnerProfile | None = None, where: str = "--runner"):
        self.profile = profile or RunnerProfile()
        self.where = where
        self.started = False
        self.pools: dict[str, list[Any]] = {}
        self.shapes: dict[str, tuple[int, float, float]] = {}
        self.driver_ctx = JobContext(trainer="ray")
        self.progress: Any = None  # the actor jobs send progress to, made when one may
        self.progress_name: str | None = None

    # -- Ray lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        import ray

        p = self.profile
        check_address(p, self.where)
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {
            "runtime_env": p.runtime_env or None,
            "log_to_driver": False,
            "configure_logging": False,
            "include_dashboard": False,
        }
        if p.embedded:
            # Our own instance keeps Ray's default token authentication, without the notice
            # Ray prints about it on every start.
            import logging

            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
                logging.ERROR
            )
            _loopback_only()
            # Always a new instance of our own: never attach to another Ray on this machine
            # (or to the stale cluster file a crashed one left behind).
            kwargs.update(
                address="local",
                num_cpus=p.num_cpus,
                num_gpus=p.num_gpus,
                object_store_memory=p.object_store_memory,
                _node_ip_address="127.0.0.1",
            )
        else:
            from llmspec.runner.profile import check_reachable, cluster_address, is_loopback

            address = cluster_address(p, self.where)
            check_reachable(address, self.where)
            if is_loopback(address):  # a cluster on this machine: reach it on 127.0.0.1
                _loopback_only()
            kwargs["address"] = address
        ray.init(**{k: v for k, v in kwargs.items() if v is not None})
        self.started = True

    def close(self) -> None:
        import sys

        if "ray" not in sys.modules:
            return
        import ray

        self._drop_pools()
        if self.progress is not None:
            try:
                ray.kill(self.progress, no_restart=True)
            except Exception:  # noqa: BLE001 - the cluster may be gone already
                pass
            self.progress = None
            self.progress_name = None
        if self.started and ray.is_initialized():
            ray.shutdown()
            self.started = False

    # -- pools -------------------------------------------------------------------------------

    def _drop_pools(self) -> None:
        import ray

        for pool in self.pools.values():
            for actor in pool:
                ray.kill(actor, no_restart=True)
        self.pools = {}
        self.shapes = {}

    def _plan_pools(self, jobs: list[Any]) -> dict[str, tuple[int, float, float]]:
        """(replicas, cpus, gpus) per pool; model pools share what `reserve_cpus` leaves."""
        import ray

        wanted = {}
        for j in jobs:
            if j.pool.startswith("model:") and j.pool not in wanted:
                r = j.resources
                wanted[j.pool] = (int(r["replicas"]), float(r["cpus"]), float(r["gpus"]))
        total = ray.cluster_resources().get("CPU", 1.0)
        budget = max(total - self.profile.reserve_cpus, total / 2)
        claimed = sum(r * c for r, c, _ in wanted.values())
        scale = min(1.0, budget / claimed) if claimed else 1.0
        pools = {m: (r, round(c * scale, 3), g) for m, (r, c, g) in wanted.items()}
        general = sum(1 for j in jobs if j.pool == GENERAL)
        if general:
            pools[GENERAL] = (min(self.profile.general_workers, general), 0.0, 0.0)
        return pools

    def _pool(self, name: str, shape: tuple[int, float, float]) -> list[Any]:
        import ray

        if name in self.pools and self.shapes.get(name) != shape:
            for actor in self.pools.pop(name):  # the spec asks for other resources now
                ray.kill(actor, no_restart=True)
        if name not in self.pools:
            self.shapes[name] = shape
            replicas, cpus, gpus = shape
            cls = ray.remote(_Worker).options(
                num_cpus=cpus,
                num_gpus=gpus,
                max_restarts=self.profile.max_retries,
                max_task_retries=0,
                max_concurrency=1,
            )
            threads = max(1, int(round(cpus))) if cpus else 1
            self.pools[name] = [cls.remote(threads, self.progress_name) for _ in range(replicas)]
        return self.pools[name]

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self,
        graph: Any,
        jobs: list[Any],
        output_of: OutputOf,
        on_start: OnStart,
        on_outcome: OnOutcome,
        on_progress: OnProgress | None = None,
    ) -> None:
        import ray
        from ray.exceptions import (
            ActorDiedError,
            ActorUnavailableError,
            RayActorError,
            WorkerCrashedError,
        )

        if not jobs:
            return
        if all(j.pool == DRIVER for j in jobs):  # nothing for a worker: no need for Ray
            return InlineRunner().run(graph, jobs, output_of, on_start, on_outcome, on_progress)
        self.start()
        self.driver_ctx.progress = on_progress
        if on_progress is not None and self.progress is None and _reports_progress(jobs):
            self.progress_name = f"llmspec-progress-{os.getpid()}-{id(self)}"
            # no CPU: an actor that claims one can starve a small machine (and Ray Train)
            self.progress = (
                ray.remote(_Progress).options(name=self.progress_name, num_cpus=0).remote()
            )
            self._drop_pools()  # workers made before know no progress actor

        def drain() -> None:
            if self.progress is None or on_progress is None:
                return
            try:
                points = ray.get(self.progress.take.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - progress is best effort
                return
            for job_id, point in points:
                on_progress(job_id, point)

        shapes = self._plan_pools(jobs)
        idle = {name: collections.deque(self._pool(name, shapes[name])) for name in shapes}
        to_run = {j.id: j for j in jobs}
        finished: dict[str, Outcome] = {}
        waiting = list(jobs)
        ready: dict[str, collections.deque] = {name: collections.deque() for name in shapes}
        ready[DRIVER] = collections.deque()
        in_flight: dict[Any, tuple[Any, Any, int]] = {}  # ref -> (job, actor, attempt)
        dep_refs: dict[str, Any] = {}
        crashes: collections.Counter = collections.Counter()
        limit = self.profile.max_concurrency
        # how many jobs still to finish read each dependency: at 0 its object can go
        readers = collections.Counter(d for j in jobs for d in j.deps.values())

        def release(job: Any) -> None:
            for d in job.deps.values():
                readers[d] -= 1
                if readers[d] <= 0:
                    dep_refs.pop(d, None)  # keep the object store small on long runs

        def dep_args(job: Any) -> list[Any]:
            """Object refs of the dependencies' outputs, put once each; Ray resolves them."""
            for d in job.deps.values():
                if d not in dep_refs:
                    dep_refs[d] = ray.put(output_of(d))
            return [dep_refs[d] for d in job.deps.values()]

        def promote() -> None:
            still = []
            for job in waiting:
                pending = [d for d in job.deps.values() if d in to_run and d not in finished]
                if pending:
                    still.append(job)
                    continue
                early = blocked_by(job, finished)
                if early is not None:
                    finished[job.id] = early
                    release(job)
                    on_outcome(early)
                    continue
                ready[job.pool].append(job)
            waiting[:] = still

        def submit() -> None:
            for name, queue in ready.items():
                if name == DRIVER:
                    continue
                while queue and idle[name] and len(in_flight) < limit:
                    job = queue.popleft()
                    actor = idle[name].popleft()
                    on_start(job.id)
                    ref = actor.run.remote(job, list(job.deps), *dep_args(job))
                    in_flight[ref] = (job, actor, crashes[job.id])

        def finish(job: Any, outcome: Outcome) -> None:
            finished[job.id] = outcome
            release(job)
            on_outcome(outcome)
            promote()
            submit()

        try:
            promote()
            submit()
            while in_flight or ready[DRIVER]:
                if ready[DRIVER]:  # cheap work, in this process, while workers run
                    job = ready[DRIVER].popleft()
                    on_start(job.id)
                    finish(job, execute(job, Deps(job.deps, output_of), self.driver_ctx))
                    continue
                wait = PROGRESS_SECONDS if self.progress is not None else None
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=wait)
                drain()
                if not done:
                    continue
                ref = done[0]
                job, actor, _attempt = in_flight.pop(ref)
                idle[job.pool].append(actor)
                try:
                    outcome = ray.get(ref)
                except (
                    ActorDiedError,
                    ActorUnavailableError,
                    RayActorError,
                    WorkerCrashedError,
                ) as e:
                    crashes[job.id] += 1
                    if crashes[job.id] <= self.profile.max_retries:
                        ready[job.pool].appendleft(job)  # the actor restarts by itself
                        submit()
                        continue
                    outcome = Outcome(
                        job.id,
                        "failed",
                        error=f"worker crashed {crashes[job.id]} times: {type(e).__name__}",
                    )
                finish(job, outcome)
            for job in waiting:  # unreachable: a dependency never finished
                o = Outcome(job.id, "skipped", error="a dependency did not finish")
                on_outcome(o)
        except KeyboardInterrupt:
            # Stop what has not started; close() kills the actors and so whatever runs.
            # (Ray refuses force=True for actor tasks.)
            for ref in in_flight:
                try:
                    ray.cancel(ref)
                except Exception:  # noqa: BLE001 - best effort while shutting down
                    pass
            raise
