"""bench/rag.py still runs against the current code (`--smoke`: a tiny corpus, one round)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_rag_bench_smoke() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    p = subprocess.run(
        [sys.executable, str(REPO / "bench" / "rag.py"), "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "Corpus: 4 files x 10 chunks = 40 chunks" in out
    assert "jobs run: index 5, re-index 2" in out
    for line in ("ratio index / encode only:", "ratio re-index one file / index:", "queries/s"):
        assert line in out, out
    assert "exact and faiss agree on 1.0000 of the top-3 ids" in out
