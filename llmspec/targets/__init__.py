"""Deployment targets: one record per `target.kind`, read by the deploy job kind.

A record names the function that ships a manifest (`deploy(manifest, settings, local)`), the
checks `resolve` runs on the target's settings, and, like every spec value, its settings enter
the deploy job's key except the output-neutral ones (secret references).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TargetRecord:
    kind: str
    deploy: str  # "module:function": (manifest, settings, local) -> (output, meta)
    check: str | None = None  # "module:function" run by resolve: check(checker, name, target)
    description: str = ""

    def run(self, manifest: dict[str, Any], settings: dict[str, Any], local: dict[str, Any]):
        module, _, attr = self.deploy.partition(":")
        fn: Callable[..., Any] = getattr(importlib.import_module(module), attr)
        return fn(manifest, settings, local)


TARGETS: dict[str, TargetRecord] = {
    "export": TargetRecord(
        "export",
        "llmspec.targets.export:deploy",
        "llmspec.targets.export:check",
        "write the manifest to a file in the project",
    ),
    "http": TargetRecord(
        "http",
        "llmspec.targets.http:deploy",
        "llmspec.targets.http:check",
        "POST the manifest to a URL",
    ),
}
