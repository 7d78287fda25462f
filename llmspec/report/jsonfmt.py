"""The JSON report: the results document itself (schemas/results.schema.json)."""

from __future__ import annotations

from typing import Any


def render(results: Any) -> str:
    return results.model_dump_json(indent=2) + "\n"
