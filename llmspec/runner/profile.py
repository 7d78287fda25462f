"""Runner profiles: `runners/NAME.yaml`, validated like specs.

    # runners/cluster.yaml
    runner: ray
    address: ray://head.internal:10001
    runtime_env: {pip: [llmspec]}
    max_concurrency: 64

`address: local` (the default) starts an embedded Ray on this machine: no dashboard, loopback
only, a bounded object store, shut down at the end. Any other address submits to an existing
cluster; a non-loopback address needs Ray token authentication (`RAY_AUTH_MODE=token`) unless
the profile sets `allow_unauthenticated: true`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmspec.errors import Diagnostic, LlmspecError, Loc, did_you_mean
from llmspec.spec import Bool, Float, Int, Str

BUILTIN = ("local", "inline")


class RunnerProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    runner: Literal["ray", "inline"] = "ray"
    address: Str = Field("local", description="`local`, `auto`, host:port or ray://host:port")
    num_cpus: Float | None = Field(None, gt=0, description="CPUs of the embedded Ray")
    num_gpus: Float | None = Field(None, ge=0, description="GPUs of the embedded Ray")
    object_store_memory: Int = Field(256 * 1024 * 1024, ge=64 * 1024 * 1024)
    runtime_env: dict[str, Any] = {}
    max_concurrency: Int = Field(32, ge=1, description="jobs in flight at once")
    max_retries: Int = Field(3, ge=0, le=20, description="retries of a job after a crash")
    reserve_cpus: Float = Field(
        1, ge=0, description="CPUs model replicas leave free for other work (no deadlock)"
    )
    general_workers: Int = Field(
        2, ge=1, le=256, description="workers for jobs not bound to a model (scoring, indexing)"
    )
    allow_unauthenticated: Bool = False
    threads: Int | None = Field(
        None,
        ge=1,
        le=1024,
        description="torch/OpenMP threads per model replica (and for the inline runner); "
        "default: OMP_NUM_THREADS, else 1",
    )

    @property
    def embedded(self) -> bool:
        return self.address == "local"


def load_profile(name: str, root: Path) -> RunnerProfile:
    """`--runner NAME`: a file `runners/NAME.yaml` (project folder first, then the current
    one), or the built-in `local` (embedded Ray) and `inline` (this process, no Ray).

    A profile file may not take a built-in name: `runners/local.yaml` in a pull request would
    otherwise send every default apply (and its data) wherever the file says."""
    for base in (root, Path.cwd()):
        path = base / "runners" / f"{name}.yaml"
        if path.is_file():
            if name in BUILTIN:
                raise LlmspecError.one(
                    "E074",
                    f"runner profile {path} would replace the built-in runner `{name}`",
                    Loc(str(path)),
                    "give the profile another name (runners/laptop.yaml) and pass "
                    "`--runner laptop`",
                )
            return _read(path)
    if name == "local":
        address = os.environ.get("RAY_ADDRESS")
        return RunnerProfile(address=address) if address else RunnerProfile()
    if name == "inline":
        return RunnerProfile(runner="inline")
    known = {p.stem for base in (root, Path.cwd()) for p in (base / "runners").glob("*.yaml")}
    raise LlmspecError.one(
        "E071",
        f"no runner profile `{name}`",
        None,
        did_you_mean(name, known | set(BUILTIN)) or "create runners/NAME.yaml",
    )


def _read(path: Path) -> RunnerProfile:
    from llmspec.load import load_file

    f = load_file(path)
    try:
        return RunnerProfile.model_validate(f.data or {})
    except ValidationError as e:
        diags = []
        for err in e.errors():
            loc = tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                hint = did_you_mean(str(loc[-1]), RunnerProfile.model_fields)
                diags.append(
                    Diagnostic(
                        "E010",
                        f"unknown field `{loc[-1]}` in runner profile",
                        f.loc(loc, key=True),
                        hint,
                    )
                )
            else:
                diags.append(
                    Diagnostic("E011", f"{err['msg']} at `{'.'.join(map(str, loc))}`", f.loc(loc))
                )
        raise LlmspecError(diags) from None


CLUSTER_FILE = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"


def cluster_address(profile: RunnerProfile, where: str) -> str:
    """The address apply connects to: `auto` is the cluster this machine last started (Ray's
    cluster file), resolved here so that it is checked like any other address."""
    if profile.address != "auto":
        return profile.address
    try:
        found = CLUSTER_FILE.read_text().strip()
    except OSError:
        found = ""
    if not found:
        raise LlmspecError.one(
            "E073",
            "`address: auto` but no Ray cluster is running on this machine",
            Loc(where),
            f"start one (`ray start --head`), or name its address; looked in {CLUSTER_FILE}",
        )
    return found


def split_address(address: str) -> tuple[str, int | None]:
    """(host, port) of `host:port`, `ray://host:port` or `[::1]:port`.

    >>> split_address("ray://head.internal:10001"), split_address("127.0.0.1")
    (('head.internal', 10001), ('127.0.0.1', None))
    """
    rest = re.sub(r"^[a-z]+://", "", address)
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or (host.count(":") and not host.startswith("[")):
        return rest.strip("[]"), None
    return host.strip("[]"), int(port)


def is_loopback(address: str) -> bool:
    return _loopback(split_address(address)[0])


def check_reachable(address: str, where: str, timeout: float = 3.0) -> None:
    """Fail at once, with a diagnostic, when nothing listens at a cluster's address (Ray
    itself would retry for minutes)."""
    import socket

    host, port = split_address(address)
    if port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        raise LlmspecError.one(
            "E073",
            f"cannot reach the Ray cluster at `{address}`: {e.strerror or e}",
            Loc(where),
            "is the cluster running? check RAY_ADDRESS or the profile's `address`",
        ) from None


def describe(profile: RunnerProfile, name: str) -> str:
    """What a runner will do, for apply to say before it starts.

    >>> describe(RunnerProfile(), "local")
    'runner `local`: an embedded Ray on 127.0.0.1'
    """
    if profile.runner == "inline":
        return f"runner `{name}`: this process, no Ray"
    if profile.embedded:
        return f"runner `{name}`: an embedded Ray on 127.0.0.1"
    return f"runner `{name}`: the Ray cluster at {profile.address}"


def check_address(profile: RunnerProfile, where: str) -> None:
    """Refuse a remote cluster without token authentication unless explicitly allowed."""
    if profile.embedded or profile.allow_unauthenticated:
        return
    address = cluster_address(profile, where)
    if is_loopback(address):
        return
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return
    raise LlmspecError.one(
        "E072",
        f"refusing to submit to `{address}` without Ray token authentication",
        Loc(where),
        "set RAY_AUTH_MODE=token (and RAY_AUTH_TOKEN) as the cluster does, or set "
        "`allow_unauthenticated: true` in the profile if the network is trusted",
    )


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
