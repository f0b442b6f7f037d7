"""The search-space format: the domains a hyper-parameter is searched over and their JSON form.

A user writes a domain as `{"loguniform": [low, high]}`, `{"uniform": [low, high]}`,
`{"randint": [low, high]}` or `{"choice": [value, ...]}`; params.yaml records the same form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class LogUniform:
    """Floats between low and high, sampled uniformly in log space (learning rates)."""

    low: float
    high: float


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float


@dataclass(frozen=True)
class IntRange:
    """Integers from low to high, both included."""

    low: int
    high: int


@dataclass(frozen=True)
class Choice:
    options: tuple


Domain = Union[LogUniform, Uniform, IntRange, Choice]
DOMAIN_KINDS = {"loguniform": LogUniform, "uniform": Uniform, "randint": IntRange, "choice": Choice}
SPACE_HELP = (
    'a fixed value, or one of {"loguniform": [low, high]}, {"uniform": [low, high]}, '
    '{"randint": [low, high]} (integers, both included), {"choice": [value, ...]}'
)


def domain_spec(domain: Domain) -> dict:
    """The JSON form a user writes (and params.yaml records) for a domain."""
    if isinstance(domain, Choice):
        return {"choice": list(domain.options)}
    kind = next(k for k, cls in DOMAIN_KINDS.items() if isinstance(domain, cls))
    return {kind: [domain.low, domain.high]}


def space_document(space: Mapping[str, Any]) -> dict[str, Any]:
    """The space as JSON-able values (what params.yaml records)."""
    return {
        k: domain_spec(v) if isinstance(v, (LogUniform, Uniform, IntRange, Choice)) else v for k, v in space.items()
    }
