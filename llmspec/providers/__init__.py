"""Model providers: one small protocol, and one record per provider that says everything else.

A provider turns a batch of `Request`s into `Result`s. Its record (`PROVIDERS`) says, as data,
what it can enforce (`Capabilities`), whether it runs weights on this machine (then models get
pools of replicas with CPUs and GPUs), where its weights are (keyed by their content, not by
the path), and the checks `resolve` runs on it. Which of its fields cannot change an output is
said once for the whole language, in `llmspec.spec.OUTPUT_NEUTRAL`. Compile and resolve read
the records without importing a provider; the implementation (`impl`) is imported when a job
first uses the model.

    >>> PROVIDERS["openai"].capabilities.json_schema, PROVIDERS["openai"].capabilities.regex
    (True, False)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from llmspec.constraints import Constraint

Guarantee = Literal["token", "provider", "checked", "none"]
"""token: enforced by token masks; provider: enforced by the server; checked: validated after
the fact only; none: no constraint was asked for. A row of an `enforce: best_effort` output
records `token+checked` (or `provider+checked`): part of its schema was enforced, all of it
checked, and a violating row resampled."""

Finish = Literal["stop", "length", "budget", "error"]
"""stop: the model or the grammar ended it; length: cut off by max_tokens; budget: closed
early to end valid within max_tokens (`on_budget: close`); error: see the row's error."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    json_schema: bool = False
    regex: bool = False
    choice: bool = False
    logprobs: bool = False
    seed: bool = False
    guarantee: Guarantee = "checked"
    remote: bool = False  # errors may be transient: a shard with failed rows is not stored

    def can(self, kind: str) -> bool:
        return bool(getattr(self, kind))


@dataclass(frozen=True)
class ProviderRecord:
    """Everything llmspec knows about a provider besides its code."""

    name: str
    impl: str  # "module:Class", imported when a job first uses a model of this provider
    capabilities: Capabilities
    local: bool  # runs weights on this machine: `replicas`, `cpus`, `gpus` make its pool
    weights: Callable[[Any, Path], Path | None] | None = None  # where the weights are
    check: str | None = None  # "module:function" run by resolve: check(checker, name, model)
    engine: str = "none"  # "llguidance" (token masks), "server" or "none": part of the key


def _local_path(field: str) -> Callable[[Any, Path], Path | None]:
    def weights(spec: Any, root: Path) -> Path | None:
        value = getattr(spec, field, None)
        return (Path(root) / value) if value else None

    return weights


def _transformers_weights(spec: Any, root: Path) -> Path | None:
    if spec.path is not None:
        return Path(root) / spec.path
    from llmspec.providers.hubcache import snapshot_dir

    return snapshot_dir(spec.model, spec.revision)


PROVIDERS: dict[str, ProviderRecord] = {
    "transformers": ProviderRecord(
        "transformers",
        "llmspec.providers.transformers:TransformersProvider",
        Capabilities(True, True, True, True, True, "token"),
        local=True,
        weights=_transformers_weights,
        check="llmspec.resolve.models:check_transformers",
        engine="llguidance",
    ),
    "llamacpp": ProviderRecord(
        "llamacpp",
        "llmspec.providers.llamacpp:LlamaCppProvider",
        Capabilities(True, True, True, False, True, "token"),
        local=True,
        weights=_local_path("path"),
        check="llmspec.resolve.models:check_llamacpp",
        engine="llguidance",
    ),
    "openai": ProviderRecord(
        "openai",
        "llmspec.providers.openai:OpenAIProvider",
        Capabilities(True, False, False, True, True, "provider", remote=True),
        local=False,
        check="llmspec.resolve.models:check_openai",
        engine="server",
    ),
    "echo": ProviderRecord(
        "echo",
        "llmspec.providers.echo:EchoProvider",
        Capabilities(False, False, False, False, True, "checked"),
        local=False,
    ),
}
CAPABILITIES = {name: rec.capabilities for name, rec in PROVIDERS.items()}
PATH_FIELDS = ("path",)  # spec fields that locate weights: keyed by content, never by path


@dataclass(frozen=True, slots=True)
class Request:
    """One generation: the rendered messages, the output constraint and decoding parameters."""

    system: str | None
    prompt: str
    constraint: Constraint | None
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Result:
    text: str
    finish: Finish
    guarantee: Guarantee
    error: str | None = None
    tokens: int | None = None
    seconds: float = 0.0
    observed: dict[str, str] | None = None  # e.g. served model id, system fingerprint
    prompt_tokens: int | None = None
    first_token_seconds: float | None = None  # where the provider can tell


class Provider(Protocol):
    capabilities: Capabilities

    def generate(self, requests: list[Request]) -> list[Result]: ...


def load_provider(settings: dict[str, Any]) -> Provider:
    """The provider for a model's settings as a job carries them (its keyed fact merged with
    its local part: `weights` is where the weights are on this machine). Imports it now."""
    from llmspec.spec import MODEL_TYPES

    rec = PROVIDERS[settings["provider"]]
    cls_spec = MODEL_TYPES[rec.name]
    fields = {k: v for k, v in settings.items() if k in cls_spec.model_fields}
    spec = cls_spec.model_validate(fields)
    module, _, attr = rec.impl.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    weights = settings.get("weights")
    return cls(spec, Path(weights) if weights else None)
