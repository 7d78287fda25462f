"""The `llamacpp` provider on a real GGUF file: the tiny Llama converted with the `gguf`
package, applied end to end under the example's constraints (a JSON schema, a choice, a
regex), outputs the same as the transformers provider's on the same weights where decoding is
greedy.

llama-cpp-python builds llama.cpp from source (about 17 minutes on 2 busy cores), so it is not
a dependency: these tests run where it is installed, in CI as a step of their own
(`scripts/test-llamacpp`), and are skipped elsewhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = [pytest.mark.slow, pytest.mark.llamacpp]
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
pytest.importorskip("gguf", reason="the gguf package is not installed")

SPEC = """\
version: 1
name: gguf
models:
  tiny: {provider: llamacpp, path: models/tiny.gguf, n_ctx: 512,
         params: {temperature: 0, max_tokens: 48, seed: 7}}
  sampled: {provider: llamacpp, path: models/tiny.gguf, n_ctx: 512,
            params: {temperature: 0.8, max_tokens: 16, seed: 3}}
schemas:
  answer:
    type: object
    required: [answer, confidence]
    additionalProperties: false
    properties:
      answer: {type: string, maxLength: 24}
      confidence: {type: string, enum: [low, medium, high]}
prompts:
  qa: {template: "Question: {{ question }}", output: {schema: answer}}
  triage: {template: "Ticket: {{ question }}", output: {choice: [billing, shipping, other]}}
  order: {template: "Order for {{ question }}:", output: {regex: "[0-9]{3}-[A-Z]{2}"}}
datasets:
  golden: {path: data/golden.jsonl, expected: answer, shard_rows: 2}
suites:
  quality: {prompt: qa, models: [tiny], dataset: golden,
           metrics: [schema_valid, {exact_match: {field: answer}}]}
  routing: {prompt: triage, models: [tiny, sampled], dataset: golden, metrics: [schema_valid]}
  orders: {prompt: order, models: [sampled], dataset: golden, metrics: [schema_valid]}
"""


@pytest.fixture(scope="module")
def gguf_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llmspec.tinygguf import export_gguf
    from llmspec.tinymodel import build_tiny_model

    base = tmp_path_factory.mktemp("gguf")
    hf = build_tiny_model(base / "hf", arch="llama", layers=2, hidden=64, heads=4, seed=7)
    root = base / "project"
    (root / "models").mkdir(parents=True)
    (root / "data").mkdir()
    export_gguf(hf, root / "models" / "tiny.gguf")
    (root / "llmspec.yaml").write_text(SPEC)
    with (root / "data" / "golden.jsonl").open("w") as fh:
        for q in ("reset my password", "refund status", "router firmware", "late parcel"):
            fh.write(json.dumps({"question": q, "answer": "billing"}) + "\n")
    return root


def _rows(root: Path, prefix: str) -> list[dict]:
    from llmspec.store import Store

    out = []
    for s in Store(root).records():
        if s.job.startswith(prefix):
            out += s.output["rows"]
    return sorted(out, key=lambda r: (r["row"], r["repeat"]))


def test_a_gguf_model_runs_end_to_end_under_constraints(gguf_project: Path, tmp_path: Path):
    from llmspec.cli import main
    from llmspec.constraints import check_output

    r = CliRunner().invoke(main, ["apply", str(gguf_project), "--runner", "inline"])
    assert r.exit_code == 0, r.output
    assert "Apply: " in r.stdout and "failed" not in r.stdout.split("Apply:")[-1]
    schema = json.loads((gguf_project / "llmspec.lock").read_text())
    assert schema["suites"]["quality"]["passed"] is True
    checks = {
        "generate.quality.tiny": {"json_schema": {"type": "object"}},
        "generate.routing.": {"choice": ["billing", "shipping", "other"]},
        "generate.orders.sampled": {"regex": "[0-9]{3}-[A-Z]{2}"},
    }
    for prefix, constraint in checks.items():
        rows = _rows(gguf_project, prefix)
        assert rows and all(r["guarantee"] == "token" for r in rows), rows
        for row in rows:
            assert row["valid"] is True and row["finish"] == "stop", row
            assert check_output(constraint, row["output"]) is None, row
    for row in _rows(gguf_project, "generate.quality.tiny"):
        assert set(json.loads(row["output"])) == {"answer", "confidence"}

    # the same lock from a second copy: greedy and seeded sampling are reproducible
    again = tmp_path / "again"
    shutil.copytree(gguf_project, again, ignore=shutil.ignore_patterns(".llmspec", "*.lock"))
    r2 = CliRunner().invoke(main, ["apply", str(again), "--runner", "inline", "-q"])
    assert r2.exit_code == 0, r2.output
    assert (again / "llmspec.lock").read_bytes() == (gguf_project / "llmspec.lock").read_bytes()


def test_the_gguf_file_computes_what_the_hugging_face_weights_do(gguf_project: Path) -> None:
    """The conversion is faithful: next-token logits agree with transformers on the same
    weights (the query/key permutation is what makes them agree)."""
    import llama_cpp
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_dir = gguf_project.parent / "hf"
    tok = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    llm = llama_cpp.Llama(str(gguf_project / "models" / "tiny.gguf"), n_ctx=128,
                          logits_all=True, verbose=False, n_threads=1)  # fmt: skip
    for text in ("To reset your password", '{"answer": "Refunds'):
        ids = tok(text).input_ids
        assert llm.tokenize(text.encode(), add_bos=False, special=False) == ids
        with torch.no_grad():
            want = model(torch.tensor([ids])).logits[0, -1].numpy()
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[len(ids) - 1])
        assert np.abs(got - want).max() < 1e-3
        assert int(np.argmax(got)) == int(np.argmax(want))
