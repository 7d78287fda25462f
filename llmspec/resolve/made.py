"""Models whose weights a job makes: `finetune` (its source, rows, prompt, target column and
retrieval) and `quantize` (its source, and what its method needs: a GPU, a package)."""

from __future__ import annotations

import importlib.util
from typing import Any

from llmspec.load import KeyPath
from llmspec.spec import GPU_QUANTIZE_METHODS


def check_made_models(c: Any) -> None:
    for name, m in c.p.models.items():
        if getattr(m, "finetune", None) is not None:
            _check_finetune(c, name, m)
        elif getattr(m, "quantize", None) is not None:
            _check_quantize(c, name, m)


def _check_source(c: Any, name: str, source: str, path: KeyPath, verb: str) -> bool:
    """The source must be a transformers model; a quantized one cannot be trained further."""
    if not c.ref("models", source, path):
        return False
    src = c.p.models[source]
    if src.provider != "transformers":
        c.error(
            "E110",
            f"model `{name}` {verb} `{source}` (provider {src.provider}): only transformers "
            "models have weights here to " + ("train" if verb == "fine-tunes" else "quantize"),
            path,
            "name a transformers model (`path:` or `model:`), or a model made from one",
        )
        return False
    if verb == "fine-tunes" and src.quantize is not None:
        c.error(
            "E110",
            f"model `{name}` fine-tunes `{source}`, a quantized model: quantized weights do not "
            "train",
            path,
            f"fine-tune `{src.quantize.from_}`, then quantize the tuned model",
        )
        return False
    return True


def _check_finetune(c: Any, name: str, m: Any) -> None:
    from llmspec.resolve.suites import _check_variables

    ft = m.finetune
    base: KeyPath = ("models", name, "finetune")
    _check_source(c, name, ft.from_, base + ("from",), "fine-tunes")
    if ft.device == "cuda" and not m.gpus:
        c.error(
            "E111",
            f"model `{name}` trains on `cuda`, a GPU, and asks for none",
            base + ("device",),
            "set `gpus: 1` on the model (each Ray Train worker gets that many), or train on `cpu`",
        )
    c.ref("prompts", ft.prompt, base + ("prompt",))
    if ft.retrieve is not None:
        c.ref("knowledge", ft.retrieve, base + ("retrieve",))
    if not c.ref("datasets", ft.dataset, base + ("dataset",)):
        return
    d = c.p.datasets[ft.dataset]
    cols = c.columns.get(ft.dataset)
    if cols is None:
        return
    column = ft.expected or d.expected
    if column not in cols:
        where = base + ("expected",) if ft.expected else base + ("dataset",)
        c.error(
            "E041",
            f"model `{name}` learns to produce column `{column}`, which dataset "
            f"`{ft.dataset}` does not have in every row",
            where,
            f"set `finetune.expected:` (or the dataset's `expected:`); columns: "
            f"{', '.join(sorted(cols)) or 'none'}",
        )
    prompt = c.p.prompts.get(ft.prompt)
    if prompt is not None:
        where = base + ("prompt",)
        _check_variables(c, _AsSuite(ft), ft.prompt, prompt, cols, where, "`finetune`")


class _AsSuite:
    """What the template-variable check reads of a suite, for a fine-tune's prompt."""

    def __init__(self, ft: Any):
        self.dataset = ft.dataset
        self.retrieve = ft.retrieve


def _check_quantize(c: Any, name: str, m: Any) -> None:
    q = m.quantize
    base: KeyPath = ("models", name, "quantize")
    _check_source(c, name, q.from_, base + ("from",), "quantizes")
    if q.method not in GPU_QUANTIZE_METHODS:
        if m.dtype not in ("auto", "float32"):
            c.error(
                "E110",
                f"model `{name}` is quantized with `{q.method}`, which computes in float32: "
                f"`dtype: {m.dtype}` cannot apply",
                ("models", name, "dtype"),
                "drop `dtype`",
            )
        return
    if not m.gpus:
        c.error(
            "E111",
            f"quantize method `{q.method}` needs a CUDA GPU, and model `{name}` asks for none",
            base + ("method",),
            "set `gpus: 1` on the model (and run on a machine that has one), or use "
            "`dynamic_int8` on CPU",
        )
    elif importlib.util.find_spec("bitsandbytes") is None:
        c.error(
            "E111",
            f"quantize method `{q.method}` needs the package bitsandbytes, which is not installed",
            base + ("method",),
            "pip install bitsandbytes (on a machine with a CUDA GPU), or use `dynamic_int8` on CPU",
        )
