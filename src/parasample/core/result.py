"""The result type of samplers that trade work for depth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .cost import Cost

__all__ = ["SampleResult"]

S = TypeVar("S")


@dataclass(frozen=True)
class SampleResult(Generic[S]):
    """``sample`` plus its measured ``cost`` and free-form diagnostics ``info``."""

    sample: S
    cost: Cost
    info: dict[str, Any] = field(default_factory=dict)
