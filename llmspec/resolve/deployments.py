"""Deployments: what they ship, what must pass first, and their target's own checks."""

from __future__ import annotations

import importlib
from typing import Any


def check_deployments(c: Any) -> None:
    from llmspec.targets import TARGETS

    for name, dep in c.p.deployments.items():
        base = ("deployments", name)
        c.ref("models", dep.model, base + ("model",))
        c.ref("prompts", dep.prompt, base + ("prompt",))
        for i, s in enumerate(dep.requires):
            c.ref("suites", s, base + ("requires", i))
        for i, s in enumerate(dep.after):
            c.ref("deployments", s, base + ("after", i))
        if dep.target is not None:
            check = TARGETS[dep.target.kind].check
            if check:
                module, _, attr = check.partition(":")
                getattr(importlib.import_module(module), attr)(c, name, dep.target)
