"""Quantized transformers models: how `quantize` jobs make them and how the provider loads them.

`dynamic_int8` and `dynamic_float16` are torch dynamic quantization of the linear layers, on
CPU. GPT-2's layers are `transformers`' `Conv1D`, which torch does not quantize, so they are
first swapped for equivalent `nn.Linear` layers. The tied output head stays as it is (a
quantized copy would only add a second head beside the embedding). The folder holds the
source's `config.json` and tokenizer, the quantized state dict (`quantized.pt`) and a marker
(`llmspec-quantized.json`) that says how to rebuild the skeleton to load it into.

`bnb_int8` and `bnb_4bit` use bitsandbytes through transformers and need a CUDA GPU: the folder
is a plain `save_pretrained` one whose config carries the quantization.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

MARKER = "llmspec-quantized.json"
STATE = "quantized.pt"
DYNAMIC = {"dynamic_int8": "qint8", "dynamic_float16": "float16"}


def conv1d_to_linear(model: Any) -> Any:
    """Replace every transformers `Conv1D` (weight [in, out]) by the equivalent `nn.Linear`."""
    import torch.nn as nn
    from transformers.pytorch_utils import Conv1D

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape
                linear = nn.Linear(n_in, n_out, bias=True)
                linear.weight.data = child.weight.data.t().contiguous()
                linear.bias.data = child.bias.data.clone()
                setattr(module, name, linear)
    return model


def _dynamic(model: Any, method: str) -> Any:
    import torch
    import torch.nn as nn

    tied = getattr(model.config, "tie_word_embeddings", False)
    names = {
        name
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and not (tied and mod is model.get_output_embeddings())
    }
    with warnings.catch_warnings():  # torch.ao.quantization says it will move to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            model, names, dtype=getattr(torch, DYNAMIC[method])
        )


def quantize(source: Path, method: str, out: Path, threads: int = 1) -> dict[str, Any]:
    """Quantize the model in `source` into `out`; return what was done (layers, sizes)."""
    import torch
    from transformers import AutoModelForCausalLM

    from llmspec.providers.transformers.train import copy_tokenizer, normalize_configs

    if method not in DYNAMIC:
        return _bitsandbytes(source, method, out)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=True, dtype=torch.float32
        ).eval()
        swapped = model.config.model_type == "gpt2"
        if swapped:
            conv1d_to_linear(model)
        q = _dynamic(model, method)
        layers = sum(1 for m in q.modules() if "quantized" in type(m).__module__)
        torch.save(q.state_dict(), out / STATE)
        model.config.save_pretrained(out)
    finally:
        torch.set_num_threads(before)
    (out / MARKER).write_text(
        json.dumps({"method": method, "conv1d_to_linear": swapped}, sort_keys=True) + "\n"
    )
    copy_tokenizer(source, out)
    normalize_configs(out)
    return {"layers": layers}


def _bitsandbytes(source: Path, method: str, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from llmspec.jobs import JobError
    from llmspec.providers.transformers.train import copy_tokenizer, normalize_configs

    if not torch.cuda.is_available():
        raise JobError(f"quantize method `{method}` needs a CUDA GPU, and this worker has none")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise JobError(
            f"quantize method `{method}` needs the package bitsandbytes: pip install bitsandbytes"
        ) from None
    config = (
        BitsAndBytesConfig(load_in_8bit=True)
        if method == "bnb_int8"
        else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float16)
    )
    model = AutoModelForCausalLM.from_pretrained(
        source, local_files_only=True, quantization_config=config, device_map={"": 0}
    )
    model.save_pretrained(out, safe_serialization=True)
    copy_tokenizer(source, out)
    normalize_configs(out)
    return {"layers": None}


def is_quantized(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def load_quantized(folder: Path) -> Any:
    """A dynamically quantized model saved by `quantize`: its skeleton rebuilt the same way,
    then its state dict loaded."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = Path(folder)
    marker = json.loads((folder / MARKER).read_text())
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    with torch.random.fork_rng(devices=[]):  # the skeleton's random weights are overwritten
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    if marker["conv1d_to_linear"]:
        conv1d_to_linear(model)
    model = _dynamic(model, marker["method"])
    with warnings.catch_warnings():  # packed params still go through TypedStorage
        warnings.simplefilter("ignore")
        model.load_state_dict(torch.load(folder / STATE, weights_only=True))
    return model.eval()
