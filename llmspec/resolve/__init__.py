"""Stage 3: check everything that crosses a line of YAML, and resolve it.

Resolution is a tuple of checks (`CHECKS`), each a plain function over one `Checker` in its own
module: secret references, models, schemas, prompts, knowledge sources, datasets, models made by
jobs (fine-tuned, quantized), suites, deployments, drift probes, cycles. Each reports
diagnostics at `file:line:col` and records what later stages need (loaded schemas, dataset
columns, knowledge files, parsed gates) on the checker. Files are read here, never written; no
provider module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmspec.errors import Diagnostic, LlmspecError
from llmspec.gates import Gate
from llmspec.resolve.checker import Checker
from llmspec.resolve.cycles import check_cycles
from llmspec.resolve.datasets import check_datasets
from llmspec.resolve.deployments import check_deployments, check_drift
from llmspec.resolve.env import check_env_refs
from llmspec.resolve.knowledge import check_knowledge
from llmspec.resolve.made import check_made_models
from llmspec.resolve.models import check_models
from llmspec.resolve.prompts import check_prompts
from llmspec.resolve.schemas import check_schemas
from llmspec.resolve.suites import check_suites
from llmspec.spec import Project
from llmspec.validate import Sources, ValidProject

CHECKS = (
    check_env_refs,
    check_models,
    check_schemas,
    check_prompts,
    check_knowledge,
    check_datasets,
    check_made_models,
    check_suites,
    check_deployments,
    check_drift,
    check_cycles,
)
"""Run in order; later checks read what earlier ones recorded (schemas, columns)."""


@dataclass(frozen=True)
class ResolvedProject:
    """A project whose references, schemas, templates and files are all known to be good."""

    spec: Project
    sources: Sources
    root: Path
    schemas: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, frozenset[str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    knowledge_files: dict[str, tuple[Path, ...]] = field(default_factory=dict)
    scans: dict[str, Any] = field(default_factory=dict)  # dataset -> data.Scan of its file
    gates: dict[str, tuple[Gate, ...]] = field(default_factory=dict)
    metrics: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    correct: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    redteam: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: tuple[Diagnostic, ...] = ()

    def constraint(self, prompt: str) -> Any:
        """A prompt's output constraint (`llmspec.constraints.Constraint`), or None."""
        from llmspec.constraints import from_output

        out = self.spec.prompts[prompt].output
        if out is None:
            return None
        data = out.model_dump(mode="json", by_alias=True)
        return from_output(data, self.schemas.get(out.schema_) if out.schema_ else None)


def resolve_project(
    vp: ValidProject, root: str | Path | None = None, cache: Any = None
) -> ResolvedProject:
    """Run every check; raise with every problem found, warnings included. `cache` (a
    `HashCache`) spares reading dataset files whose content was read before."""
    root = Path(root) if root is not None else vp.sources.root
    c = Checker(vp, root, cache)
    for check in CHECKS:
        check(c)
    if c.diags:
        raise LlmspecError(sorted(c.diags + c.warnings, key=Diagnostic.sort_key))
    return ResolvedProject(
        spec=vp.spec,
        sources=vp.sources,
        root=root,
        schemas=c.schemas,
        columns=c.columns,
        row_counts=c.counts,
        knowledge_files=c.knowledge_files,
        scans=c.scans,
        gates=c.gates,
        metrics={k: tuple(m for m in v if m) for k, v in c.metrics.items()},
        correct=c.correct,
        redteam=c.redteam,
        warnings=tuple(sorted(c.warnings, key=Diagnostic.sort_key)),
    )
