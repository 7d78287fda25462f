"""The spec language's building blocks: strict scalars, names and the frozen base model."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Strict,
    StringConstraints,
)

Str = Annotated[str, Strict()]
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Name = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$"),
]
"""A name of something declared in the project: a letter, then letters, digits, `_` or `-`."""


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
