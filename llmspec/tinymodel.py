"""Tiny local causal language models for tests, benchmarks and the example project.

`build_tiny_model` trains a byte-level BPE tokenizer on a few dozen built-in lines (customer
support prose and JSON), puts a randomly initialised GPT-2 or Llama of a chosen size on top and
saves both with ``save_pretrained``. Nothing is downloaded. The same arguments give byte-identical
files on every run and machine (for a given torch / transformers / tokenizers), so a model's
hashes can sit in a lockfile or a golden file::

    >>> import os, tempfile
    >>> os.environ["HF_HUB_OFFLINE"] = "1"
    >>> path = build_tiny_model(os.path.join(tempfile.mkdtemp(), "tiny"), seed=7)
    >>> from transformers import AutoModelForCausalLM, AutoTokenizer
    >>> tok = AutoTokenizer.from_pretrained(path)
    >>> model = AutoModelForCausalLM.from_pretrained(path)
    >>> ids = tok('{"answer": "reset', return_tensors="pt").input_ids
    >>> out = model.generate(ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id)
    >>> out.shape[1] <= ids.shape[1] + 5
    True

A second call with the same arguments finds ``llmspec-tiny.json`` in the folder and returns at
once. Tokens are at most 16 bytes long: llguidance refuses vocabularies with very long tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ARCHS", "MARKER", "build_tiny_model"]

ARCHS = ("gpt2", "llama")
MARKER = "llmspec-tiny.json"
# Bump when the same arguments would build different files (corpus, tokenizer or model recipe).
_RECIPE = 1
_MAX_TOKEN_BYTES = 16
_BOS, _EOS, _PAD, _UNK = "<s>", "</s>", "<pad>", "<unk>"

_CORPUS = (
    "Welcome to Acme support. How can we help you today?",
    "To reset your password, open Settings, choose Account and click Reset password.",
    "If you did not receive the email, check your spam folder and try again in 5 minutes.",
    "Your order #10482 was shipped on 2024-03-18 and should arrive within 3 to 5 business days.",
    "Refunds are issued to the original payment method within 14 days of the return.",
    "The Acme Router X2 supports Wi-Fi 6, two bands (2.4 GHz and 5 GHz) and up to 64 devices.",
    "To update the firmware, download version 1.8.2 and upload it under Admin > Firmware.",
    "Hold the reset button for 10 seconds until the light blinks orange, then release it.",
    "Our support team is available Monday to Friday, 9:00 to 17:00 CET.",
    "Premium customers can call 0800 123 456 at any time, day or night.",
    "Question: Can I change my delivery address after the order was placed?",
    "Answer: Yes, as long as the order has not shipped. Open Orders and click Edit address.",
    "Question: What is the warranty on the Acme Blender B500?",
    "Answer: The Acme Blender B500 has a warranty of 2 years from the date of purchase.",
    "Context: The battery lasts up to 12 hours of normal use and charges fully in 90 minutes.",
    "The API returns JSON. Every response has a status, a message and an optional data field.",
    "Use the header Authorization: Bearer <token> for every request to the API.",
    "Rate limits: 100 requests per minute per key; a 429 status means you should retry later.",
    "We are sorry for the trouble. A replacement has been sent and you will get a tracking link.",
    "Please include your order number, the product name and a short description of the issue.",
    "The answer is not in the documentation. Please contact a human agent for more help.",
    "Thank you for contacting Acme. Is there anything else we can help you with?",
    '{"answer": "Open Settings and click Reset password.", "confidence": 0.9}',
    '{"answer": "Refunds take up to 14 days.", "sources": ["refunds.md", "faq.md"]}',
    '{"status": "ok", "code": 200, "data": {"id": 10482, "items": [1, 2, 3], "paid": true}}',
    '{"status": "error", "code": 404, "message": "order not found", "data": null}',
    '{"name": "Acme Router X2", "price": 129.99, "in_stock": false, "tags": ["wifi", "router"]}',
    '{"question": "How do I reset my password?", "answer": "Use Settings > Account."}',
    '{"label": "billing", "score": 0.75, "reasons": ["refund", "invoice", "payment"]}',
    '{"user": {"id": 42, "email": "ana@example.com"}, "orders": [{"id": 7, "total": 59.5}]}',
    '[{"id": 1, "title": "Reset password"}, {"id": 2, "title": "Track an order"}]',
    '{"answer": "", "found": false, "items": [], "meta": {}}',
    '{"temperature": 0, "max_tokens": 96, "seed": 7, "stop": ["\\n", "}"]}',
    '{"a": 1, "b": -2.5, "c": 3e-4, "d": [0, 10, 100, 1000], "e": "x\\"y"}',
    "Steps: 1. Unplug the device. 2. Wait 30 seconds. 3. Plug it back in and wait for the light.",
    "Error E-301 means the device cannot reach the server; check the cable and the DNS settings.",
    "The invoice for March is available under Billing > Invoices as a PDF download.",
    "You can cancel your subscription at any time; it stays active until the end of the period.",
    "Product name, price, size and colour are listed on every product page.",
    "Shipping to the EU is free for orders over 50 EUR; other countries pay a flat 9.90 EUR.",
)


def build_tiny_model(
    out_dir: str | os.PathLike[str],
    *,
    arch: str = "gpt2",
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    vocab_size: int = 512,
    max_positions: int = 512,
    corpus: Iterable[str] | None = None,
) -> Path:
    """Build a tiny random causal LM and its tokenizer into ``out_dir``; return its path.

    ``arch`` is ``"gpt2"`` or ``"llama"``. ``vocab_size`` is what the BPE trainer aims for; a
    small ``corpus`` can give fewer tokens, and the model's vocabulary always equals the
    tokenizer's. The folder is built beside ``out_dir`` and renamed into place, so it is either
    absent or complete. An existing tiny model built with other arguments is replaced; a folder
    holding anything else is refused with `FileExistsError`.
    """
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    lines = list(_CORPUS if corpus is None else corpus)
    if not lines:
        raise ValueError("corpus is empty")
    out = Path(out_dir)
    recipe = {
        "recipe": _RECIPE,
        "arch": arch,
        "seed": seed,
        "layers": layers,
        "hidden": hidden,
        "heads": heads,
        "vocab_size": vocab_size,
        "max_positions": max_positions,
        "corpus_sha256": hashlib.sha256(json.dumps(lines).encode()).hexdigest(),
    }
    if _is_built(out, recipe):
        return out
    if out.exists() and (not out.is_dir() or _holds_foreign_files(out)):
        raise FileExistsError(f"{out} exists and is not a tiny model built by llmspec")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_model(tmp, recipe, lines)
        _move_into_place(tmp, out, recipe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_model(folder: Path, recipe: dict, lines: list[str]) -> None:
    tokenizer = _train_tokenizer(lines, recipe["vocab_size"], recipe["max_positions"])
    model = _init_model(recipe, tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _normalize_configs(folder)
    (folder / MARKER).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    # mkdtemp makes the folder private and safetensors writes 0600; the model is no secret.
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _train_tokenizer(lines: list[str], vocab_size: int, max_positions: int):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_bpe(lines, vocab_size),
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=_PAD,
        unk_token=_UNK,
        model_max_length=max_positions,
        # A causal LM has no segment ids, and batched generation needs the padding on the left.
        model_input_names=["input_ids", "attention_mask"],
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def _train_bpe(lines: list[str], vocab_size: int):
    """The bare `tokenizers.Tokenizer`; imports only `tokenizers`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    # The BPE trainer counts words in parallel but merges by (count, pair) with a total order,
    # so its result does not depend on thread scheduling or hash seeds (the tests check it in a
    # fresh interpreter with TOKENIZERS_PARALLELISM=true).
    bpe = Tokenizer(models.BPE(unk_token=_UNK))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[_BOS, _EOS, _PAD, _UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        # Byte-level BPE spells each byte as one character, so this bounds bytes per token.
        max_token_length=_MAX_TOKEN_BYTES,
    )
    bpe.train_from_iterator(lines, trainer=trainer, length=len(lines))
    return bpe


def _init_model(recipe: dict, tokenizer):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    common = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": True,
    }
    if recipe["arch"] == "gpt2":
        config = GPT2Config(
            n_layer=recipe["layers"],
            n_embd=recipe["hidden"],
            n_head=recipe["heads"],
            n_positions=recipe["max_positions"],
            **common,
        )
        model_cls = GPT2LMHeadModel
    else:
        config = LlamaConfig(
            num_hidden_layers=recipe["layers"],
            hidden_size=recipe["hidden"],
            intermediate_size=4 * recipe["hidden"],
            num_attention_heads=recipe["heads"],
            num_key_value_heads=recipe["heads"],
            max_position_embeddings=recipe["max_positions"],
            **common,
        )
        model_cls = LlamaForCausalLM
    # fork_rng keeps the caller's global torch RNG state as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe["seed"])
        model = model_cls(config)
    return model.eval()


def _normalize_configs(folder: Path) -> None:
    """Drop machine-specific fields (the temp build path) from the saved JSON configs."""
    for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        data.pop("_name_or_path", None)
        data.pop("name_or_path", None)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _is_built(folder: Path, recipe: dict) -> bool:
    files = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    return _read_marker(folder) == recipe and all((folder / f).is_file() for f in files)


def _read_marker(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None


def _holds_foreign_files(folder: Path) -> bool:
    """True when ``folder`` has content and is not a tiny model we built before."""
    return any(folder.iterdir()) and not (folder / MARKER).is_file()


def _move_into_place(tmp: Path, out: Path, recipe: dict) -> None:
    if _is_built(out, recipe):  # a concurrent build of the same model finished first
        return
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        os.replace(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        # Another process put a model there first; fine if it is the one we wanted.
        if _read_marker(out) != recipe:
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
