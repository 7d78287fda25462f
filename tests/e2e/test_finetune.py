"""Fine-tuning and quantization as jobs: deterministic weights, a tuned model's identity and
lock entries, a data change that re-tunes (and the lock diff that says so), a rollback that
brings the old weights back from the store without training, a quantized variant in a suite,
and an A/B suite over strategies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main

pytestmark = pytest.mark.slow

QUESTIONS = [
    ("How long do refunds take?", "Five business days."),
    ("Can I change my address?", "Yes, until it ships."),
    ("How do I reset my password?", "Use the reset link."),
    ("Do you ship abroad?", "To 30 countries."),
    ("Where is my invoice?", "Under Billing."),
    ("How do I close my account?", "Write to support."),
]

SPEC = """\
version: 1
name: tuning
models:
  base: {provider: transformers, path: models/tiny, params: {max_tokens: 12, stop: ["\\n"]}}
  full:
    provider: transformers
    finetune:
      from: base
      dataset: train
      prompt: qa
      method: full
      epochs: 30
      learning_rate: 0.005
      batch_size: 3
      seed: 1
    params: {max_tokens: 12, stop: ["\\n"]}
  lora:
    provider: transformers
    finetune:
      from: base
      dataset: train
      prompt: qa
      lora: {r: 8, alpha: 32, target_modules: all-linear}
      epochs: 10
      learning_rate: 0.01
      batch_size: 3
      seed: 1
    params: {max_tokens: 12, stop: ["\\n"]}
  full-int8:
    provider: transformers
    quantize: {from: full}
    params: {max_tokens: 12, stop: ["\\n"]}
prompts:
  qa: {template: "Q: {{ question }}\\nA:"}
datasets:
  train: {path: train.jsonl, expected: answer}
  golden: {path: golden.jsonl, expected: answer}
suites:
  strategies:
    prompt: qa
    models: [base, lora, full, full-int8]
    dataset: golden
    metrics: [exact_match, rouge_l, latency]
    gates: ["full.exact_match - base.exact_match >= 0.5"]
deployments:
  ship: {model: full, prompt: qa, requires: [strategies], target: {kind: export, path: out.json}}
"""


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"question": q, "answer": " " + a}) + "\n" for q, a in pairs)


def make_project(dest: Path, tiny: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copytree(tiny, dest / "models" / "tiny")
    (dest / "llmspec.yaml").write_text(SPEC)
    (dest / "train.jsonl").write_text(_rows(QUESTIONS))
    (dest / "golden.jsonl").write_text(_rows(QUESTIONS))
    return dest


def apply(root: Path, *args: str) -> str:
    r = CliRunner().invoke(main, ["apply", str(root), "--runner", "inline", *args])
    assert r.exit_code == 0, r.output
    return r.stdout


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    root = make_project(tmp_path_factory.mktemp("tuning") / "p", tiny_model_dir)
    out = apply(root)
    return root, out


def _lock(root: Path) -> dict:
    return json.loads((root / "llmspec.lock").read_text())


def test_lora_and_full_give_the_same_weights_twice(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch

    from llmspec.hashing import HashCache, tree_digests
    from llmspec.providers.transformers import train

    base = str(tiny_model_dir)
    examples, pad = train.encode_examples(
        base, [(None, f"Q: {q}\nA:") for q, _ in QUESTIONS[:4]], [a for _, a in QUESTIONS[:4]]
    )
    common = {"epochs": 2, "learning_rate": 0.01, "batch_size": 2, "seed": 3, "workers": 1}
    common |= {"threads": 1, "device": "cpu"}
    lora = {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": "auto"}
    threads = torch.get_num_threads()
    digests = {}
    for method in ("lora", "full", "lora", "full"):
        out = tmp_path / f"{method}-{len(digests)}"
        out.mkdir()
        settings = common | {"method": method} | ({"lora": lora} if method == "lora" else {})
        cfg = {"base": base, "examples": examples, "pad": pad, "settings": settings, "job": "t"}
        meta = train.train_here(cfg, out)
        assert len(meta["curve"]) == 2 and meta["trainable"] > 0
        weights = tree_digests(out, HashCache(None))["model.safetensors"]
        digests.setdefault(method, set()).add(weights)
    assert torch.get_num_threads() == threads  # what a run pins is restored
    assert len(digests["lora"]) == 1 and len(digests["full"]) == 1, digests
    assert digests["lora"] != digests["full"]
    # two workers' shares averaged in-process train too (as DDP would average them)
    out = tmp_path / "two"
    out.mkdir()
    settings = common | {"method": "full", "workers": 2}
    cfg = {"base": base, "examples": examples, "pad": pad, "settings": settings, "job": "t"}
    assert train.train_here(cfg, out)["curve"][-1]["loss"] > 0


def test_a_tuned_model_is_a_model_whose_identity_is_its_job(applied) -> None:
    from llmspec.compile import compile_project
    from llmspec.project import load_project
    from llmspec.store import Store

    root, _ = applied
    graph = compile_project(load_project(root))
    job = graph.jobs["finetune.full"]
    fact = graph.facts["models"]["full"]
    assert fact["finetune"]["key"] == job.key and "files" not in fact
    assert fact["finetune"]["data"]["rows"] == len(QUESTIONS)
    assert fact["finetune"]["settings"]["method"] == "full"
    assert "peft" not in fact["finetune"]["libraries"]
    assert "peft" in graph.facts["models"]["lora"]["finetune"]["libraries"]
    assert graph.facts["models"]["full-int8"]["quantize"]["from"] == "full"
    # every job reading a made model depends on the job that makes it
    gen = graph.jobs["generate.strategies.full.0"]
    assert gen.deps["weights.full"] == "finetune.full"
    assert graph.jobs["quantize.full-int8"].deps == {"weights.full": "finetune.full"}
    assert graph.jobs["deploy.ship"].deps["weights.full"] == "finetune.full"
    store = Store(root)
    assert gen.local["model"]["weights"] == str(store.tree_path(job.key))

    lock = _lock(root)
    assert lock["models"]["full"]["finetune"]["key"] == job.key
    entry = lock["weights"]["full"]
    from llmspec.hashing import HashCache, tree_digests

    assert entry["files"] == tree_digests(store.tree(job.key), HashCache(None))
    assert entry["made_by"] == "finetune.full" and entry["steps"] == 60
    q = lock["weights"]["full-int8"]
    assert "quantized.pt" in q["files"] and q["size"] < q["source_size"]
    # the deployment ships the tuned model: its fact and weights
    manifest = json.loads((root / "out.json").read_text())
    assert manifest["model"]["finetune"]["key"] == job.key
    assert manifest["weights"]["full"]["files"] == entry["files"]


def test_compare_strategies_in_one_suite(applied) -> None:
    from llmspec.compile import compile_project
    from llmspec.lock import read_lock
    from llmspec.project import load_project
    from llmspec.results import collect_results
    from llmspec.store import Store

    root, out = applied
    rp = load_project(root)
    graph = compile_project(rp)
    results = collect_results(graph, Store(root), read_lock(root), rp.spec)
    (suite,) = results.suites
    by = {v.name: v for v in suite.variants}
    assert set(by) == {"base", "lora", "full", "full-int8"}
    assert by["full"].metrics["exact_match"].mean >= 0.8 > by["base"].metrics["exact_match"].mean
    assert by["full-int8"].rows == 6 and by["full-int8"].errors == 0
    assert by["full-int8"].size < by["full"].size
    pair = next(c for c in suite.comparisons if {c.a, c.b} == {"base", "full"}
                and c.metric == "exact_match")  # fmt: skip
    assert pair.significant_holm, pair
    models = {m.name: m for m in results.models}
    assert models["full"].status == "made" and len(models["full"].curve) == 30
    assert models["full"].curve[-1].loss < models["full"].curve[0].loss
    assert models["lora"].method == "lora" and models["full-int8"].made_by == "quantize"
    # the apply summary: a line per made model, a size row beside the metrics
    assert "full: full fine-tune of base on train (6 rows, 30 epochs, 60 steps)" in out
    assert "full-int8: dynamic_int8 of full" in out
    assert next(x for x in out.splitlines() if x.strip().startswith("size"))
    html = CliRunner().invoke(main, ["report", str(root), "--format", "html"]).stdout
    assert 'class="training-curve" data-model="full"' in html
    # the training curve is in the run log
    logs = sorted((root / ".llmspec" / "runs").glob("*.jsonl"))
    points = [json.loads(x) for x in logs[0].read_text().splitlines()]
    epochs = [
        p["epoch"] for p in points if p["event"] == "progress" and p["job"] == "finetune.full"
    ]
    assert epochs[-1] == 30 and "loss" in next(p for p in points if p["event"] == "progress")


def test_data_change_retunes_and_rollback_restores(applied, tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(applied[0], root)
    cli = CliRunner()
    before = (root / "llmspec.lock").read_bytes()
    (root / "old.lock").write_bytes(before)

    # an unrelated change trains nothing
    (root / "more.yaml").write_text("prompts:\n  other: {template: 'Hi {{ question }}'}\n")
    plan = cli.invoke(main, ["plan", str(root)]).stdout
    assert "finetune" not in plan and "quantize" not in plan
    (root / "more.yaml").unlink()

    # one more training row: the fine-tunes train again, and say why
    rows = QUESTIONS + [("When do refunds arrive?", "Five business days.")]
    (root / "train.jsonl").write_text(_rows(rows))
    plan = cli.invoke(main, ["plan", str(root)]).stdout
    assert "~ finetune.full\n      dataset `train` rows 6 -> 7, content changed" in plan
    assert "model `full` training data `train` 6 -> 7 rows, re-tuned" in plan
    assert "model `full-int8` source model `full` changed, re-quantized" in plan
    out = apply(root, "-q")
    assert "Apply:" in out
    (root / "new.lock").write_bytes((root / "llmspec.lock").read_bytes())
    diff = cli.invoke(main, ["lock", "diff", str(root / "old.lock"), str(root / "new.lock")])
    assert "  ~ full: training data `train` 6 -> 7 rows, re-tuned" in diff.stdout, diff.stdout
    assert "  ~ full-int8: source model `full` changed, re-quantized" in diff.stdout
    assert "Weights:" in diff.stdout and "  ~ full: files: changed model.safetensors" in diff.stdout

    # roll back the data: the old weights come back from the store, nothing trains
    (root / "train.jsonl").write_text(_rows(QUESTIONS))
    plan = cli.invoke(main, ["plan", str(root)]).stdout
    assert "~ finetune.full  (cached)" in plan and "Plan: 0 to run" in plan
    out = cli.invoke(main, ["apply", str(root), "--runner", "inline"]).stdout
    assert "finetune.full: ok" not in out and "Apply: 0 ran" in out
    assert (root / "llmspec.lock").read_bytes() == before

    # the store no longer has the weights: plan says the job trains again, and why
    from llmspec.compile import compile_project
    from llmspec.project import load_project
    from llmspec.store import Store

    key = compile_project(load_project(root)).jobs["finetune.full"].key
    shutil.rmtree(Store(root).tree(key))
    plan = cli.invoke(main, ["plan", str(root)]).stdout
    assert "* finetune.full\n      the tuned weights are not in .llmspec/: it trains again" in plan
    assert "generate.strategies.full.0" not in plan  # its outputs are stored: they stay
    apply(root, "-q")
    assert (root / "llmspec.lock").read_bytes() == before  # the same weights, trained again

    # a hyper-parameter re-tunes that model only
    spec = (root / "llmspec.yaml").read_text().replace("epochs: 10", "epochs: 11")
    (root / "llmspec.yaml").write_text(spec)
    plan = cli.invoke(main, ["plan", str(root)]).stdout
    assert "~ finetune.lora\n      model `lora` epochs 10 -> 11, re-tuned" in plan, plan
    assert "~ generate.strategies.lora.0\n      model `lora` epochs 10 -> 11, re-tuned" in plan
    assert "finetune.full" not in plan
