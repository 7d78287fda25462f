"""Commands about red-team suites: `redteam export`."""

from __future__ import annotations

import json

import click

from llmspec.cli import handle_errors, main
from llmspec.errors import LlmspecError, Loc


@main.group()
def redteam() -> None:
    """Red-team suites: review the probes a suite sends."""


@redteam.command("export")
@click.argument("suite")
@click.argument("path", default=".", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "json"]),
    default="jsonl",
    show_default=True,
    help="jsonl: one probe a line; json: a document with the probe set's version and digests.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@handle_errors
def export(suite: str, path: str, fmt: str, out: str | None) -> None:
    """Write the probes red-team suite SUITE sends, exactly as apply sends them.

    The set is expanded from llmspec's probe data with the suite's families, strategies,
    `per_family` and seed (the same seed gives the same probes); nothing is run. Each probe
    has its id (`family/base/strategy`), the text sent, the document it places in the context
    (if any) and what its detector looks for.

    \b
    Examples:
      llmspec redteam export safety specs/
      llmspec redteam export safety specs/ --format json --out probes.json
    """
    from llmspec.cli.run_cmds import compile_path
    from llmspec.errors import did_you_mean
    from llmspec.hashing import digest
    from llmspec.jobs.probes import expand_inputs

    _, graph, _ = compile_path(path)
    jobs = [j for j in graph.jobs.values() if j.kind == "probes"]
    suites = sorted({j.id.split(".")[1] for j in jobs})
    mine = [j for j in jobs if j.id.split(".")[1] == suite]
    if not mine:
        raise LlmspecError.one(
            "E020",
            f"no red-team suite `{suite}`",
            Loc(path),
            did_you_mean(suite, suites) or "red-team suites have `kind: redteam`",
        )
    families = {j.inputs["family"]: (j, expand_inputs(j.inputs)) for j in mine}
    if fmt == "jsonl":
        text = "".join(
            json.dumps(p, ensure_ascii=False, sort_keys=True) + "\n"
            for _, probes in families.values()
            for p in probes
        )
    else:
        doc = {
            "suite": suite,
            "families": {
                family: {
                    "version": job.inputs["data"]["version"],
                    "data": job.inputs["data"]["digest"],
                    "digest": digest(probes),
                    "probes": probes,
                }
                for family, (job, probes) in families.items()
            },
        }
        text = json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    if out:
        from llmspec.fsutil import write_atomic

        write_atomic(out, text.encode())
        n = sum(len(p) for _, p in families.values())
        click.echo(f"{n} probes of suite {suite} written to {out}", err=True)
    else:
        click.echo(text, nl=False)
