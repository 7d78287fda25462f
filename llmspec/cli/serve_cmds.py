"""Commands about what runs: `deploy status`, `deploy export`, `destroy`, `drift`, and the
roll back of `apply --lock OLD.lock`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from llmspec.cli import EXIT_ERROR, handle_errors, main
from llmspec.errors import Diagnostic, LlmspecError, Loc, did_you_mean, render


def _root(path: str) -> Path:
    from llmspec.project import project_root

    return project_root(path)


def _short(key: str | None) -> str:
    from llmspec.hashing import short

    return short(key) if key else "-"


# -- apply --lock ------------------------------------------------------------------------------


def rollback(path: str, lock_file: str, quiet: bool) -> int:
    """Ship the deployments `lock_file` records, each from its stored deploy job; exit code."""
    from llmspec.cli.run_cmds import compile_path
    from llmspec.hashing import file_digest
    from llmspec.lock import parse_lock
    from llmspec.store import RunLock
    from llmspec.targets import TARGETS, Release, live_of, ship

    raw = Path(lock_file).read_bytes()
    old = parse_lock(raw, lock_file)
    _, graph, store = compile_path(path)
    root, digest = graph.root, file_digest(raw)
    lines, problems = [], []
    todo: dict[str, list[Release]] = {}
    with RunLock(root).held():
        for job_id, locked in sorted(old.jobs.items()):
            if locked.kind != "deploy":
                continue
            name = job_id.removeprefix("deploy.")
            s = store.get(locked.key)
            job = graph.jobs.get(job_id)
            loc = job.loc if job is not None else Loc(lock_file)
            if s is None or "release" not in s.output:
                problems.append(
                    Diagnostic(
                        "E095",
                        f"{Path(lock_file).name} records deployment `{name}` at "
                        f"{_short(locked.key)}, which this machine's store does not hold",
                        loc,
                        "check out the spec and lock of that version and run `llmspec apply`: it "
                        "runs only what is missing",
                    )
                )
                continue
            target = s.output["release"]["target"]
            if target is None:
                continue
            rec = TARGETS[target["kind"]]
            local = s.meta.get("local", {}) | {"root": str(root)}
            if rec.ship is None:  # a file or a request: ship the old manifest again
                rec.run(s.output["manifest"], target, local)
                lines.append(
                    f"  ~ {job_id}  {target['kind']}: the manifest of {_short(locked.key)}"
                )
                continue
            live = live_of(root, rec.kind, name, local)
            if live is not None and live.running and live.key == locked.key:
                lines.append(f"  = {job_id}  already runs {_short(locked.key)}")
                continue
            now = f"runs {_short(live.key)}" if live is not None and live.running else "not running"
            lines.append(f"  ~ {job_id}  {now}; ships {_short(locked.key)} from the store")
            todo.setdefault(rec.kind, []).append(Release(name, locked.key, s.output, s.meta, local))
        if problems:
            raise LlmspecError(problems)
        if not quiet:
            click.echo(f"llmspec apply --lock {lock_file}: deployments as that lock records\n")
            click.echo("\n".join(lines or ["  (no deployments recorded)"]) + "\n")
        failed = {}
        for kind, items in todo.items():
            for name, error in ship(root, kind, items, digest).items():
                if error is not None:
                    failed[name] = error
                else:
                    live = live_of(root, kind, name)
                    click.echo(
                        f"Rolled back `{name}`: {live.url if live else ''} (lock {_short(digest)})"
                    )
    for name, error in failed.items():
        job = graph.jobs.get(f"deploy.{name}")
        diag = Diagnostic(
            "E094", f"deployment `{name}` was not shipped: {error}", job.loc if job else None
        )
        click.echo(render([diag], allowed_root=root), err=True)
    click.echo(
        "Nothing ran: every deployment came from the store. llmspec.lock is unchanged: "
        "`llmspec plan` shows `*` for them until the spec and lock are rolled back too."
    )
    return EXIT_ERROR if failed else 0


# -- deploy status / export ---------------------------------------------------------------------


@main.group()
def deploy() -> None:
    """What runs on Ray Serve, and configs for `serve deploy` on a cluster."""


@deploy.command("status")
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@handle_errors
def deploy_status(path: str, fmt: str) -> None:
    """List what runs, where, from which lock, and whether the spec still ships it.

    \b
    Examples:
      llmspec deploy status specs/
      llmspec deploy status specs/ --format json
    """
    from llmspec.cli.run_cmds import compile_path
    from llmspec.lock import lock_digest
    from llmspec.serve.head import read_state
    from llmspec.targets import running

    _, graph, _store = compile_path(path)
    root = graph.root
    current = lock_digest(root)
    heads = read_state(root)["heads"]
    rows = []
    for name, (kind, live) in sorted(running(root).items()):
        job = graph.jobs.get(f"deploy.{name}")
        spec = (
            "not in the spec"
            if job is None
            else "current"
            if job.key == live.key
            else "the spec ships another version"
        )
        rec = read_state(root)["deployments"][name] if kind == "ray_serve" else {}
        head = heads.get(rec.get("head") or "", {})
        rows.append(
            {
                "name": name,
                "target": kind,
                "url": live.url + "/v1",
                "running": live.running,
                "why": live.why,
                "key": live.key,
                "lock": live.lock,
                "lock_is_current": live.lock == current,
                "spec": spec,
                "head_pid": head.get("pid"),
                "runner": rec.get("runner"),
                "since": rec.get("since"),
            }
        )
    if fmt == "json":
        click.echo(json.dumps({"project": graph.project, "deployments": rows}, indent=2))
        return
    if not rows:
        click.echo("No deployments run for this project.")
        return
    for r in rows:
        state = "running" if r["running"] else f"stopped ({r['why']})"
        lock = "this llmspec.lock" if r["lock_is_current"] else f"lock {_short(r['lock'])}"
        where = f"Ray head pid {r['head_pid']}" if r["head_pid"] else f"runner {r['runner']}"
        click.echo(f"{r['name']}  {state}  {r['url']}")
        click.echo(
            f"    version {_short(r['key'])} from {lock}, since {r['since']}; {r['spec']}; {where}"
        )


@deploy.command("export")
@click.argument("args", nargs=-1, required=True)
@click.option("--out", type=click.Path(file_okay=False), help="Folder (default build/serve/NAME).")
@handle_errors
def deploy_export(args: tuple[str, ...], out: str | None) -> None:
    """Write the Ray Serve config of deployment NAME for `serve deploy` on a cluster.

    Usage: llmspec deploy export [PATH] NAME. Writes serve.yaml and NAME.json (the model's
    settings, prompt, schema, retrieval index and limits); the weights are named by their path
    here and checked by their digests when a replica starts. Only what passed its suites is
    exported: apply it first.

    \b
    Examples:
      llmspec deploy export specs/ api
      serve deploy build/serve/api/serve.yaml -a http://HEAD:8265
    """
    from llmspec.cli.run_cmds import compile_path
    from llmspec.fsutil import write_atomic
    from llmspec.lock import lock_digest
    from llmspec.targets import Release
    from llmspec.targets.ray_serve import config_for, serve_config

    if len(args) > 2:
        raise click.UsageError("give [PATH] NAME")
    path, name = (args[0], args[1]) if len(args) == 2 else (".", args[0])
    _, graph, store = compile_path(path)
    job = graph.jobs.get(f"deploy.{name}")
    names = [j.removeprefix("deploy.") for j in graph.jobs if j.startswith("deploy.")]
    if job is None:
        raise LlmspecError.one(
            "E020",
            f"unknown deployment `{name}`",
            Loc(path),
            did_you_mean(name, names) or "declare it under `deployments:`",
        )
    target = job.inputs.get("target") or {}
    if target.get("kind") != "ray_serve":
        raise LlmspecError.one(
            "E013",
            f"deployment `{name}` does not have a ray_serve target",
            job.loc,
            "set `target: {kind: ray_serve, ...}`",
        )
    s = store.get(job.key)
    if s is None:
        raise LlmspecError.one(
            "E095",
            f"deployment `{name}` at this version has not passed its suites on this machine",
            job.loc,
            "run `llmspec apply`: only what passed is exported",
        )
    folder = Path(out) if out else graph.root / "build" / "serve" / name
    config = config_for(
        graph.root, Release(name, job.key, s.output, s.meta, job.local), lock_digest(graph.root)
    )
    config_file = (folder / f"{name}.json").resolve()
    write_atomic(config_file, (json.dumps(config, indent=1, sort_keys=True) + "\n").encode())
    write_atomic(folder / "serve.yaml", serve_config(name, config, str(config_file)).encode())
    click.echo(f"wrote {folder / 'serve.yaml'} and {config_file}")
    click.echo(f"  serve deploy {folder / 'serve.yaml'} -a http://HEAD:8265")


# -- destroy ------------------------------------------------------------------------------------


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.argument("name", required=False)
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def destroy(path: str, name: str | None, auto_approve: bool) -> None:
    """Remove running deployments (all, or NAME), and the Ray head llmspec started for them
    when nothing else runs there.

    The lock keeps its record: `llmspec plan` then shows the deployment as `*` (not
    deployed) and the next apply ships it again, unless it left the spec.

    \b
    Examples:
      llmspec destroy specs/
      llmspec destroy specs/ api --auto-approve
    """
    from llmspec.serve.head import read_state
    from llmspec.store import RunLock
    from llmspec.targets import destroy as destroy_one
    from llmspec.targets import running

    root = _root(path)
    live = running(root)
    if name is not None and name not in live:
        raise LlmspecError.one(
            "E020",
            f"no deployment `{name}` runs for this project",
            Loc(path),
            did_you_mean(name, live) or "see `llmspec deploy status`",
        )
    names = [name] if name is not None else sorted(live)
    if not names:
        click.echo("Nothing to destroy: no deployments run for this project.")
        return
    state = read_state(root)
    click.echo("llmspec destroy: these deployments are removed\n")
    for n in names:
        kind, lv = live[n]
        click.echo(f"  - {n}  {lv.url}/v1 ({kind})")
    heads = {d.get("head") for k, d in state["deployments"].items() if k not in names}
    for head_id, head in sorted(state["heads"].items()):
        if head_id not in heads:
            click.echo(f"  - the Ray head on port {head_id} (pid {head['pid']})")
    click.echo("")
    if not auto_approve:
        if not sys.stdin.isatty():
            raise LlmspecError.one(
                "E096",
                "destroy needs confirmation",
                Loc(path),
                "run it at a terminal, or pass --auto-approve",
            )
        click.confirm("Destroy them?", abort=True)
    errors = {}
    with RunLock(root).held():
        for n in names:
            error = destroy_one(root, n)
            if error is None:
                click.echo(f"Destroyed `{n}`.")
            else:
                errors[n] = error
    for n, error in errors.items():
        click.echo(f"error: could not destroy `{n}`: {error}", err=True)
    if errors:
        sys.exit(EXIT_ERROR)


# -- drift ----------------------------------------------------------------------------------------


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="json: schemas/drift.schema.json; markdown: a PR comment.",
)
@click.option(
    "--due",
    is_flag=True,
    help="Probe only models whose last probe is older than their `drift.every`.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@handle_errors
def drift(path: str, fmt: str, due: bool, out: str | None) -> None:
    """Has a model changed behind its name? Probe every remote model (its model id,
    system_fingerprint and canary answers at temperature 0) and compare with the lock; local
    models are compared by the hashes of their weights.

    Exit 0: no drift; 2: something moved (the stale jobs are listed; `llmspec apply` runs
    them again); 1: could not measure (a server did not answer, nothing recorded yet). Never
    writes the lock and never reuses a probe.

    \b
    Examples:
      llmspec drift specs/
      llmspec drift specs/ --format markdown --out drift.md   # a PR comment or an alert
      llmspec drift specs/ --due                              # from an hourly cron
    """
    import datetime as dt

    from llmspec import drift as D
    from llmspec.cli.run_cmds import compile_path, compile_resolved
    from llmspec.lock import read_lock

    resolved, graph, store = compile_path(path)
    lock = read_lock(graph.root)
    now = dt.datetime.now(dt.UTC)
    models = D.due(resolved.spec, graph.root, now) if due else None
    jobs = D.probe_jobs(graph, models)
    last = D.last_measured(graph.root)
    skipped = {}
    if models is not None:
        for job in D.probe_jobs(graph):
            m = job.id.removeprefix("drift.")
            if m not in models:
                skipped[m] = last.get(m, {})
    outcomes = D.probe(jobs)

    def recompile(served: dict[str, Any]) -> Any:
        return compile_resolved(resolved, store, served=served)

    report = D.compare(graph, lock, store, outcomes, recompile, now, skipped)
    report = D.with_local_models(report, graph, lock)
    D.record_measured(graph.root, {m.model: m for m in report.models})
    if fmt == "json":
        text = report.model_dump_json(indent=2) + "\n"
    elif fmt == "markdown":
        text = D.render_markdown(report)
    else:
        text = D.render_text(report)
    if out:
        from llmspec.fsutil import write_atomic

        write_atomic(out, text.encode())
    else:
        click.echo(text, nl=False)
    sys.exit(report.exit_code)
