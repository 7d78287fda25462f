"""Test sets generated from a knowledge source, and knowledge built from a dataset column."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: synth
models:
  tiny: {provider: transformers, path: models/tiny, params: {max_tokens: 96, seed: 5}}
  writer: {provider: transformers, path: models/writer, params: {max_tokens: 600, seed: 5}}
knowledge:
  docs: {source: {path: kb}, chunk: {size: 200, overlap: 20}, top_k: 1}
  faq: {source: {dataset: golden, column: answer}, chunk: {size: 100, overlap: 10}, top_k: 2}
datasets:
  golden: {path: golden.jsonl, expected: answer}
  synthetic:
    generate: {from: docs, model: writer, kinds: [simple, distracting], count: 6, seed: 2,
               quality: {support: 0}}
prompts:
  qa: {template: "{% for c in context %}{{ c }}\\n{% endfor %}Q: {{ question }}\\nA:"}
suites:
  on-synthetic: {prompt: qa, models: [tiny], dataset: synthetic, retrieve: docs,
                 metrics: [rouge_l]}
  on-faq: {prompt: qa, models: [tiny], dataset: golden, retrieve: faq, metrics: [contains]}
"""


def test_generated_dataset_and_dataset_knowledge(tmp_path: Path, example_models) -> None:
    from llmspec.compile import compile_project
    from llmspec.project import load_project
    from llmspec.store import Store

    root = tmp_path / "synth"
    (root / "kb").mkdir(parents=True)
    (root / "llmspec.yaml").write_text(SPEC)
    (root / "kb" / "a.md").write_text("Refunds reach your card within 5 business days. " * 4)
    (root / "kb" / "b.txt").write_text("We ship to 30 countries from two warehouses. " * 4)
    rows = [
        {"question": "How long do refunds take?", "answer": "Five business days."},
        {"question": "Where do you ship?", "answer": "To 30 countries."},
    ]
    (root / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.copytree(example_models["tiny"], root / "models" / "tiny")
    shutil.copytree(example_models["tiny-judge"], root / "models" / "writer")  # 2048 positions

    result = CliRunner().invoke(main, ["apply", str(root), "--runner", "inline"])
    assert result.exit_code == 0, result.output

    graph = compile_project(load_project(root))
    store = Store(root)
    synthetic = store.get(graph.jobs["testgen.synthetic"].key).output
    # every slot is an item, kinds alternate; every reply parses (the JSON constraint holds);
    # the tiny model's noise is filtered, counted by reason; what passes is a dataset row
    items = synthetic["items"]
    assert [i["slot"] for i in items] == list(range(6))
    assert [i["kind"] for i in items] == ["simple", "distracting"] * 3
    reasons = {"unparsable", "blank", "one_word", "unsupported", "duplicate"}
    assert all(i.get("rejected", "unparsable") in reasons for i in items)
    accepted = [i for i in items if "rejected" not in i]
    assert "unparsable" not in synthetic["rejected"]
    assert all(isinstance(i["question"], str) for i in items)
    assert all(any(ch.isalnum() for ch in i["expected"]) for i in accepted)
    assert sum(synthetic["rejected"].values()) + len(accepted) == 6
    assert len(synthetic["rows"]) == len(accepted)
    for i in items:
        assert len(i["reference_context"]) == 1 and i["reference_context"][0].startswith("kb/")
        assert len(i["drawn_from"]) == (2 if i["kind"] == "distracting" else 1)
    faq = store.get(graph.jobs["index.faq"].key).output
    assert [c["id"] for c in faq["chunks"]] == ["golden[0]#0", "golden[1]#0"]
    gen = store.get(graph.jobs["generate.on-synthetic.tiny.0"].key).output["rows"]
    assert len(gen) == len(accepted) and all(r["expected"] is not None for r in gen)
    # a second apply has nothing to do
    again = CliRunner().invoke(main, ["apply", str(root), "--runner", "inline", "--quiet"])
    assert "Apply: 0 ran" in again.stdout
