"""The store: records by key, whole-or-nothing; folders (trees) by key, moved in by a rename."""

from __future__ import annotations

from pathlib import Path

from llmspec.store import Store

KEYS = [f"sha256:{i:064x}" for i in range(4)]


def _pack(root: Path) -> Path:
    return root / ".llmspec" / "store" / "records.pack"


def _spans(root: Path) -> dict[str, tuple[int, int]]:
    """key -> (offset, length) in the pack, from the index (the last line of a key wins)."""
    out = {}
    for line in (root / ".llmspec" / "store" / "records.idx").read_text().splitlines():
        h, offset, length, _crc = line.split(" ")
        out[f"sha256:{h}"] = (int(offset), int(length))
    return out


def test_records_round_trip_through_the_pack(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i, k in enumerate(KEYS):
        store.put(f"j{i}", "score", k, {"x": i, "text": "a\nb ü"}, {"seconds": 0.1})
    assert store.keys() == set(KEYS)
    fresh = Store(tmp_path)  # another process: reads the index from the file
    assert [fresh.get(k).output["x"] for k in KEYS] == [0, 1, 2, 3]
    assert fresh.get(KEYS[2]).meta == {"seconds": 0.1} and fresh.get(KEYS[2]).job == "j2"
    assert [s.job for s in fresh.records()] == ["j0", "j1", "j2", "j3"]
    assert not list((tmp_path / ".llmspec" / "store").glob("*/*.json"))  # no file per record
    # a key written again (its entry was damaged): the last record wins
    store.put("j1", "score", KEYS[1], {"x": 10})
    assert Store(tmp_path).get(KEYS[1]).output == {"x": 10}


def test_a_record_is_the_canonical_json_of_its_fields(tmp_path: Path) -> None:
    import json

    from llmspec.hashing import canonical, digest

    store = Store(tmp_path)
    output = {"rows": [{"text": "ü\n\u2028", "n": 1.5}], "a": None}
    put = store.put("j", "generate", KEYS[0], output, {"seconds": 2})
    assert put.digest == digest(output)
    offset, length = _spans(tmp_path)[KEYS[0]]
    line = _pack(tmp_path).read_bytes()[offset : offset + length]
    record = {"job": "j", "kind": "generate", "key": KEYS[0], "output": output,
              "digest": digest(output), "meta": {"seconds": 2}}  # fmt: skip
    assert line == canonical(record).encode() + b"\n" and json.loads(line) == record
    store.close()


def test_a_write_cut_short_loses_only_that_entry(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i, k in enumerate(KEYS[:3]):
        store.put(f"j{i}", "score", k, {"x": i})
    pack = _pack(tmp_path)
    offset, length = _spans(tmp_path)[KEYS[2]]
    with pack.open("r+b") as fh:  # killed in the middle of appending the last record
        fh.truncate(offset + length // 2)
    reader = Store(tmp_path)
    assert reader.keys() == set(KEYS[:2]) and reader.get(KEYS[2]) is None
    # the next apply writes after the torn line, never into it
    reader.put("j3", "score", KEYS[3], {"x": 3})
    again = Store(tmp_path)
    assert again.keys() == {KEYS[0], KEYS[1], KEYS[3]}
    assert [again.get(k).output["x"] for k in (KEYS[0], KEYS[1], KEYS[3])] == [0, 1, 3]


def test_torn_or_zeroed_index_lines_and_zeroed_records_count_as_missing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i, k in enumerate(KEYS[:3]):
        store.put(f"j{i}", "score", k, {"x": i})
    idx = tmp_path / ".llmspec" / "store" / "records.idx"
    lines = idx.read_bytes().splitlines(keepends=True)
    # a power cut: the last index line cut short (a prefix that still parses as numbers)
    idx.write_bytes(b"".join(lines[:2]) + lines[2][:-6])
    assert Store(tmp_path).keys() == set(KEYS[:2])
    # blocks of zeros where the first record was
    offset, length = _spans(tmp_path)[KEYS[0]]
    with _pack(tmp_path).open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\0" * length)
    reader = Store(tmp_path)
    assert reader.keys() == {KEYS[1]} and reader.get(KEYS[0]) is None
    reader.put("j2", "score", KEYS[2], {"x": 2})
    assert Store(tmp_path).keys() == {KEYS[1], KEYS[2]}


def test_an_index_line_run_into_another_record_fails_its_check(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put("j0", "score", KEYS[0], {"x": 0})
    idx = tmp_path / ".llmspec" / "store" / "records.idx"
    line = idx.read_bytes()
    idx.write_bytes(line.replace(b" 0 ", b" 1 ", 1))  # the offset of another record
    assert Store(tmp_path).keys() == set() and Store(tmp_path).get(KEYS[0]) is None


def test_entries_of_the_file_per_record_store_are_still_read(tmp_path: Path) -> None:
    from llmspec.hashing import canonical, digest

    old = tmp_path / ".llmspec" / "store" / KEYS[0][7:9] / f"{KEYS[0][7:]}.json"
    old.parent.mkdir(parents=True)
    record = {"job": "j", "kind": "score", "key": KEYS[0], "output": {"x": 1},
              "digest": digest({"x": 1}), "meta": {}}  # fmt: skip
    old.write_text(canonical(record))
    cut = old.with_name(f"{KEYS[1][7:]}.json")
    cut.write_text(canonical(record | {"key": KEYS[1]})[:30])
    store = Store(tmp_path)
    assert store.keys() == {KEYS[0]} and store.get(KEYS[0]).output == {"x": 1}
    assert store.get(KEYS[1]) is None
    store.put("k", "score", KEYS[2], {"y": 2})
    assert Store(tmp_path).keys() == {KEYS[0], KEYS[2]}


def test_two_writers_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys; from llmspec.store import Store\n"
        "s = Store(sys.argv[1]); w = int(sys.argv[2])\n"
        "for i in range(200): s.put(f'j{w}.{i}', 'score', f'sha256:{w:032x}{i:032x}', "
        "{'w': w, 'i': i, 'pad': 'x' * (i * 13 % 5000)})\n"
    )
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(w)], env=env)
        for w in (1, 2)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    store = Store(tmp_path)
    assert len(store.keys()) == 400
    assert all(s.output["i"] == int(s.job.split(".")[1]) for s in store.records())


def test_trees_are_stored_whole_by_key(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = "sha256:" + "cd" * 32
    assert store.tree(key) is None
    src = store.tmp_dir()
    (src / "weights").mkdir()
    (src / "weights" / "model.safetensors").write_bytes(b"w")
    (src / "config.json").write_text("{}")
    d1 = store.put_tree(key, src)
    tree = store.tree(key)
    assert tree is not None and (tree / "weights" / "model.safetensors").read_bytes() == b"w"
    assert not src.exists()
    again = store.tmp_dir()
    (again / "config.json").write_text("{}")
    (again / "weights").mkdir()
    (again / "weights" / "model.safetensors").write_bytes(b"w")
    assert store.put_tree(key, again) == d1 and not again.exists()
