"""Commands that compile a project: `plan`, `apply`, `graph`, `report`."""

from __future__ import annotations

import functools
import sys
from typing import Any

import click

from llmspec.cli import EXIT_CHANGES, EXIT_ERROR, EXIT_GATES, EXIT_INTERRUPTED, handle_errors, main
from llmspec.errors import Diagnostic, LlmspecError, Loc, render


def compile_path(path: str, limit: int | None = None, lock: Any = "read") -> tuple[Any, Any, Any]:
    """Load, resolve and compile (against `lock`, read unless given: baselines come from it);
    the hash cache keeps weight hashing to once per file."""
    from llmspec.hashing import HashCache
    from llmspec.project import load_project, project_root
    from llmspec.store import Store

    store = Store(project_root(path))
    cache = HashCache(store.cache_path("hashes.json"))
    resolved = load_project(path, cache)
    return resolved, compile_resolved(resolved, store, limit, None, lock, cache), store


def compile_resolved(
    resolved: Any,
    store: Any,
    limit: int | None = None,
    served: Any = None,
    lock: Any = "read",
    cache: Any = None,
):
    """Compile a resolved project (`served`: fresh probe observations, see llmspec.drift)
    against `lock` (read unless given)."""
    from llmspec.compile import compile_project
    from llmspec.hashing import HashCache
    from llmspec.lock import read_lock

    if cache is None:
        cache = HashCache(store.cache_path("hashes.json"))
    old = read_lock(resolved.root) if isinstance(lock, str) else lock
    graph = compile_project(resolved, cache, old, limit, served)
    try:
        cache.save()
    except OSError:
        pass  # a read-only checkout still plans; it only hashes again next time
    return graph


def plan_for(graph: Any, store: Any, stored: set[str] | None = None, lock: Any = "read") -> Any:
    from llmspec.apply import stored_keys
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan
    from llmspec.targets import effects

    root = graph.root
    keys = stored_keys(graph, store) if stored is None else stored
    old = read_lock(root) if isinstance(lock, str) else lock
    return make_plan(graph, old, keys, lock_digest(root), effects(graph))


def refresh_graph(
    resolved: Any,
    graph: Any,
    store: Any,
    limit: int | None = None,
    models: set[str] | None = None,
    keep: bool = False,
    lock: Any = "read",
) -> tuple[Any, dict]:
    """Run the live probes and compile again with what they observed: (graph, outcomes).
    With `keep` (apply), successful probes are stored. `lock`: as for compile_resolved."""
    from llmspec.drift import observed, probe, probe_jobs

    jobs = probe_jobs(graph, models)
    if not jobs:
        return graph, {}
    outcomes = probe(jobs)
    if keep:
        for job_id, o in outcomes.items():
            if o.status == "done":
                job = graph.jobs[job_id]
                store.put(job.id, job.kind, job.key, o.output, o.meta | {"seconds": o.seconds})
    fresh = observed(graph, outcomes)
    if fresh:
        graph = compile_resolved(resolved, store, limit, fresh, lock)
    return graph, outcomes


def read_models(graph: Any, ids: set[str] | None = None) -> set[str]:
    """The models that the jobs (of `ids`, or all) read, besides their probes."""
    from llmspec.jobs import kind

    return {
        origin[1]
        for job in graph.jobs.values()
        if (ids is None or job.id in ids) and kind(job.kind).cache != "always"
        for origin in job.origin.values()
        if origin[0] == "models"
    }


def _probe_notes(outcomes: dict) -> None:
    for job_id, o in outcomes.items():
        if o.status != "done":
            click.echo(f"note: {job_id} could not measure: {o.error}", err=True)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="json: a schema-checked document; markdown: a PR comment.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for `apply`.")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.",
)
@click.option(
    "--locked",
    is_flag=True,
    help="Fail (exit 1) when llmspec.lock is out of date with the spec, or inconsistent "
    "(edited by hand), for CI.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Probe remote models first (`<=` jobs) and plan with what they say now: jobs that "
    "read a model that drifted show as `~`.",
)
@handle_errors
def plan(
    path: str, fmt: str, out: str | None, detailed_exitcode: bool, locked: bool, refresh: bool
) -> None:
    """Show what apply would run, and why.

    Each job is marked `+` new, `~` must re-run (with the inputs that changed), `-` no longer
    in the spec, `*` result missing from this machine's .llmspec/ store (or a deployment that
    does not run the version the lock records), or `<=` a live probe that runs on every apply.

    \b
    Examples:
      llmspec plan specs/
      llmspec plan specs/ --refresh           # with what remote models say they are now
      llmspec plan specs/ --format markdown > plan.md
      llmspec plan specs/ --out plan.json && llmspec apply specs/ --plan plan.json
      llmspec plan specs/ --locked            # in CI: is the lock current, and whole?
    """
    from llmspec.fsutil import write_atomic
    from llmspec.lock import LOCK_NAME
    from llmspec.plan import render_markdown, render_text, to_saved

    resolved, graph, store = compile_path(path)
    if refresh:
        graph, outcomes = refresh_graph(resolved, graph, store)
        _probe_notes(outcomes)
    the_plan = plan_for(graph, store)
    saved = to_saved(the_plan)
    if out:
        write_atomic(out, (saved.model_dump_json(indent=2) + "\n").encode())
    if fmt == "json":
        click.echo(saved.model_dump_json(indent=2))
    elif fmt == "markdown":
        click.echo(render_markdown(the_plan), nl=False)
    else:
        click.echo(render_text(the_plan), nl=False)
    stale = [c for c in the_plan.changes if c.action not in ("restore", "read")]
    if locked:
        from llmspec.lock import read_lock
        from llmspec.verify import verify_lock

        lock = read_lock(graph.root)
        problems = verify_lock(lock, str(graph.root / LOCK_NAME), graph, store) if lock else []
        if problems:
            click.echo(render(problems, allowed_root=graph.root), err=True)
            sys.exit(EXIT_ERROR)
    if locked and (stale or the_plan.lock_changes):
        n = len(stale) + len(the_plan.lock_changes)
        diag = Diagnostic(
            "E085",
            f"llmspec.lock is out of date with the spec ({n} change{'s' if n != 1 else ''})",
            Loc(str(graph.root / LOCK_NAME)),
            "run `llmspec apply` and commit llmspec.lock",
        )
        click.echo(render([diag], allowed_root=graph.root), err=True)
        sys.exit(EXIT_ERROR)
    if detailed_exitcode and not the_plan.empty:
        sys.exit(EXIT_CHANGES)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Apply exactly this saved plan; refused if the project or lock moved since.",
)
@click.option(
    "--runner",
    "runner_name",
    envvar="LLMSPEC_RUNNER",
    default=None,
    help="`local`: an embedded Ray (or the cluster in RAY_ADDRESS); `inline`: this process, "
    "no Ray; NAME: the profile runners/NAME.yaml. Also LLMSPEC_RUNNER. Not given: `local`, "
    "but a small plan (one model replica, at most 256 generations) runs inline.",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="SUITE",
    help="Run only this suite and what it needs (repeatable), like Terraform's -target; "
    "everything else keeps its entry in the lock.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    metavar="N",
    help="A smoke run over the first N rows of each dataset; llmspec.lock is not written.",
)
@click.option(
    "--lock",
    "lock_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Roll back: ship the deployments OLD.lock records, from the store, running nothing.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
@handle_errors
def apply(
    path: str,
    plan_file: str | None,
    runner_name: str | None,
    quiet: bool,
    only: tuple[str, ...],
    limit: int | None,
    lock_file: str | None,
) -> None:
    """Run what the plan says, store each result as it lands, write llmspec.lock.

    Live probes (`<=`: the model id, fingerprint and canary answers of remote models) run
    first; jobs that read a model that drifted run again. A second apply right after does
    nothing. An interrupted apply (Ctrl-C, a crash) keeps every finished job; the next apply
    resumes. Deployments that keep running (Ray Serve) are shipped once the lock is written,
    and removed when they leave the spec. Ends with a summary per suite: rows, errors by cause,
    each metric, each gate. Exit 0 when everything ran and every gate passed, 1 when a job
    failed, 3 when a suite's gate failed, 130 when interrupted.

    With `--lock OLD.lock`, apply rolls back: it ships the deployments OLD.lock records, each
    from its stored result, and runs nothing; llmspec.lock is not written (it still records
    the spec), so plan shows them as `*` until the spec and lock are rolled back too.

    \b
    Examples:
      llmspec apply specs/
      llmspec apply specs/ --plan plan.json
      llmspec apply specs/ --runner inline     # no Ray: debugging, small projects
      llmspec apply specs/ --runner local      # Ray, even for a small plan
      llmspec apply specs/ --only quality --limit 20   # iterate on one suite, quickly
      llmspec apply specs/ --lock old.lock     # roll deployments back to what old.lock records
      RAY_ADDRESS=127.0.0.1:6379 llmspec apply specs/
    """
    from llmspec.apply import apply_plan, check_saved_plan, jobs_to_run, stored_keys
    from llmspec.cli.output import apply_line, deploy_lines, failure_diagnostics
    from llmspec.cli.progress import Progress
    from llmspec.hub.history import recording, spec_snapshot
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import SavedPlan, render_text, to_saved
    from llmspec.project import project_root
    from llmspec.report.text import render as render_results
    from llmspec.results import collect_results
    from llmspec.store import RunLock

    if lock_file:
        if plan_file or only or limit:
            raise click.UsageError(
                "--lock rolls back deployments: not with --plan, --only, --limit"
            )
        from llmspec.cli.serve_cmds import rollback

        sys.exit(rollback(path, lock_file, quiet))
    old_lock = read_lock(project_root(path))
    resolved, graph, store = compile_path(path, limit, old_lock)
    targets = _only(graph, only)
    root = graph.root
    with RunLock(root).held() as run_lock:
        if run_lock.previous is not None and not quiet:
            prev = run_lock.previous
            click.echo(
                f"note: a previous apply (pid {prev.pid} on {prev.host}, since "
                f"{prev.since}) did not finish; resuming",
                err=True,
            )
        # Probes first: what they observe is part of the keys of the jobs reading their model.
        # A smoke run and a saved plan keep what the lock recorded.
        outcomes: dict[str, Any] = {}
        if not plan_file and limit is None:
            models = read_models(graph, targets)
            graph, outcomes = refresh_graph(
                resolved, graph, store, limit, models, keep=True, lock=old_lock
            )
        if targets is not None:
            targets = _only(graph, only) | set(outcomes)
        stored = stored_keys(graph, store)
        the_plan = plan_for(graph, store, stored, old_lock)
        if targets is not None:
            the_plan = _targeted(the_plan, targets)
        if plan_file:
            check_saved_plan(_read_saved(plan_file, SavedPlan), graph, lock_digest(root), plan_file)
        probed = outcomes if not plan_file else None
        jobs, _ = jobs_to_run(the_plan, graph, stored, targets, probed is not None)
        runner, used, runner_line = _runner(runner_name, root, jobs)
        spec_files = spec_snapshot(resolved.sources.files, root)
        warn = functools.partial(click.echo, err=True)
        saved = to_saved(the_plan).model_dump()
        start = {"project": graph.project, "plan": saved, "runner": used}
        with recording(root, **start, spec_files=spec_files, warn=warn) as run:
            try:
                if jobs:
                    runner.prepare(jobs, root)  # Ray starts while the plan is printed
                if not quiet:
                    click.echo(render_text(the_plan), nl=False)
                    if jobs:
                        click.echo(runner_line, err=True)
                with Progress(graph, the_plan, quiet) as progress:
                    on_event = run.listen(graph, progress)
                    for job_id, o in outcomes.items():
                        on_event(o.status, job_id, o)
                    report = apply_plan(
                        the_plan,
                        graph,
                        store,
                        runner,
                        on_event,
                        stored,
                        targets,
                        probed,
                        old_lock,
                    )
            finally:
                runner.close()
            lock = report.lock
            suites = lock.suites.items() if lock else []
            failing = sorted(n for n, s in suites if not s.get("passed"))
            results = collect_results(graph, store, lock, resolved.spec)
            if targets is not None:
                results = results.model_copy(
                    update={"suites": [s for s in results.suites if s.name in only]}
                )
            run.finish_apply(report, results, failing, root)
    if limit is not None:
        click.echo(
            f"\nSmoke run: the first {limit} rows of each dataset; llmspec.lock is not written."
        )
    if results.suites:
        click.echo("")
        click.echo(render_results(results), nl=False)
    problems = failure_diagnostics(report, graph)
    if problems:
        click.echo(render(problems, allowed_root=root), err=True)
    for line in deploy_lines(report):
        click.echo(line)
    click.echo(apply_line(report, failing))
    if report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if not report.ok:
        sys.exit(EXIT_ERROR)
    if failing:
        sys.exit(EXIT_GATES)


def _only(graph: Any, only: tuple[str, ...]) -> set[str] | None:
    """The jobs `--only SUITE` runs: the suite's gate and everything it depends on."""
    if not only:
        return None
    from llmspec.errors import did_you_mean

    suites = {j.id.removeprefix("gate."): j.id for j in graph.jobs.values() if j.kind == "gate"}
    unknown = [s for s in only if s not in suites]
    if unknown:
        raise LlmspecError.one(
            "E020",
            f"`--only {unknown[0]}`: no suite of that name",
            Loc("--only"),
            did_you_mean(unknown[0], suites),
        )
    return graph.closure({suites[s] for s in only})


def _targeted(plan: Any, targets: set[str]) -> Any:
    from dataclasses import replace

    kept = tuple(c for c in plan.changes if c.job_id in targets)
    return replace(plan, changes=kept, lock_changes=())


def _read_saved(plan_file: str, cls: Any) -> Any:
    from pydantic import ValidationError

    try:
        with open(plan_file, encoding="utf-8") as fh:
            return cls.model_validate_json(fh.read())
    except (ValidationError, ValueError, OSError):
        raise LlmspecError.one(
            "E082",
            "not a plan file written by `llmspec plan --out`",
            Loc(plan_file),
            "save a plan with `llmspec plan PATH --out plan.json`",
        ) from None


def _runner(name: str | None, root: Any, jobs: list[Any]) -> tuple[Any, str, str]:
    """The runner `--runner NAME` names; without one, `local`, unless the plan is small and
    `local` is an embedded Ray (no RAY_ADDRESS): then this process. Returns the runner, the
    profile's name and the line apply prints about it."""
    import os

    from llmspec.runner import make_runner, small_plan
    from llmspec.runner.profile import describe, load_profile

    profile_name = name or "local"
    profile = load_profile(profile_name, root)
    line = describe(profile, profile_name)
    cluster = bool(os.environ.get("RAY_ADDRESS"))
    if name is None and jobs and profile.runner == "ray" and profile.embedded and not cluster:
        why = small_plan(jobs)
        if why is not None:
            profile = profile.model_copy(update={"runner": "inline"})
            profile_name = "inline"
            line = f"note: running inline: small plan ({why}); `--runner local` runs it on Ray"
    runner = make_runner(profile.runner, profile=profile, where=f"--runner {name or 'local'}")
    return runner, profile_name, line


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@handle_errors
def graph(path: str, fmt: str) -> None:
    """Print the job graph as Mermaid or Graphviz DOT, marked with the plan's actions.

    \b
    Examples:
      llmspec graph specs/                      # paste into a Markdown ```mermaid block
      llmspec graph specs/ --format dot | dot -Tsvg > graph.svg
    """
    from llmspec.graphviz import render_dot, render_mermaid

    _, g, store = compile_path(path)
    actions = {c.job_id: c.symbol for c in plan_for(g, store).changes}
    click.echo((render_mermaid if fmt == "mermaid" else render_dot)(g, actions), nl=False)


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json", "junit", "html"]),
    default="text",
    show_default=True,
    help="text: tables; markdown: a PR comment; json: schemas/results.schema.json; junit: CI; "
    "html: one self-contained page with charts.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option(
    "--run",
    "run_id",
    type=int,
    metavar="ID",
    help="Render run ID of the history (`llmspec runs` lists them) instead of the current one.",
)
@handle_errors
def report(path: str, fmt: str, out: str | None, run_id: int | None) -> None:
    """Show the results of the project's suites: per variant the rows, errors, metrics and
    gates; per row the input, output, reference and scores (json).

    Results come from this machine's .llmspec/ store; where it lacks them (a fresh checkout)
    the lock's record is shown. Run `llmspec apply` first. `--run ID` renders the results an
    earlier apply recorded in the run history.

    \b
    Examples:
      llmspec report specs/
      llmspec report specs/ --format markdown > results.md
      llmspec report specs/ --format junit --out results.xml
      llmspec report specs/ --format html --out report.html
      llmspec report specs/ --run 3 --format markdown
    """
    from llmspec.report import render as render_report

    if run_id is not None:
        from llmspec.cli.hub_cmds import recorded_results

        results = recorded_results(path, run_id)
    else:
        from llmspec.lock import read_lock
        from llmspec.results import collect_results

        resolved, g, store = compile_path(path)
        results = collect_results(g, store, read_lock(g.root), resolved.spec)
    text = render_report(results, fmt)
    if out:
        from llmspec.fsutil import write_atomic

        write_atomic(out, text.encode())
    else:
        click.echo(text, nl=False)


__all__ = ["EXIT_ERROR", "apply", "graph", "plan", "report"]
