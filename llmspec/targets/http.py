"""`target: {kind: http, url, token}`: POST the deployment manifest as JSON.

The token is a `${env:NAME}` reference, read from the environment when the job runs; it never
enters a key, the store or the lock.
"""

from __future__ import annotations

import json
import os
from typing import Any

from llmspec.secrets import ENV_REF


def check(c: Any, name: str, target: Any) -> None:
    base = ("deployments", name, "target")
    if target.token and not ENV_REF.fullmatch(target.token):
        c.error(
            "E051",
            f"`token` of deployment `{name}` must be a `${{env:NAME}}` reference",
            base + ("token",),
            "never write a secret into a spec: set it in the environment and reference it",
        )
    if not target.url.startswith(("http://", "https://")):
        c.error("E013", f"`url` of deployment `{name}` must start with http:// or https://",
                base + ("url",))  # fmt: skip


def deploy(manifest: dict[str, Any], settings: dict[str, Any], local: dict[str, Any]):
    import urllib.error
    import urllib.request

    from llmspec.jobs import JobError

    headers = {"Content-Type": "application/json"}
    token_ref = local.get("token")
    if token_ref:
        name = ENV_REF.fullmatch(token_ref).group(1)
        token = os.environ.get(name)
        if not token:
            raise JobError(f"environment variable `{name}` is not set (deployment token)")
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(manifest, sort_keys=True).encode()
    req = urllib.request.Request(settings["url"], data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        raise JobError(f"deployment endpoint answered HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise JobError(f"cannot reach the deployment endpoint: {getattr(e, 'reason', e)}") from None
    return {"kind": "http", "url": settings["url"]}, {"status": status}
