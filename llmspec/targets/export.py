"""`target: {kind: export, path}`: write the deployment manifest to a file in the project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def check(c: Any, name: str, target: Any) -> None:
    c.check_path(target.path, ("deployments", name, "target", "path"), "export path", exist=False)


def deploy(manifest: dict[str, Any], settings: dict[str, Any], local: dict[str, Any]):
    from llmspec.fsutil import write_atomic
    from llmspec.jobs import JobError

    root = Path(local["root"]).resolve()
    path = (root / settings["path"]).resolve()
    try:
        path.relative_to(root)
    except ValueError:
        raise JobError(f"export path `{settings['path']}` is outside the project") from None
    write_atomic(path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return {"kind": "export", "path": settings["path"]}, {}
