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
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

from llmspec.jobs import Deps, JobContext
from llmspec.runner import (
    OnOutcome,
    OnStart,
    Outcome,
    OutputOf,
    blocked_by,
    execute,
    threads_for,
    use_threads,
)
from llmspec.runner.inline import InlineRunner
from llmspec.runner.profile import RunnerProfile, check_address

GENERAL = "general"
DRIVER = "driver"


class _Worker:
    """Runs jobs in a Ray actor; the job context (models, embedders) lives as long as it.

    `threads` is set before anything loads torch (Ray sets OMP_NUM_THREADS to the actor's CPUs
    otherwise, rounded), and never makes the worker import torch itself: an echo or remote
    model's worker stays light."""

    def __init__(self, threads: int):
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        use_threads(threads)
        self.ctx = JobContext()
        self.threads = threads

    def run(self, job: Any, roles: list[str], *values: tuple[Any, dict]) -> Outcome:
        deps = Deps.of(dict(zip(roles, values, strict=True)))
        return execute(job, deps, self.ctx)

    def pid(self) -> int:
        return os.getpid()

    def threads_in_use(self, load_torch: bool = False) -> dict[str, Any]:
        """What this worker runs with: OMP_NUM_THREADS, torch's threads (when loaded), and
        where llmspec came from."""
        import sys

        import llmspec

        if load_torch:
            import torch  # noqa: F401
        torch = sys.modules.get("torch")
        return {
            "omp": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.get_num_threads() if torch is not None else None,
            "llmspec": llmspec.__file__,
        }


class _DriverPaths(list):
    """The folders Ray puts first on every worker's `sys.path` (the driver's working folder
    and script folder), less any that holds another `llmspec`: a checkout named `llmspec/` in
    the folder apply runs from must not replace, in the workers, the llmspec this process
    runs (it did: `ImportError: cannot import name '__version__' from 'llmspec'`)."""

    def extend(self, paths: Any) -> None:
        super().extend(p for p in paths if not shadows_llmspec(p))


def shadows_llmspec(folder: str) -> bool:
    """Whether `folder` on sys.path would import another llmspec than this process's."""
    from pathlib import Path

    import llmspec

    here = Path(folder)
    if not ((here / "llmspec").exists() or (here / "llmspec.py").exists()):
        return False
    ours = Path(llmspec.__file__).resolve().parent.parent
    try:
        return here.resolve() != ours
    except OSError:
        return True


class _Starter:
    """Starts Ray (and the actor pools) on a thread of its own while the driver goes on.

    The thread stays alive until the runner closes: the processes of an embedded Ray are
    started with a parent-death signal, which Linux ties to the thread that started them, so
    they would die with a thread that ended."""

    def __init__(self, work: Any):
        import threading

        self.work = work
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._main, name="llmspec-ray-start", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        try:
            self.work()
        except BaseException as e:  # noqa: BLE001 - handed to the thread that waits
            self.error = e
        finally:
            self.ready.set()
        self.release.wait()

    def wait(self) -> None:
        while not self.ready.wait(0.1):  # short waits keep Ctrl-C working in the main thread
            pass
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.release.set()
        self.thread.join(5)


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


PIDS_FILE = "ray-processes.json"


def _record_processes(state: Any) -> None:
    """Note the embedded Ray's processes, so that the next apply can stop them if this one is
    killed before it can (Ray's agents outlive a killed driver by a minute or more)."""
    import json

    try:
        import ray

        node = ray._private.worker._global_node
        pids = [p.process.pid for procs in node.all_processes.values() for p in procs]
        session = node.get_session_dir_path()
    except Exception:  # noqa: BLE001 - Ray's internals moved: nothing to record
        return
    state.mkdir(parents=True, exist_ok=True)
    record = {"driver": os.getpid(), "pids": pids, "session": session}
    (state / PIDS_FILE).write_text(json.dumps(record))


def reap_processes(state: Any) -> list[int]:
    """Stop what a killed apply's embedded Ray left running (its driver is gone); the pids it
    stopped."""
    import json

    path = state / PIDS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    import psutil

    if psutil.pid_exists(int(data.get("driver", 0))):
        return []  # that apply is still running (the run lock keeps it alone)
    session = str(data.get("session") or "")
    recorded = {int(p) for p in data.get("pids", [])}
    stopped = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            # its processes and the agents they started: all name the session's folder
            if proc.pid in recorded or (session and session in cmdline):
                if "ray" not in cmdline.lower():
                    continue  # a recorded pid reused by something else
                proc.kill()
                stopped.append(proc.pid)
        except (psutil.Error, ValueError):
            continue
    path.unlink(missing_ok=True)
    return stopped


def _quiet_thread_start() -> None:
    """Ray warns that it sets no SIGTERM handler when started off the main thread: set the one
    it would have (exit, so that Ray shuts down at exit) here, and drop the warning."""
    import logging
    import signal
    import sys
    import threading

    class _NoSigtermNotice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "SIGTERM handler is not set" not in record.getMessage()

    logging.getLogger("ray._private.worker").addFilter(_NoSigtermNotice())
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))


class RayRunner:
    name = "ray"

    def __init__(self, profile: RunnerProfile | None = None, where: str = "--runner"):
        self.profile = profile or RunnerProfile()
        self.where = where
        self.started = False
        self.pools: dict[str, list[Any]] = {}
        self.shapes: dict[str, tuple[int, float, float]] = {}
        self.driver_ctx = JobContext()
        self.threads = threads_for(self.profile.threads)
        self._starter: _Starter | None = None
        self.state: Path | None = None  # where an embedded Ray's processes are recorded

    # -- Ray lifecycle -----------------------------------------------------------------------

    def prepare(self, jobs: list[Any], root: Path | None = None) -> None:
        """Start Ray and these jobs' actor pools on a thread, while the caller prints the plan;
        `run` waits for it. A plan with nothing for a worker starts nothing. `root`: the
        project's folder, where an embedded Ray records its processes."""
        if root is not None:
            self.state = Path(root) / ".llmspec" / "tmp"
        if self._starter is not None or not any(j.pool != DRIVER for j in jobs):
            return
        check_address(self.profile, self.where)  # refuse at once, before any thread
        _quiet_thread_start()
        self._starter = _Starter(lambda: self._start_pools(jobs))

    def _start_pools(self, jobs: list[Any]) -> None:
        self.start()
        shapes = self._plan_pools(jobs)
        for name, shape in shapes.items():
            self._pool(name, shape)

    def start(self) -> None:
        import ray
        from ray.job_config import JobConfig

        p = self.profile
        check_address(p, self.where)
        if ray.is_initialized():
            return
        job_config = JobConfig(runtime_env=p.runtime_env or None)
        job_config._py_driver_sys_path = _DriverPaths(job_config._py_driver_sys_path)
        kwargs: dict[str, Any] = {
            "job_config": job_config,
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
        if p.embedded and self.state is not None:
            reap_processes(self.state)  # what a killed apply's Ray left running
        ray.init(**{k: v for k, v in kwargs.items() if v is not None})
        self.started = True
        if p.embedded and self.state is not None:
            _record_processes(self.state)

    def close(self) -> None:
        import sys

        starter, self._starter = self._starter, None
        if starter is not None:
            try:
                starter.wait()
            except BaseException:  # noqa: BLE001 - reported by run; here only shut down
                pass
        if "ray" in sys.modules:
            import ray

            self._drop_pools()
            if self.started and ray.is_initialized():
                ray.shutdown()
                self.started = False
                if self.state is not None:
                    (self.state / PIDS_FILE).unlink(missing_ok=True)
        if starter is not None:
            starter.stop()

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
            self.pools[name] = [cls.remote(self.threads) for _ in range(replicas)]
        return self.pools[name]

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self,
        graph: Any,
        jobs: list[Any],
        output_of: OutputOf,
        on_start: OnStart,
        on_outcome: OnOutcome,
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
            return InlineRunner().run(graph, jobs, output_of, on_start, on_outcome)
        if self.state is None:
            self.state = graph.root / ".llmspec" / "tmp"
        if self._starter is not None:
            self._starter.wait()
        self.start()
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

        from llmspec.runner.interrupts import current

        stop = current()

        def submit() -> None:
            if stop.requested:  # first Ctrl-C: let what runs finish, start nothing new
                return
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
            while in_flight or (ready[DRIVER] and not stop.requested):
                if ready[DRIVER] and not stop.requested:  # cheap work, here, while workers run
                    job = ready[DRIVER].popleft()
                    on_start(job.id)
                    finish(job, execute(job, Deps(job.deps, output_of), self.driver_ctx))
                    continue
                done, _ = ray.wait(list(in_flight), num_returns=1)
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
            if stop.requested:
                raise KeyboardInterrupt  # what was running has finished and is stored
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
