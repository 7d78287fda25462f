"""Models: each provider's record names its checks; secrets are references, weights local."""

from __future__ import annotations

import importlib
from typing import Any

from llmspec.secrets import ENV_REF


def check_models(c: Any) -> None:
    from llmspec.providers import PROVIDERS

    for name, m in c.p.models.items():
        check = PROVIDERS[m.provider].check
        if check:
            module, _, attr = check.partition(":")
            getattr(importlib.import_module(module), attr)(c, name, m)


def check_transformers(c: Any, name: str, m: Any) -> None:
    base = ("models", name)
    if m.made_by is not None:
        return  # weights made by a job: checked with the other made models
    if m.path is not None:
        c.check_path(
            m.path,
            base + ("path",),
            "model folder",
            hint=f"build a tiny test model with `llmspec tiny-model {c.root / m.path}`, or point "
            "`path` at a folder saved with save_pretrained",
        )
        return
    from llmspec.providers.hubcache import HUB_ID, hub_cache, snapshot_dir

    if not HUB_ID.fullmatch(m.model) or ".." in m.model:
        c.error(
            "E030",
            f"`model` of model `{name}` must be a Hugging Face id like `org/name`, not a path",
            base + ("model",),
            "for weights in a folder of the project, use `path:`",
        )
    elif snapshot_dir(m.model, m.revision) is None:
        rev = f" at revision `{m.revision}`" if m.revision else ""
        c.error(
            "E031",
            f"model `{m.model}`{rev} is not in the local Hugging Face cache ({hub_cache()})",
            base + ("model",),
            "llmspec never downloads weights: fetch it once with `huggingface-cli download`, "
            "or save it into the project and use `path:`",
        )


def check_llamacpp(c: Any, name: str, m: Any) -> None:
    c.check_path(m.path, ("models", name, "path"), "GGUF file")


def check_openai(c: Any, name: str, m: Any) -> None:
    base = ("models", name)
    if m.api_key is not None and not ENV_REF.fullmatch(m.api_key):
        c.error(
            "E051",
            f"`api_key` of model `{name}` must be a reference like `${{env:OPENAI_API_KEY}}`",
            base + ("api_key",),
            "never write a secret into a spec: set it in the environment and reference it",
        )
    if not (m.base_url.startswith(("http://", "https://")) or "${" in m.base_url):
        c.error(
            "E013",
            f"`base_url` of model `{name}` must start with http:// or https://",
            base + ("base_url",),
            "e.g. http://127.0.0.1:8000/v1",
        )
