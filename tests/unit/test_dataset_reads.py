"""A dataset file is read and parsed once per content: resolve scans it (columns, row count,
file and row digests, where each JSONL row starts), compile takes the digests from that scan,
and each generate job reads only its own shard's bytes. A plan with the cache warm reads none
of it."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmspec import data
from llmspec.cli import main
from tests.unit.test_runners import echo_project


@pytest.fixture
def reads(monkeypatch) -> Counter:
    """Opens of any dataset file (for parsing or hashing) and JSONL lines parsed."""
    seen: Counter = Counter()
    open_dataset, parse = data.open_dataset, data.parse_jsonl_line
    path_open = Path.open

    def counted_open(path, *a, **k):
        seen["opens"] += 1
        return open_dataset(path, *a, **k)

    def counted_parse(*a, **k):
        seen["parses"] += 1
        return parse(*a, **k)

    def counted_path_open(self, *a, **k):
        if self.name == "rows.jsonl":
            seen["opens"] += 1  # HashCache.file hashed the file's bytes this way
        return path_open(self, *a, **k)

    monkeypatch.setattr(data, "open_dataset", counted_open)
    monkeypatch.setattr(data, "parse_jsonl_line", counted_parse)
    monkeypatch.setattr(Path, "open", counted_path_open)
    return seen


def test_a_cold_apply_reads_the_dataset_once_then_each_shard(tmp_path: Path, reads) -> None:
    root = echo_project(tmp_path / "p", rows=40, shard=10)
    reads.clear()  # (writing the project opened it)
    r = CliRunner().invoke(main, ["apply", "-q", str(root), "--runner", "inline"])
    assert r.exit_code == 0, r.output
    # one scan of the file (40 rows), then 4 shards of 10 rows, each reading its own bytes
    assert reads == {"opens": 1 + 4, "parses": 40 + 40}

    reads.clear()
    r = CliRunner().invoke(main, ["plan", str(root)])
    assert r.exit_code == 0 and "No changes" in r.output, r.output
    assert reads == {}  # warm: size and mtime unchanged, the scan is in .llmspec/cache/


def test_an_edited_dataset_is_scanned_again(tmp_path: Path, reads) -> None:
    root = echo_project(tmp_path / "p", rows=4, shard=2)
    assert CliRunner().invoke(main, ["plan", str(root)]).exit_code == 0
    with (root / "rows.jsonl").open("a") as fh:
        fh.write(json.dumps({"question": "new", "answer": "Q: new"}) + "\n")
    reads.clear()
    r = CliRunner().invoke(main, ["plan", str(root)])
    assert r.exit_code == 0 and reads["parses"] == 5, (r.output, reads)
    assert "generate.s.echo.2" in r.output  # the new row's shard


def test_shards_read_their_own_bytes(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    rows = [{"q": f"row {i}", "ü": "x" * i} for i in range(7)]
    p.write_bytes(b"\xef\xbb\xbf" + "\n\n".join(json.dumps(r) for r in rows).encode() + b"\n")
    scan = data.scan_dataset(p, "jsonl")
    assert len(scan.rows) == 7 and scan.columns == ["q", "ü"]
    got = []
    for start in range(0, 7, 3):
        first, last = scan.byte_range(start, min(start + 3, 7))
        got += data.read_jsonl_bytes(p, first, last)
    assert got == rows
    assert data.read_jsonl_bytes(p, *scan.byte_range(7, 7)) == []
