"""The llmspec command line: parse, call one stage function, render.

Commands live in modules by what they touch (`spec_cmds`: the language; `run_cmds`: plan,
apply, graph, report; `lock_cmds`: lockfiles; `hub_cmds`: the run history and the hub);
rendering and progress have modules of their own. Heavy libraries (ray, torch, transformers,
guidance) are imported inside the commands that run models, never at import time: `validate`,
`plan` and `--help` stay fast; the web stack is imported inside `view` only.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from llmspec import __version__
from llmspec.errors import LlmspecError, render

EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_GATES = 3
EXIT_INTERRUPTED = 130


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn llmspec errors into rendered diagnostics and exit 1; never show a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LlmspecError as e:
            click.echo(render(e.diagnostics, allowed_root=_root_of(kwargs)), err=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
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


def _root_of(kwargs: dict[str, Any]) -> Any:
    """The project folder of a command: diagnostics show lines of files inside it only, never
    of a file a hostile project links to (it could hold secrets)."""
    from llmspec.project import project_root

    path = kwargs.get("path") or kwargs.get("project")
    return project_root(path) if path else "."


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="llmspec")
def main() -> None:
    """Terraform for LLM operations.

    Describe models, prompts, output schemas, knowledge sources, datasets, test suites and
    deployments in YAML; validate them, review the plan, apply it, audit the lock.

    \b
    Examples:
      llmspec validate specs/          check every spec file of a project
      llmspec plan specs/              what apply would run, and why
      llmspec apply specs/             run it; results go to the store and llmspec.lock
      llmspec report specs/            the suites' results as text, Markdown, JSON or JUnit
      llmspec lock diff --git HEAD~1   what changed in the lock, for an auditor
      llmspec redteam export safety specs/   the probes a red-team suite sends
      llmspec view specs/              the results hub: runs over time, compare two runs
      llmspec deploy status specs/     what runs on Ray Serve, from which lock
      llmspec drift specs/             has a remote model changed behind its name?
    """


from llmspec.cli import (  # noqa: E402,F401  (registers commands)
    hub_cmds,
    lock_cmds,
    redteam_cmds,
    run_cmds,
    serve_cmds,
    spec_cmds,
)

if __name__ == "__main__":
    main()
