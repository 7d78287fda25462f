"""`deploy` jobs: ship a model + prompt once the suites it requires have passed."""

from __future__ import annotations

import json
from typing import Any

from llmspec.jobs import Blocked, JobError


def run(job: Any, deps: Any, ctx: Any) -> tuple[Any, dict]:
    p = job.params
    dep = ctx.project.spec.deployments[p["deployment"]]
    failed = [d for d in job.deps if d.startswith("gate.") and not deps[d]["passed"]]
    if failed:
        raise Blocked(f"required suite gates failed: {', '.join(failed)}")
    manifest = {
        "deployment": p["deployment"],
        "model": {
            "name": dep.model,
            **{k: v for k, v in job.inputs.items() if k in ("model", "params")},
        },
        "prompt": {"name": dep.prompt, "digest": job.inputs["prompt"]},
        "requires": {
            d.removeprefix("gate."): deps[d]["passed"] for d in job.deps if d.startswith("gate.")
        },
        "key": job.key,
    }
    target = dep.target
    if target is None:
        return {"manifest": manifest, "target": None}, {}
    if target.kind == "export":
        from llmspec.fsutil import write_atomic

        path = (ctx.root / target.path).resolve()
        try:
            path.relative_to(ctx.root.resolve())
        except ValueError:
            raise JobError(f"export path `{target.path}` is outside the project") from None
        write_atomic(path, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
        return {"manifest": manifest, "target": {"kind": "export", "path": target.path}}, {}
    return {"manifest": manifest, "target": {"kind": "http", "url": target.url}}, _post(
        target.url, manifest, target.token
    )


def _post(url: str, manifest: dict, token_ref: str | None) -> dict:
    """POST the manifest as JSON; the token comes from the environment, never the spec."""
    import os
    import urllib.error
    import urllib.request

    from llmspec.resolve import ENV_REF

    headers = {"Content-Type": "application/json"}
    if token_ref:
        name = ENV_REF.fullmatch(token_ref).group(1)
        token = os.environ.get(name)
        if not token:
            raise JobError(f"environment variable `{name}` is not set (deployment token)")
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(manifest, sort_keys=True).encode()
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return {"status": resp.status}
    except urllib.error.HTTPError as e:
        raise JobError(f"deployment endpoint answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise JobError(f"cannot reach the deployment endpoint: {getattr(e, 'reason', e)}") from None
