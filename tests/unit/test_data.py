from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmspec import data
from llmspec.errors import LlmspecError


def _error(path: Path, fmt: str) -> LlmspecError:
    with pytest.raises(LlmspecError) as e:
        list(data.read_rows(path, fmt, path.name))
    assert len(e.value.diagnostics) == 1
    return e.value


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return p


@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "rows.jsonl"
    os.mkfifo(fifo)  # no writer: opening it for reading would block forever
    for read in (
        lambda: list(data.read_rows(fifo, "jsonl", "rows.jsonl")),
        lambda: data.jsonl_offsets(fifo, "rows.jsonl"),
        lambda: data.read_jsonl_range(fifo, [0], 0, 1, "rows.jsonl"),
        lambda: data.open_dataset(fifo, "rows.jsonl"),
    ):
        with pytest.raises(LlmspecError) as e:
            read()
        d = e.value.diagnostics[0]
        assert (d.code, d.loc.file) == ("E038", "rows.jsonl")
        assert "named pipe" in d.message and d.hint


@pytest.mark.parametrize(("path", "kind"), [(None, "a directory"), ("/dev/zero", "device")])
def test_directories_and_devices_are_refused(tmp_path: Path, path: str | None, kind: str) -> None:
    e = _error(Path(path) if path else tmp_path, "csv")
    assert e.diagnostics[0].code == "E038" and kind in e.diagnostics[0].message


def test_file_size_cap(tmp_path: Path) -> None:
    p = tmp_path / "huge.jsonl"
    with p.open("wb") as fh:  # sparse: nothing of this size is written or read
        fh.truncate(data.MAX_DATASET_BYTES + 1)
    e = _error(p, "jsonl")
    d = e.diagnostics[0]
    assert d.code == "E037" and "2 GiB" in d.message and "split" in d.hint
    p = tmp_path / "big.json"  # read whole, so capped lower
    with p.open("wb") as fh:
        fh.truncate(data.MAX_JSON_DATASET_BYTES + 1)
    d = _error(p, "json").diagnostics[0]
    assert d.code == "E037" and "256 MiB" in d.message


def test_line_and_record_size_caps(tmp_path: Path) -> None:
    long = '{"q": "' + "x" * data.MAX_ROW_BYTES + '"}\n'
    p = _write(tmp_path, "long.jsonl", '{"q": 1}\n' + long)
    d = _error(p, "jsonl").diagnostics[0]
    assert (d.code, d.loc.line) == ("E037", 2) and "8 MiB" in d.message
    with pytest.raises(LlmspecError) as e:
        data.jsonl_offsets(p)
    assert e.value.diagnostics[0].code == "E037"
    # a CSV record of many lines (a quoted field with line breaks) counts as a whole
    p = _write(tmp_path, "long.csv", 'q,a\n1,2\n"' + "x\n" * (data.MAX_ROW_BYTES // 2) + '",3\n')
    d = _error(p, "csv").diagnostics[0]
    assert (d.code, d.loc.line) == ("E037", 3)


def test_large_csv_fields_are_read(tmp_path: Path) -> None:
    # csv's default limit is 128 KiB a field
    p = _write(tmp_path, "wide.csv", "q,a\n" + "x" * 200_000 + ",1\n")
    assert [len(r["q"]) for r in data.read_rows(p, "csv")] == [200_000]


def test_csv_errors_are_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data.csv, "reader", functools.partial(csv.reader, strict=True))
    p = _write(tmp_path, "bad.csv", 'q,a\n1,2\n"x"y,3\n')
    d = _error(p, "csv").diagnostics[0]
    assert (d.code, d.loc.line) == ("E032", 3) and "invalid CSV" in d.message


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deeply_nested_rows_are_refused(tmp_path: Path, depth: int) -> None:
    row = '{"q": 1}\n{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}\n"
    d = _error(_write(tmp_path, "deep.jsonl", row), "jsonl").diagnostics[0]
    assert (d.code, d.loc.line) == ("E032", 2) and "64 levels" in d.message
    d = _error(_write(tmp_path, "deep.json", "[" + row.split("\n")[1] + "]"), "json").diagnostics[0]
    assert d.code == "E032"


def test_rows_nested_64_levels_are_read(tmp_path: Path) -> None:
    row = '{"a": ' + "[" * 63 + "]" * 63 + "}\n"
    assert len(list(data.read_rows(_write(tmp_path, "ok.jsonl", row), "jsonl"))) == 1


def test_lone_surrogates_are_refused_where_they_are(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.jsonl", '{"q": "fine"}\n{"q": "ok", "context": ["a", "x\\udfff"]}\n')
    d = _error(p, "jsonl").diagnostics[0]
    assert (d.code, d.loc.line, d.loc.col) == ("E032", 2, 32)
    assert "column `context`" in d.message and "surrogate" in d.message and d.hint
    p = _write(tmp_path, "s.json", '[{"q": "a"}, {"\\ud800": 1}]')
    d = _error(p, "json").diagnostics[0]
    assert d.code == "E032" and d.message.startswith("row 2:")
    # a complete pair is an ordinary character
    p = _write(tmp_path, "pair.jsonl", '{"q": "\\ud83d\\ude00"}\n')
    assert list(data.read_rows(p, "jsonl")) == [{"q": "\U0001f600"}]
    offsets = data.jsonl_offsets(p)
    assert data.read_jsonl_range(p, offsets, 0, 1) == [{"q": "\U0001f600"}]


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    p = _write(tmp_path, "u.jsonl", b'{"q": 1}\n{"q": "\xff"}\n')
    d = _error(p, "jsonl").diagnostics[0]
    assert (d.code, d.loc.line, d.loc.col) == ("E032", 2, 8)
    p = _write(tmp_path, "u.csv", b"q\nok\n\xff\n")
    assert _error(p, "csv").diagnostics[0].loc.line == 3


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    bom = "\ufeff"
    p = _write(tmp_path, "b.jsonl", bom + '{"q": 1}\n')
    assert list(data.read_rows(p, "jsonl")) == data.read_jsonl_range(p, [0], 0, 1) == [{"q": 1}]
    assert list(data.read_rows(_write(tmp_path, "b.csv", bom + "q\n1\n"), "csv")) == [{"q": "1"}]
    assert list(data.read_rows(_write(tmp_path, "b.json", bom + '[{"q": 1}]'), "json"))


def test_csv_rows_as_before(tmp_path: Path) -> None:
    p = _write(tmp_path, "r.csv", 'q,a\r\n"x, y",1\r\n\r\n3\r\n"multi\nline",2\n')
    assert list(data.read_rows(p, "csv")) == [
        {"q": "x, y", "a": "1"},
        {"q": "3", "a": None},
        {"q": "multi\nline", "a": "2"},
    ]
    d = _error(_write(tmp_path, "x.csv", "q,a\n1,2\n1,2,3\n"), "csv").diagnostics[0]
    assert (d.code, d.loc.line) == ("E032", 3)


# -- property-based: any bytes in any format give rows or an LlmspecError ---------------------

JSONL_BITS = [b"{", b"}", b"[", b"]", b'"', b":", b",", b"\n", b"\r", b" ", b"1", b"a", b"\\",
              b"\\ud800", b"\\u", b"\x00", b"\xff", b"\xef\xbb\xbf", b"null", b'"q"',
              b"\t"]  # fmt: skip


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=300), st.lists(st.sampled_from(JSONL_BITS), max_size=80).map(b"".join)
    ),
    fmt=st.sampled_from(["jsonl", "csv", "json"]),
)
def test_fuzz_dataset_bytes(tmp_path: Path, content: bytes, fmt: str) -> None:
    p = tmp_path / f"fuzz.{fmt}"
    p.write_bytes(content)
    try:
        rows = list(data.read_rows(p, fmt, "fuzz"))
    except LlmspecError as e:
        assert e.diagnostics and all(
            d.loc is not None and d.loc.file == "fuzz" for d in e.diagnostics
        )
        return
    assert all(isinstance(r, dict) for r in rows)
    for r in rows:  # whatever was read can be hashed later
        repr(r).encode("utf-8")
    if fmt == "jsonl":  # sharded reads see the same rows
        offsets = data.jsonl_offsets(p)
        assert data.read_jsonl_range(p, offsets, 0, len(offsets)) == rows
