"""Model providers: one small protocol, capabilities as data, implementations loaded lazily.

A provider turns a batch of `Request`s into `Result`s. What it can guarantee is declared here
as data, so `compile` can refuse a constraint a provider cannot honour without importing it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Guarantee = Literal["token", "provider", "checked", "none"]
"""token: enforced by token masks; provider: enforced by the server; checked: validated after
the fact only; none: no constraint was asked for."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    json_schema: bool = False
    regex: bool = False
    choice: bool = False
    logprobs: bool = False
    seed: bool = False
    guarantee: Guarantee = "checked"
    remote: bool = False  # errors may be transient: a shard with failed rows is not stored


CAPABILITIES: dict[str, Capabilities] = {
    "transformers": Capabilities(True, True, True, True, True, "token"),
    "llamacpp": Capabilities(True, True, True, False, True, "token"),
    "openai": Capabilities(True, False, False, True, True, "provider", remote=True),
    "echo": Capabilities(False, False, False, False, True, "checked"),
}

REGISTRY: dict[str, str] = {
    "echo": "llmspec.providers.echo:EchoProvider",
    "transformers": "llmspec.providers.hf:TransformersProvider",
    "openai": "llmspec.providers.openai:OpenAIProvider",
    "llamacpp": "llmspec.providers.llamacpp:LlamaCppProvider",
}


@dataclass(frozen=True, slots=True)
class Request:
    """One generation: the rendered messages, the output constraint and decoding parameters."""

    system: str | None
    prompt: str
    constraint: dict[str, Any] | None
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    finish: Literal["stop", "length", "error"]
    guarantee: Guarantee
    error: str | None = None
    tokens: int | None = None
    seconds: float = 0.0
    observed: dict[str, str] | None = None  # e.g. served model id, system fingerprint


class Provider(Protocol):
    capabilities: Capabilities

    def generate(self, requests: list[Request]) -> list[Result]: ...


def load_provider(spec: Any, root: Any) -> Provider:
    """Instantiate the provider for a model spec (imports its implementation now)."""
    module, _, attr = REGISTRY[spec.provider].partition(":")
    cls = getattr(importlib.import_module(module), attr)
    return cls(spec, root)
