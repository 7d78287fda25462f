"""Models named by a Hugging Face id: found in the local hub cache, never downloaded.

The cache is the documented place outside the project that llmspec reads weights from:
`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. A model's identity is
the content of its snapshot folder, like any local model's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface")
    return Path(home) / "hub"


def snapshot_dir(model_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot folder of `model_id` at `revision` (a branch, tag or commit;
    default `main`), or None when it is not in the cache.

    >>> snapshot_dir("no-such-org/no-such-model") is None
    True
    """
    if not HUB_ID.fullmatch(model_id) or ".." in model_id:
        return None
    folder = hub_cache() / ("models--" + model_id.replace("/", "--"))
    rev = revision or "main"
    ref = folder / "refs" / rev
    commit = ref.read_text().strip() if ref.is_file() else rev
    if not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        return None
    snap = folder / "snapshots" / commit
    return snap if snap.is_dir() else None
