"""The tiny Llama of `llmspec.tinymodel` as a GGUF file, for the `llamacpp` provider.

`export_gguf(model_dir, out)` writes the weights (float32) and the byte-level BPE tokenizer
with the `gguf` package (`pip install gguf`), the way llama.cpp's `convert_hf_to_gguf.py`
does for a Llama: tensors renamed to llama.cpp's names, the query and key projections permuted
from the Hugging Face rotary layout to llama.cpp's, the tokenizer as `gpt2` (byte-level BPE)
with the GPT-2 pre-tokenizer. Only what the tiny Llama uses is covered (no grouped-query
attention, tied embeddings, no rope scaling), so this is no general converter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["export_gguf"]

_LAYER = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_CONTROL, _NORMAL = 3, 1  # llama.cpp token types


def _permute(w: Any, heads: int) -> Any:
    """Rows of a query/key projection from Hugging Face's rotary layout (halves) to llama.cpp's
    (pairs), as convert_hf_to_gguf.py's `LlamaModel.permute`."""
    return (
        w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def _tensor_name(hf: str) -> str:
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    prefix, _, rest = hf.partition(".layers.")
    i, _, part = rest.partition(".")
    base = part.removesuffix(".weight")
    if prefix != "model" or base not in _LAYER:
        raise ValueError(f"no GGUF name for tensor `{hf}`")
    return f"blk.{int(i)}.{_LAYER[base]}.weight"


def _tokenizer(model_dir: Path) -> tuple[list[str], list[int], list[str], dict[str, int]]:
    """Tokens by id, their types, the merges and the special tokens' ids."""
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    vocab: dict[str, int] = dict(tok["model"]["vocab"])
    special = {}
    for added in tok.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
        if added.get("special"):
            special[added["content"]] = added["id"]
    tokens = [""] * (max(vocab.values()) + 1)
    for text, i in vocab.items():
        tokens[i] = text
    types = [_CONTROL if t in special else _NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    return tokens, types, merges, special


def export_gguf(model_dir: str | Path, out: str | Path) -> Path:
    """Write the tiny Llama saved in `model_dir` as the GGUF file `out`; return its path."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    model_dir, out = Path(model_dir), Path(out)
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise ValueError(f"only the tiny Llama is exported, not `{config.get('model_type')}`")
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    hidden = config["hidden_size"]
    tokens, types, merges, special = _tokenizer(model_dir)

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("llmspec-tiny")
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(hidden)
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    w.add_rope_freq_base(config.get("rope_theta", 10000.0))
    w.add_rope_dimension_count(hidden // heads)
    w.add_vocab_size(len(tokens))
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    for name, setter in (
        ("bos_token_id", w.add_bos_token_id),
        ("eos_token_id", w.add_eos_token_id),
        ("pad_token_id", w.add_pad_token_id),
    ):
        if config.get(name) is not None:
            setter(int(config[name]))
    if "<unk>" in special:
        w.add_unk_token_id(special["<unk>"])
    w.add_add_bos_token(False)

    weights = load_file(str(model_dir / "model.safetensors"))
    for hf, tensor in sorted(weights.items()):
        if hf == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue  # llama.cpp reuses token_embd when there is no output tensor
        data = tensor.astype(np.float32)
        if hf.endswith("self_attn.q_proj.weight"):
            data = _permute(data, heads)
        elif hf.endswith("self_attn.k_proj.weight"):
            data = _permute(data, kv_heads)
        w.add_tensor(_tensor_name(hf), data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
