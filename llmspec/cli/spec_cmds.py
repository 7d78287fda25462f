"""Commands about the spec language: `validate`, `schema`, `tiny-model`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from llmspec.cli import EXIT_ERROR, handle_errors, main
from llmspec.cli.output import diagnostics_json, project_summary
from llmspec.errors import LlmspecError, render


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
@handle_errors
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
            click.echo(json.dumps(diagnostics_json(e.diagnostics), indent=2))
            sys.exit(EXIT_ERROR)
        raise
    if fmt == "json":
        click.echo(json.dumps(diagnostics_json(resolved.warnings), indent=2))
        return
    if resolved.warnings:
        click.echo(render(resolved.warnings, allowed_root=resolved.root), err=True)
    if not quiet:
        click.echo(project_summary(resolved))


@main.command()
@click.option("--out", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option(
    "--artifact",
    type=click.Choice(["language", "plan", "lock", "results", "drift"]),
    default="language",
    show_default=True,
    help="Which schema: the spec language, or one of the files llmspec writes.",
)
@handle_errors
def schema(out: str | None, artifact: str) -> None:
    """Print the JSON Schema of the spec language (or of a plan, lock, results or drift file).

    Editors use it to complete and check spec files: start a spec with
    `# yaml-language-server: $schema=<path to llmspec.schema.json>`.

    \b
    Examples:
      llmspec schema > schemas/llmspec.schema.json
      llmspec schema --artifact results --out schemas/results.schema.json
    """
    text = json.dumps(artifact_schema(artifact), indent=2, sort_keys=True) + "\n"
    if out:
        from llmspec.fsutil import write_atomic

        write_atomic(out, text.encode())
    else:
        click.echo(text, nl=False)


def artifact_schema(artifact: str) -> dict[str, Any]:
    """The committed JSON Schema of `artifact` (see schemas/)."""
    if artifact == "plan":
        from llmspec.plan import plan_json_schema

        return plan_json_schema()
    if artifact == "lock":
        from llmspec.lock import json_schema as lock_schema

        return lock_schema()
    if artifact == "results":
        from llmspec.results import results_json_schema

        return results_json_schema()
    if artifact == "drift":
        from llmspec.drift import drift_json_schema

        return drift_json_schema()
    from llmspec.spec import json_schema

    return json_schema()


@main.command("tiny-model")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--arch", type=click.Choice(["gpt2", "llama"]), default="gpt2", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--layers", type=int, default=2, show_default=True)
@click.option("--hidden", type=int, default=64, show_default=True)
@click.option(
    "--positions", type=click.IntRange(16, 32768), default=512, show_default=True,
    help="Context length in tokens (large schemas need long outputs).",
)  # fmt: skip
@handle_errors
def tiny_model(out: str, arch: str, seed: int, layers: int, hidden: int, positions: int) -> None:
    """Build a tiny random-weight model with its own tokenizer, for tests and examples.

    The same options give byte-identical files; nothing is downloaded. An existing model built
    with the same options is kept as it is.

    \b
    Examples:
      llmspec tiny-model specs/models/tiny
      llmspec tiny-model /tmp/llama --arch llama --layers 4 --hidden 256 --positions 2048
    """
    from llmspec.tinymodel import build_tiny_model

    path = build_tiny_model(
        out, arch=arch, seed=seed, layers=layers, hidden=hidden, max_positions=positions
    )
    click.echo(
        f"tiny {arch} model ({layers} layers, {hidden} wide, {positions} positions, seed {seed}) "
        f"in {path}"
    )
