"""The store: records by key, whole-or-nothing; folders (trees) by key, moved in by a rename."""

from __future__ import annotations

from pathlib import Path

from llmspec.store import Store


def test_records_round_trip_and_damaged_entries_count_as_missing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    put = store.put("j", "score", "sha256:" + "ab" * 32, {"x": 1}, {"seconds": 0.1})
    assert store.get(put.key).output == {"x": 1} and put.key in store.keys()
    path = next((tmp_path / ".llmspec" / "store").glob("*/*.json"))
    path.write_bytes(path.read_bytes()[:20])
    assert store.get(put.key) is None and put.key not in store.keys()


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
