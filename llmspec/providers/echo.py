"""The echo provider: returns the rendered prompt, so prompts can be reviewed without a model."""

from __future__ import annotations

from typing import Any

from llmspec.providers import CAPABILITIES, Request, Result


class EchoProvider:
    capabilities = CAPABILITIES["echo"]

    def __init__(self, spec: Any = None, weights: Any = None):
        self.spec = spec

    def generate(self, requests: list[Request]) -> list[Result]:
        out = []
        for r in requests:
            text = r.prompt if r.system is None else f"{r.system}\n\n{r.prompt}"
            out.append(Result(text, "stop", "checked" if r.constraint else "none"))
        return out
