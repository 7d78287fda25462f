"""Commands about lockfiles: `lock diff`."""

from __future__ import annotations

from typing import Any

import click

from llmspec.cli import handle_errors, main
from llmspec.errors import LlmspecError


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
@handle_errors
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


@lock.command("verify")
@click.argument("path", default=".", type=click.Path())
@handle_errors
def lock_verify(path: str) -> None:
    """Check that llmspec.lock is consistent with itself (verdicts follow from values, every
    result section matches the digest its job recorded) and, where this machine's .llmspec/
    store holds the results, that every recorded output is the stored one.

    A lock alone cannot prove its values are true: it proves they were not edited after
    llmspec wrote them. Exit 0 when consistent, 1 with every problem otherwise.

    \b
    Examples:
      llmspec lock verify specs/
    """
    from llmspec.cli.run_cmds import compile_path
    from llmspec.errors import render
    from llmspec.lock import LOCK_NAME, read_lock
    from llmspec.verify import verify_lock

    _, graph, store = compile_path(path)
    where = str(graph.root / LOCK_NAME)
    lock = read_lock(graph.root)
    if lock is None:
        raise LlmspecError.one("E008", f"no lock at {where}", hint="run `llmspec apply` first")
    problems = verify_lock(lock, where, graph, store)
    if problems:
        click.echo(render(problems, allowed_root=graph.root), err=True)
        raise SystemExit(1)
    checked = sum(1 for j in graph.jobs.values() if store.get(j.key) is not None)
    click.echo(
        f"llmspec.lock is consistent ({len(lock.jobs)} jobs; {checked} checked against this "
        "machine's store)"
    )
