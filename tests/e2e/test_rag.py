"""A RAG project end to end: a small knowledge base is indexed, a test set of all six kinds is
generated (exported, with reference chunk ids), a suite retrieves and is scored with the RAG
metrics, the report breaks scores down by kind and blames failures; a re-apply does nothing;
editing one document re-indexes that file only and regenerates only the items drawn from it.

The writing and answering models are a scripted OpenAI-compatible server on 127.0.0.1
(tests/scripted_openai.py `RagScript`); the embeddings are the real MiniLM.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec.cli import main
from tests.scripted_openai import RagScript, ScriptedOpenAI

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
name: help-desk
models:
  writer: {{provider: openai, base_url: "{url}", model: writer, params: {{max_tokens: 200}}}}
  small: {{provider: openai, base_url: "{url}", model: small, params: {{max_tokens: 80}}}}
schemas:
  answer: {{type: object, required: [answer], properties: {{answer: {{type: string}}}}}}
prompts:
  grounded:
    system: Answer from the context only. Reply in JSON.
    template: |
      Context:
      {{% for c in context %}}- {{{{ c }}}}
      {{% endfor %}}Question: {{{{ question }}}}
    output: {{schema: answer}}
knowledge:
  help:
    source: {{path: kb, include: ["**/*.md", "**/*.html", "**/*.jsonl"]}}
    chunk: {{size: 200, overlap: 20, unit: characters}}
    embed: minilm
    index: exact
    top_k: 2
datasets:
  golden: {{path: data/golden.jsonl, expected: answer, reference_context: doc}}
  generated:
    generate:
      from: help
      model: writer
      kinds: [simple, complex, distracting, situational, double, out_of_scope]
      count: 12
      seed: 4
      export: data/generated.jsonl
suites:
  rag:
    prompt: grounded
    models: [small]
    dataset: generated
    retrieve: help
    metrics:
      - hit_rate
      - recall_at_k
      - mrr
      - context_precision
      - {{groundedness: {{field: answer}}}}
      - {{groundedness: {{field: answer, judge: writer, name: judged}}}}
      - {{abstention: {{field: answer}}}}
      - {{rouge_l: {{field: answer}}}}
  golden-rag:
    prompt: grounded
    models: [small]
    dataset: golden
    retrieve: help
    metrics: [hit_rate, mrr, {{rouge_l: {{field: answer}}}}]
    correct: "rouge_l >= 0.5"
"""

DOCS = {
    "kb/refunds.md": "# Refunds\nRefunds reach your card within five business days after the "
    "parcel arrives at our warehouse.\n\n## Exceptions\nGift cards are never refunded. Sale "
    "items can be exchanged for another size but not refunded.\n",
    "kb/shipping.md": "# Shipping\nWe ship to thirty countries from two warehouses, in Leeds "
    "and in Lyon.\n\n## Customs\nCustoms fees for parcels leaving the European Union are paid "
    "by the customer on delivery.\n",
    "kb/account.html": "<html><body><h1>Your account</h1><p>Reset your password with the "
    "Forgot password link on the sign-in page.</p><h2>Deleting an account</h2><p>Accounts are "
    "deleted from Settings; a deletion cannot be undone after thirty days.</p></body></html>\n",
    "kb/faq.jsonl": json.dumps({"text": "Invoices are listed under Billing, one invoice per "
                                "order, as PDF files."}) + "\n"
    + json.dumps({"text": "Orders can be cancelled within one hour of purchase from the "
                  "Orders page."}) + "\n",
}  # fmt: skip
GOLDEN = [
    {"question": "How long do refunds take?", "doc": "refunds.md",
     "answer": "Refunds reach your card within five business days after the parcel arrives."},
    {"question": "Who pays customs fees?", "doc": "kb/shipping.md#1",
     "answer": "Customs fees are paid by the customer on delivery."},
    {"question": "Can I pay with bitcoin?", "doc": "payments.md",
     "answer": "Bitcoin payments are accepted at checkout."},
]  # fmt: skip
BAD = {6: "one_word", 9: "unsupported", 1: "duplicate", 7: "duplicate"}
KINDS = {"simple", "complex", "distracting", "situational", "double", "out_of_scope"}


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def server():
    script = RagScript(bad=BAD)
    with ScriptedOpenAI(answer=script) as s:
        s.script = script  # type: ignore[attr-defined]
        yield s


def _project(root: Path, url: str) -> Path:
    for rel, text in DOCS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "golden.jsonl").write_text("".join(json.dumps(r) + "\n" for r in GOLDEN))
    (root / "llmspec.yaml").write_text(SPEC.format(url=url))
    return root


def _items(root: Path) -> dict[int, str]:
    lines = (root / "data" / "generated.jsonl").read_text().splitlines()
    return {json.loads(line)["slot"]: line for line in lines}


def test_rag_project_end_to_end(tmp_path: Path, server) -> None:
    root = _project(tmp_path / "help-desk", server.url)
    r = _invoke("apply", str(root), "--runner", "inline")
    assert r.exit_code == 0, r.output
    assert "Wrote data/generated.jsonl" in r.stdout

    # the frozen set: every slot once, sorted, all six kinds, reference chunk ids of the index
    lines = _items(root)
    assert sorted(lines) == list(range(12))
    raw = (root / "data" / "generated.jsonl").read_text().splitlines()
    assert [json.loads(x)["slot"] for x in raw] == list(range(12))
    items = [json.loads(x) for x in raw]
    rejected = {i["slot"]: i["rejected"] for i in items if "rejected" in i}
    assert rejected == {6: "one_word", 9: "unsupported", 7: "duplicate"}
    accepted = [i for i in items if "rejected" not in i]
    assert {i["kind"] for i in accepted} == KINDS
    lock = json.loads((root / "llmspec.lock").read_text())
    index_out = _stored(root, lock["jobs"]["index.help"]["key"])
    ids = {c["id"] for c in index_out["chunks"]}
    for i in accepted:
        assert set(i["reference_context"]) <= ids
        assert i["reference_sources"] == sorted({x.split("#")[0] for x in i["reference_context"]})
        assert (i["reference_context"] == []) == (i["kind"] == "out_of_scope")
    from llmspec.hashing import file_digest

    entry = lock["testsets"]["generated"]
    assert entry["digest"] == file_digest((root / "data" / "generated.jsonl").read_bytes())
    # the lock records every knowledge file's digest, the chunking and the embedder's files
    help_kb = lock["knowledge"]["help"]
    kb = sorted(p for p in (root / "kb").rglob("*") if p.suffix in (".md", ".html", ".jsonl"))
    assert help_kb["files"] == {
        p.relative_to(root).as_posix(): file_digest(p.read_bytes()) for p in kb
    }
    assert help_kb["chunk"] == {"size": 200, "overlap": 20, "unit": "characters"}
    assert "model.safetensors" in help_kb["embed"]
    assert entry["rejected"] == {"duplicate": 1, "one_word": 1, "unsupported": 1}

    # the report: per-kind scores, abstention, attribution, retrieved chunk ids
    data = json.loads(_invoke("report", str(root), "--format", "json").stdout)
    assert data["testsets"][0]["rejected"] == entry["rejected"]
    rag = next(s for s in data["suites"] if s["name"] == "rag")
    v = rag["variants"][0]
    assert set(v["by_kind"]) == KINDS
    assert v["by_kind"]["out_of_scope"]["metrics"]["abstention"]["mean"] == 1.0
    assert v["by_kind"]["out_of_scope"]["metrics"]["hit_rate"]["n"] == 0
    assert v["metrics"]["abstention"]["n"] == 2
    assert sum(g["rows"] for g in v["by_kind"].values()) == v["rows"] == 9
    for row in rag["rows"]:
        assert all({"id", "source", "score", "text"} <= set(c) for c in row["context"])
        assert row["failure"] in (None, "retriever", "generator", "knowledge base")
    info = {m["name"]: m for m in rag["metric_info"]}
    assert "no judge declared" in info["groundedness"]["method"]
    assert "writer" in info["judged"]["method"]
    golden = next(s for s in data["suites"] if s["name"] == "golden-rag")
    failures = [r["failure"] for r in golden["rows"]]
    assert failures[0] is None  # retrieved and answered right
    assert failures[2] == "knowledge base"  # payments.md is not in the knowledge base
    assert golden["rows"][0]["metrics"]["hit_rate"] == 1.0
    text = _invoke("report", str(root)).stdout
    assert "small by question kind:" in text and "Test set generated: 9 of 12 items" in text

    # a second apply runs nothing and asks nothing but the drift probes of its two remote
    # models (never reused; `server.calls` leaves them out)
    calls = len(server.calls)
    again = _invoke("apply", str(root), "--runner", "inline", "--quiet")
    assert again.exit_code == 0 and "Apply: 2 ran" in again.stdout, again.output
    assert len(server.calls) == calls

    # one document changes: that file is re-chunked, only items drawn from it regenerate
    before = _items(root)
    refunds = root / "kb" / "refunds.md"
    refunds.write_text(refunds.read_text().replace("five business days", "seven business days"))
    plan = _invoke("plan", str(root)).stdout
    assert "~ chunks.help.kb/refunds.md\n      knowledge `help` files: changed kb/refunds.md" in (
        plan
    )
    assert "chunks.help.kb/shipping.md" not in plan and "chunks.help.kb/faq.jsonl" not in plan
    asked = len(server.script.items)
    r = _invoke("apply", str(root), "--runner", "inline", "--quiet")
    assert r.exit_code == 0, r.output
    after = _items(root)
    changed = {s for s in before if before[s] != after[s]}
    regenerated = {x["slot"] for x in server.script.items[asked:]}
    assert changed and changed <= regenerated
    for slot in regenerated:  # each was drawn from the edited document, before or after
        drawn = json.loads(before[slot])["drawn_from"] + json.loads(after[slot])["drawn_from"]
        assert any(d.startswith("kb/refunds.md#") for d in drawn), (slot, drawn)
    for slot in set(before) - regenerated:
        assert before[slot] == after[slot]

    # a fresh checkout (no store): the set comes back from the export file, nothing is asked
    shutil.rmtree(root / ".llmspec")
    asked = len(server.script.items)
    snapshot = (root / "data" / "generated.jsonl").read_bytes()
    r = _invoke("apply", str(root), "--runner", "inline", "--quiet")
    assert r.exit_code == 0, r.output
    assert len(server.script.items) == asked
    assert (root / "data" / "generated.jsonl").read_bytes() == snapshot

    # a reviewer edits an item: the edit is kept, nothing is asked
    first = next(s for s in after if "rejected" not in json.loads(after[s]))
    item = json.loads(after[first])
    item["question"] = "How long, exactly, until a refund reaches my card?"
    edited = dict(after) | {first: json.dumps(item, sort_keys=True, ensure_ascii=False)}
    (root / "data" / "generated.jsonl").write_text(
        "".join(edited[s] + "\n" for s in sorted(edited))
    )
    plan = _invoke("plan", str(root)).stdout
    assert "~ testgen.generated" in plan and 'export_file.state added ("edited")' in plan
    r = _invoke("apply", str(root), "--runner", "inline", "--quiet")
    assert r.exit_code == 0, r.output
    assert len(server.script.items) == asked
    assert _items(root)[first] == edited[first]
    assert "No changes." in _invoke("plan", str(root)).stdout

    # the export is deleted: apply writes it again from the stored set
    (root / "data" / "generated.jsonl").unlink()
    plan = _invoke("plan", str(root)).stdout
    assert "Files written again from stored results (missing):\n  * data/generated.jsonl" in plan
    r = _invoke("apply", str(root), "--runner", "inline", "--quiet")
    assert r.exit_code == 0 and "Wrote data/generated.jsonl" in r.stdout, r.output
    assert _items(root)[first] == edited[first]
    assert len(server.script.items) == asked


def _stored(root: Path, key: str) -> dict:
    from llmspec.store import Store

    return Store(root).get(key).output


INERT = """\
version: 1
name: inert
models:
  echo: {provider: echo}
prompts:
  p: {template: "Context: {{ context | join(' ') }}\\nQ: {{ question }}"}
knowledge:
  kb: {source: {path: kb, include: ["*.md"]}, chunk: {size: 200, overlap: 0}, top_k: 1}
datasets:
  q: {path: q.jsonl, expected: marker}
suites:
  s: {prompt: p, models: [echo], dataset: q, retrieve: kb, metrics: [contains]}
"""


def test_retrieved_text_is_inserted_never_rendered(tmp_path: Path) -> None:
    """A knowledge document holding template syntax reaches the prompt as text."""
    root = tmp_path / "inert"
    (root / "kb").mkdir(parents=True)
    (root / "llmspec.yaml").write_text(INERT)
    (root / "kb" / "refunds.md").write_text(
        "# Refunds\n\nRefunds take {{ 7 * 7 }} days {% if true %}always{% endif %}.\n"
    )
    row = {"question": "How long do refunds take?", "marker": "{{ 7 * 7 }} days {% if true %}"}
    (root / "q.jsonl").write_text(json.dumps(row) + "\n")
    r = _invoke("apply", str(root), "--runner", "inline", "-q")
    assert r.exit_code == 0, r.output
    data = json.loads(_invoke("report", str(root), "--format", "json").stdout)
    (out,) = [row["output"] for row in data["suites"][0]["rows"]]
    assert "{{ 7 * 7 }} days {% if true %}always{% endif %}" in out and "49" not in out
    assert data["suites"][0]["variants"][0]["metrics"]["contains"]["mean"] == 1.0
