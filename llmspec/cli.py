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


if __name__ == "__main__":
    main()
