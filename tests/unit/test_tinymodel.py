"""The tiny model builder: loadable offline, byte-for-byte reproducible, usable by llguidance."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# huggingface_hub reads this when it is first imported; nothing here may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"

from llmspec.tinymodel import MARKER, build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "maxLength": 12},
        "ok": {"type": "boolean"},
    },
    "required": ["answer", "ok"],
    "additionalProperties": False,
}
TEXTS = [
    "To reset your password, open Settings.",
    '{"answer": "Refunds take 14 days.", "n": [1, -2.5, 3e4], "ok": true, "x": null}',
    "  leading spaces,\ttabs\nand newlines\n\n",
    "Unicode: café, naïve, 日本語, emoji 🙂, and a stray <s> in text.",
]


def digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def token_bytes(tok) -> list[bytes]:
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    vocab = tok.backend_tokenizer.get_vocab(with_added_tokens=False)
    return [bytes(byte_of[c] for c in token) for token in vocab]


@pytest.fixture(scope="module")
def torch_stack() -> None:
    for name in ("torch", "transformers", "tokenizers"):
        pytest.importorskip(name)


@pytest.fixture(scope="module")
def tiny(torch_stack, tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "gpt2")


@pytest.fixture(scope="module")
def hf(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny), AutoModelForCausalLM.from_pretrained(tiny)


@pytest.mark.slow
def test_folder_holds_a_safetensors_model_and_no_machine_paths(tiny):
    names = set(digests(tiny))
    assert {"config.json", "model.safetensors", "tokenizer.json", MARKER} <= names
    assert not any(n.endswith(".bin") for n in names)
    for name in names - {"model.safetensors"}:
        text = (tiny / name).read_text()
        assert str(tiny.parent) not in text and "_name_or_path" not in text, name


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_loads_offline_and_generates(arch, tiny, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny if arch == "gpt2" else build_tiny_model(tmp_path / arch, arch=arch)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == arch
    assert model.config.vocab_size == len(tok) == 512
    specials = [tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token]
    assert specials == ["<s>", "</s>", "<pad>", "<unk>"]
    assert tok.padding_side == "left" and "token_type_ids" not in tok("hi")
    assert model.config.eos_token_id == tok.eos_token_id
    assert model.config.pad_token_id == tok.pad_token_id
    batch = tok(["Question: how do I reset?", '{"a": 1}'], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    prompt_len = batch.input_ids.shape[1]
    assert out.shape[0] == 2 and prompt_len < out.shape[1] <= prompt_len + 6


@pytest.mark.slow
def test_same_arguments_give_identical_files(tiny, tmp_path):
    again = build_tiny_model(tmp_path / "again")
    assert digests(again) == digests(tiny)
    llama = [build_tiny_model(tmp_path / f"llama{i}", arch="llama", seed=5) for i in (1, 2)]
    assert digests(llama[0]) == digests(llama[1])


@pytest.mark.slow
def test_a_fresh_interpreter_with_parallel_tokenizers_trains_the_same_vocabulary(tiny):
    # Another process has other hash seeds in the Rust trainer, and here it runs on many threads.
    # Only `tokenizers` is imported there: torch's seeded init needs no such check.
    code = (
        "import json; from llmspec.tinymodel import _CORPUS, _train_bpe; "
        "print(json.dumps(json.loads(_train_bpe(list(_CORPUS), 512).to_str())['model']))"
    )
    env = dict(os.environ, TOKENIZERS_PARALLELISM="true", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    saved = json.loads((tiny / "tokenizer.json").read_text())["model"]
    assert json.loads(out.stdout) == saved


@pytest.mark.slow
def test_other_seed_changes_weights_only(tiny, tmp_path):
    other = digests(build_tiny_model(tmp_path / "s1", seed=1))
    same = digests(tiny)
    assert other["model.safetensors"] != same["model.safetensors"]
    assert other["tokenizer.json"] == same["tokenizer.json"]
    assert other["config.json"] == same["config.json"]


@pytest.mark.slow
def test_tokenizer_round_trips_text_and_json_compactly(hf):
    tok, _ = hf
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.decode(ids) == text
    compact = '{"answer": "Open Settings and click Reset password.", "confidence": 0.9}'
    assert len(tok(compact).input_ids) < len(compact) / 2


@pytest.mark.slow
def test_no_token_is_longer_than_16_bytes(hf, tmp_path):
    from transformers import AutoTokenizer

    assert max(map(len, token_bytes(hf[0]))) <= 16
    repetitive = ["=" * 80, "supercalifragilisticexpialidocious" * 3, '{"key": "' + "x" * 60 + '"}']
    path = build_tiny_model(tmp_path / "long", corpus=repetitive * 20, vocab_size=400)
    lengths = list(map(len, token_bytes(AutoTokenizer.from_pretrained(path))))
    assert 8 < max(lengths) <= 16  # uncapped, this corpus gives tokens of 100 bytes


@pytest.mark.slow
def test_rebuild_is_skipped_and_other_arguments_replace_the_model(torch_stack, tmp_path):
    out = tmp_path / "m"
    build_tiny_model(out, layers=1)
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_model(out, layers=1) == out
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    (out / "model.safetensors").unlink()  # a damaged folder is rebuilt, not trusted
    build_tiny_model(out, layers=1)
    assert (out / "model.safetensors").is_file()
    build_tiny_model(out, layers=1, corpus=["a short corpus of words", "and other words"])
    marker = json.loads((out / MARKER).read_text())
    config = json.loads((out / "config.json").read_text())
    assert marker["layers"] == config["n_layer"] == 1
    assert config["vocab_size"] < 512  # two short lines cannot fill the requested vocabulary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    import llmspec.tinymodel as tinymodel

    def explode(folder, recipe, lines):
        (folder / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(tinymodel, "_write_model", explode)
    with pytest.raises(KeyboardInterrupt):
        build_tiny_model(tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_refuses_foreign_folders_and_bad_arguments(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_tiny_model(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="unknown arch"):
        build_tiny_model(tmp_path / "x", arch="mamba")
    with pytest.raises(ValueError, match="multiple of heads"):
        build_tiny_model(tmp_path / "x", hidden=30, heads=4)


def test_module_import_stays_cheap():
    code = (
        "import sys, llmspec.tinymodel; "
        "print(sorted({'torch', 'transformers', 'tokenizers'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_llguidance_constrains_to_a_json_schema(hf):
    pytest.importorskip("llguidance")
    import llguidance
    import llguidance.hf
    import numpy as np
    from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

    tok, _ = hf
    llg_tok = llguidance.hf.from_tokenizer(tok)
    assert llg_tok.vocab_size == len(tok) and llg_tok.eos_token == tok.eos_token_id
    grammar = llguidance.LLMatcher.grammar_from_json_schema(SCHEMA)
    mask = allocate_token_bitmask(1, llg_tok.vocab_size)

    def allowed(matcher) -> np.ndarray:
        fill_next_token_bitmask(matcher, mask)
        bits = np.unpackbits(mask[0].view(np.uint8), bitorder="little")
        return np.flatnonzero(bits[: llg_tok.vocab_size])

    matcher = llguidance.LLMatcher(llg_tok, grammar)
    assert not matcher.is_error(), matcher.get_error()
    first = {tok.convert_ids_to_tokens(int(i)) for i in allowed(matcher)}
    assert first and all(t.startswith("{") for t in first)
    for token in tok('{"answer": "hi", "ok": true}', add_special_tokens=False).input_ids:
        assert token in allowed(matcher)
        assert matcher.consume_token(token), matcher.get_error()
    assert matcher.is_accepting() and tok.eos_token_id in allowed(matcher)

    wrong = llguidance.LLMatcher(llg_tok, grammar)
    letter = tok.convert_tokens_to_ids("a")
    assert letter not in allowed(wrong)


@pytest.mark.slow
def test_guidance_json_works_twice_in_a_row(hf):
    guidance = pytest.importorskip("guidance")
    tok, model = hf
    lm = guidance.models.Transformers(model=model, tokenizer=tok, echo=False)
    results = []
    for prompt in ("Question: how do I reset my password?\nAnswer: ", "Q: refund?\nA: "):
        out = lm + prompt + guidance.json(name="x", schema=SCHEMA, max_tokens=60)
        value = json.loads(out["x"])
        assert set(value) == {"answer", "ok"} and len(value["answer"]) <= 12
        results.append(value)
    chained = out + "\nAgain: " + guidance.json(name="y", schema=SCHEMA, max_tokens=60)
    assert set(json.loads(chained["y"])) == {"answer", "ok"}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_tiny_model_cli_builds_more_positions_and_long_outputs_fit(arch, torch_stack, tmp_path):
    # Large schemas need long outputs: 512 positions cannot hold a 1,500-token answer.
    from click.testing import CliRunner

    from llmspec.cli import main
    from llmspec.constraints import Constraint
    from llmspec.providers import Request
    from llmspec.providers.transformers import TransformersProvider
    from llmspec.providers.transformers.decode import generate_batch
    from llmspec.spec import TransformersModel

    out = tmp_path / "long"
    r = CliRunner().invoke(main, ["tiny-model", str(out), "--arch", arch, "--positions", "2048"])
    assert r.exit_code == 0 and "2048 positions" in r.output, r.output
    provider = TransformersProvider(TransformersModel(provider="transformers", path=str(out)), out)
    assert provider.max_positions == 2048 and provider.tokenizer.model_max_length == 2048
    long = Request(None, "Hello", Constraint.of({"choice": ["yes", "no"]}), max_tokens=1500)
    (res,) = provider.generate([long])
    assert res.finish == "stop" and res.text in ("yes", "no"), res.error
    # Decoding past position 512 (the default model's end), learned or rotary positions
    # intact: a 600-token prompt, then 40 tokens of free text and a JSON document.
    prompt = "Welcome to Acme support. " * 120
    assert len(provider.tokenizer(prompt).input_ids) > 560
    gens = generate_batch(
        provider.model, provider.tokenizer, [prompt, prompt + "Reply in JSON:"],
        [None, {"json_schema": {"type": "object", "required": ["answer"],
                                "properties": {"answer": {"type": "string", "maxLength": 20}}}}],
        max_tokens=40, min_tokens=40, temperature=1.0, seeds=[1, 2],
    )  # fmt: skip
    assert gens[0].tokens == 40 and gens[0].finish == "length"
    assert gens[1].finish in ("stop", "budget") and json.loads(gens[1].text)
    small = build_tiny_model(tmp_path / "small", arch=arch)
    (res,) = TransformersProvider(TransformersModel(provider="transformers", path=str(small)),
                                  small).generate([long])  # fmt: skip
    assert res.finish == "error" and "512 positions" in res.error
