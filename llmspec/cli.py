"""The llmspec command line: parse, call one stage function, render.

Heavy libraries (ray, torch, transformers, guidance) are imported inside the commands that run
models, never at import time: `validate`, `plan` and `--help` stay fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from llmspec import __version__
from llmspec.errors import LlmspecError, render

EXIT_ERROR = 1


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn llmspec errors into rendered diagnostics and exit 1; never show a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LlmspecError as e:
            click.echo(render(e.diagnostics), err=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as e:  # a bug in llmspec: say so plainly
            if os.environ.get("LLMSPEC_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(e).__name__}: {e}\n"
                "  = hint: this is a bug in llmspec; rerun with LLMSPEC_DEBUG=1 for the traceback",
                err=True,
            )
            sys.exit(EXIT_ERROR)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="llmspec")
def main() -> None:
    """Terraform for LLM operations.

    Describe models, prompts, output schemas, knowledge sources, datasets, test suites and
    deployments in YAML; validate them, review the plan, apply it, audit the lock.

    \b
    Examples:
      llmspec validate specs/          check every spec file of a project
      llmspec schema > llmspec.json    the JSON Schema of the spec language
      llmspec tiny-model models/tiny   build a tiny local model for tests
    """


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="Print nothing when the project is valid.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints the diagnostics as a JSON list.",
)
@_handle_errors
def validate(path: str, quiet: bool, fmt: str) -> None:
    """Check a project and report every problem at once.

    PATH is a spec file or a folder whose *.yaml files form one project (default: the current
    folder). Exits 0 when the project is valid, 1 when it is not. Each problem is printed as
    `file:line:col: error[CODE]: message` with the offending line and a hint.

    \b
    Examples:
      llmspec validate specs/
      llmspec validate specs/llmspec.yaml --format json
    """
    from llmspec.project import load_project

    try:
        resolved = load_project(path)
    except LlmspecError as e:
        if fmt == "json":
            click.echo(json.dumps([_diag_json(d) for d in e.diagnostics], indent=2))
            sys.exit(EXIT_ERROR)
        raise
    if fmt == "json":
        click.echo(json.dumps([_diag_json(d) for d in resolved.warnings], indent=2))
        return
    if resolved.warnings:
        click.echo(render(resolved.warnings), err=True)
    if not quiet:
        click.echo(summary(resolved))


def _diag_json(d: Any) -> dict[str, Any]:
    loc = d.loc
    return {
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "file": loc.file if loc else None,
        "line": loc.line if loc else None,
        "col": loc.col if loc else None,
        "hint": d.hint,
        "notes": list(d.notes),
    }


def summary(resolved: Any) -> str:
    """What a valid project declares, in a few lines."""
    p = resolved.spec

    def count(n: int, word: str, plural: str | None = None) -> str:
        return f"{n} {word if n == 1 else (plural or word + 's')}"

    lines = [f"{p.name}: valid ({count(len(resolved.sources.files), 'file')})"]
    rows = []
    for name, m in p.models.items():
        where = getattr(m, "path", None) or getattr(m, "model", None) or ""
        rows.append(("model", name, f"{m.provider} {where}".strip()))
    for name in p.schemas:
        rows.append(("schema", name, "JSON Schema"))
    for name, pr in p.prompts.items():
        out = pr.output
        kind = (
            f"-> schema {out.schema_}"
            if out and out.schema_
            else "-> regex"
            if out and out.regex
            else f"-> one of {len(out.choice)} choices"
            if out and out.choice
            else "free text"
        )
        rows.append(("prompt", name, kind))
    for name, k in p.knowledge.items():
        src = k.source.path or f"dataset {k.source.dataset}"
        rows.append(("knowledge", name, f"{src}, top {k.top_k}, {k.embed}"))
    for name, d in p.datasets.items():
        n = resolved.row_counts.get(name)
        src = d.path or f"generated from {d.generate.from_}"
        rows.append(("dataset", name, f"{src}" + (f", {count(n, 'row')}" if n is not None else "")))
    for name, s in p.suites.items():
        rows.append(
            (
                "suite",
                name,
                f"{s.prompt} x {', '.join(s.models)} on {s.dataset}; "
                f"{count(len(s.metrics), 'metric')}, {count(len(s.gates), 'gate')}",
            )
        )
    for name, d in p.deployments.items():
        req = f" after {', '.join(d.requires)}" if d.requires else ""
        rows.append(("deployment", name, f"{d.model} + {d.prompt}{req}"))
    w0 = max((len(r[0]) for r in rows), default=0)
    w1 = max((len(r[1]) for r in rows), default=0)
    lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


@main.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@_handle_errors
def schema(out: str | None) -> None:
    """Print the JSON Schema of the spec language.

    Editors use it to complete and check spec files: start a spec with
    `# yaml-language-server: $schema=<path to llmspec.schema.json>`.

    \b
    Examples:
      llmspec schema > schemas/llmspec.schema.json
    """
    from llmspec.spec import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out:
        from llmspec.fsutil import write_atomic

        write_atomic(out, text.encode())
    else:
        click.echo(text, nl=False)


@main.command("tiny-model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--arch", type=click.Choice(["gpt2", "llama"]), default="gpt2", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layers", type=int, default=2, show_default=True)
@click.option("--hidden", type=int, default=64, show_default=True)
@_handle_errors
def tiny_model(out: str, arch: str, seed: int, layers: int, hidden: int) -> None:
    """Build a tiny random-weight model with its own tokenizer, for tests and examples.

    The same options give byte-identical files; nothing is downloaded. An existing model built
    with the same options is kept as it is.

    \b
    Examples:
      llmspec tiny-model specs/models/tiny
      llmspec tiny-model /tmp/llama --arch llama --layers 4 --hidden 256
    """
    from llmspec.tinymodel import build_tiny_model

    path = build_tiny_model(out, arch=arch, seed=seed, layers=layers, hidden=hidden)
    click.echo(f"tiny {arch} model ({layers} layers, {hidden} wide, seed {seed}) in {path}")


def _compile(path: str) -> tuple[Any, Any, Any]:
    """Load, resolve and compile; the hash cache keeps weight hashing to once per file."""
    from llmspec.compile import compile_project
    from llmspec.hashing import HashCache
    from llmspec.project import load_project
    from llmspec.store import Store

    resolved = load_project(path)
    store = Store(resolved.root)
    cache = HashCache(store.cache_path("hashes.json"))
    graph = compile_project(resolved, cache)
    try:
        cache.save()
    except OSError:
        pass  # a read-only checkout still plans; it only hashes again next time
    return resolved, graph, store


def _make_plan(graph: Any, store: Any) -> Any:
    from llmspec.lock import lock_digest, read_lock
    from llmspec.plan import make_plan

    root = graph.resolved.root
    return make_plan(graph, read_lock(root), store.keys(), lock_digest(root))


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
    help="Fail (exit 1) when llmspec.lock is out of date with the spec (for CI).",
)
@_handle_errors
def plan(path: str, fmt: str, out: str | None, detailed_exitcode: bool, locked: bool) -> None:
    """Show what apply would run, and why.

    Each job is marked `+` new, `~` must re-run (with the inputs that changed), `-` no longer
    in the spec, or `*` result missing from this machine's .llmspec/ store.

    \b
    Examples:
      llmspec plan specs/
      llmspec plan specs/ --format markdown > plan.md
      llmspec plan specs/ --out plan.json && llmspec apply specs/ --plan plan.json
      llmspec plan specs/ --locked            # in CI: is the lock current?
    """
    from llmspec.fsutil import write_atomic
    from llmspec.plan import render_markdown, render_text, to_saved

    _, graph, store = _compile(path)
    the_plan = _make_plan(graph, store)
    saved = to_saved(the_plan)
    if out:
        write_atomic(out, (saved.model_dump_json(indent=2) + "\n").encode())
    if fmt == "json":
        click.echo(saved.model_dump_json(indent=2))
    elif fmt == "markdown":
        click.echo(render_markdown(the_plan), nl=False)
    else:
        click.echo(render_text(the_plan), nl=False)
    stale = [c for c in the_plan.changes if c.action != "restore"] or the_plan.lock_changes
    if locked and stale:
        click.echo(
            "error: llmspec.lock is out of date with the spec\n"
            "  = hint: run `llmspec apply` and commit llmspec.lock",
            err=True,
        )
        sys.exit(EXIT_ERROR)
    if detailed_exitcode and not the_plan.empty:
        sys.exit(2)


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
    default="local",
    show_default=True,
    help="`local`: an embedded Ray (or the cluster in RAY_ADDRESS); `inline`: this process, "
    "no Ray; NAME: the profile runners/NAME.yaml. Also LLMSPEC_RUNNER.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
@_handle_errors
def apply(path: str, plan_file: str | None, runner_name: str, quiet: bool) -> None:
    """Run what the plan says, store each result as it lands, write llmspec.lock.

    A second apply right after does nothing. An interrupted apply (Ctrl-C, a crash) keeps every
    finished job; the next apply resumes. Exit 0 when everything ran and every gate passed,
    1 when a job failed, 3 when a suite's gate failed.

    \b
    Examples:
      llmspec apply specs/
      llmspec apply specs/ --plan plan.json
      llmspec apply specs/ --runner inline     # no Ray: debugging, small projects
      RAY_ADDRESS=ray://head:10001 llmspec apply specs/ --runner local
    """
    from llmspec.apply import apply_plan, check_saved_plan
    from llmspec.lock import lock_digest
    from llmspec.plan import SavedPlan, render_text
    from llmspec.store import RunLock

    _, graph, store = _compile(path)
    root = graph.resolved.root
    with RunLock(root).held() as run_lock:
        if run_lock.previous is not None and not quiet:
            prev = run_lock.previous
            click.echo(
                f"note: a previous apply (pid {prev.pid} on {prev.host}, since "
                f"{prev.since}) did not finish; resuming",
                err=True,
            )
        the_plan = _make_plan(graph, store)
        if plan_file:
            from pydantic import ValidationError

            try:
                saved = SavedPlan.model_validate_json(open(plan_file, encoding="utf-8").read())
            except (ValidationError, ValueError):
                raise LlmspecError.one(
                    "E082",
                    "not a plan file written by `llmspec plan --out`",
                    None,
                ) from None
            check_saved_plan(saved, graph, lock_digest(root), plan_file)
        if not quiet:
            click.echo(render_text(the_plan), nl=False)
        runner = _runner(runner_name, root)
        try:
            with _Progress(graph, the_plan, quiet) as progress:
                report = apply_plan(the_plan, graph, store, runner, progress)
        finally:
            runner.close()
    lock = report.lock
    failing = sorted(name for name, s in (lock.suites.items() if lock else []) if not s.passed)
    click.echo(_apply_summary(report, failing))
    if report.interrupted:
        sys.exit(130)
    if not report.ok:
        sys.exit(EXIT_ERROR)
    if failing:
        sys.exit(3)


def _runner(name: str, root: Any) -> Any:
    from llmspec.runner import make_runner
    from llmspec.runner.profile import load_profile

    profile = load_profile(name, root)
    return make_runner(profile.runner, profile=profile, where=f"--runner {name}")


class _Progress:
    """Jobs and rows as they finish: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self, graph: Any, plan: Any, quiet: bool):
        self.quiet = quiet
        self.graph = graph
        jobs = [graph.jobs[j] for j in plan.to_run]
        self.rows = {j.id: _rows_of(j) for j in jobs}
        self.bar: Any = None
        if not quiet and sys.stderr.isatty() and jobs:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self.jobs_task = self.bar.add_task("jobs", total=len(jobs))
            self.rows_task = self.bar.add_task("rows", total=sum(self.rows.values()) or None)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, kind: str, job_id: str, outcome: Any) -> None:
        if kind == "start":
            return
        if self.bar is not None:
            self.bar.advance(self.jobs_task)
            if kind in ("done", "reused"):
                self.bar.advance(self.rows_task, self.rows.get(job_id, 0))
            if outcome is not None and outcome.error:
                self.bar.console.print(f"[red]{job_id}: {kind}[/red]: {outcome.error}")
            return
        if self.quiet and kind in ("done", "reused"):
            return
        mark = {
            "done": "ok",
            "reused": "ok (stored)",
            "failed": "FAILED",
            "skipped": "skipped",
            "blocked": "blocked",
        }[kind]
        secs = f" {outcome.seconds:.2f}s" if outcome is not None and kind == "done" else ""
        line = f"  {job_id}: {mark}{secs}"
        if outcome is not None and outcome.error:
            line += f"\n      {outcome.error}"
        click.echo(line, err=kind in ("failed", "skipped", "blocked"))


def _rows_of(job: Any) -> int:
    p = job.params
    if job.kind == "generate":
        return (p["end"] - p["start"]) * p["repeats"]
    return 0


def _apply_summary(report: Any, failing: list[str]) -> str:
    parts = [f"{len(report.done)} ran", f"{len(report.reused)} reused"]
    for name in ("failed", "skipped", "blocked"):
        n = len(getattr(report, name))
        if n:
            parts.append(f"{n} {name}")
    text = "Apply: " + ", ".join(parts) + "."
    text += " llmspec.lock updated." if report.lock_written else " llmspec.lock unchanged."
    if failing:
        text += f"\nGates failed: {', '.join(failing)}."
    if report.interrupted:
        text += "\nInterrupted: finished jobs are kept; run apply again to resume."
    return text


@main.command()
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@_handle_errors
def graph(path: str, fmt: str) -> None:
    """Print the job graph as Mermaid or Graphviz DOT, marked with the plan's actions.

    \b
    Examples:
      llmspec graph specs/                      # paste into a Markdown ```mermaid block
      llmspec graph specs/ --format dot | dot -Tsvg > graph.svg
    """
    from llmspec.graphviz import render_dot, render_mermaid

    _, g, store = _compile(path)
    actions = {c.job_id: c.symbol for c in _make_plan(g, store).changes}
    click.echo((render_mermaid if fmt == "mermaid" else render_dot)(g, actions), nl=False)


@main.group()
def lock() -> None:
    """Read and compare lockfiles."""


@lock.command("diff")
@click.argument("old", required=False, type=click.Path(dir_okay=False))
@click.argument("new", required=False, type=click.Path(dir_okay=False))
@click.option("--git", "rev", help="Compare the lock committed at REV with the working copy.")
@click.option(
    "--project",
    default=".",
    type=click.Path(),
    help="With --git: the project folder that holds llmspec.lock.",
)
@_handle_errors
def lock_diff(old: str | None, new: str | None, rev: str | None, project: str) -> None:
    """Explain what changed between two lockfiles: models, prompts, schemas, datasets,
    packages, and the results and gate verdicts that moved with them.

    \b
    Examples:
      llmspec lock diff old.lock llmspec.lock
      llmspec lock diff --git HEAD~1 --project specs/
    """
    from llmspec.lock import LOCK_NAME, parse_lock
    from llmspec.lockdiff import render_diff
    from llmspec.project import project_root

    if rev:
        if old or new:
            raise click.UsageError("give either two files or --git REV, not both")
        path = project_root(project) / LOCK_NAME
        old_text, old_name = _git_show(rev, path), f"{rev}:{path.as_posix()}"
        new_text, new_name = _read(path), path.as_posix()
    else:
        if not (old and new):
            raise click.UsageError("give two lockfiles, or --git REV")
        old_text, old_name = _read(old), old
        new_text, new_name = _read(new), new
    click.echo(
        render_diff(
            parse_lock(old_text, old_name), parse_lock(new_text, new_name), old_name, new_name
        ),
        nl=False,
    )


def _read(path: Any) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as e:
        raise LlmspecError.one("E008", f"cannot read {path}: {e.strerror}") from None


def _git_show(rev: str, path: Any) -> str:
    import subprocess
    from pathlib import Path

    p = Path(path).resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=p.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        rel = p.relative_to(Path(top).resolve()).as_posix()
        return subprocess.run(
            ["git", "show", f"{rev}:{rel}"], cwd=top, capture_output=True, text=True, check=True
        ).stdout
    except (subprocess.CalledProcessError, FileNotFoundError, ValueError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise LlmspecError.one(
            "E008",
            f"cannot read {path} at {rev} from git: {detail.strip()}",
            hint="is the lock committed at that revision?",
        ) from None


if __name__ == "__main__":
    main()
