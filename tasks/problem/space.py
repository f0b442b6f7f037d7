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


FORMS = {
    "loguniform": '{"loguniform": [low, high]} (floats, sampled evenly in log space: learning rates)',
    "uniform": '{"uniform": [low, high]} (floats)',
    "randint": '{"randint": [low, high]} (integers, both included)',
    "choice": '{"choice": [value, ...]}',
}


def forms_for(kind: type) -> list[str]:
    """The domain kinds a hyper-parameter of this type may be searched over."""
    if kind is float:
        return ["loguniform", "uniform", "choice"]
    if kind is int:
        return ["randint", "choice"]
    return ["choice"]


def example_domain(kind: type, default: Any, search: Any = None) -> dict:
    """A domain a user could write for a hyper-parameter: its default search, else one around its default."""
    if search is not None:
        return domain_spec(search)
    if kind is float and isinstance(default, (int, float)) and default > 0:
        return {"loguniform": [float(f"{default / 10:.3g}"), float(f"{default * 10:.3g}")]}
    if kind is float:
        return {"uniform": [default, default + 1]}
    if kind is int and isinstance(default, int):
        return {"randint": [max(1, default // 2), max(2, default * 2)]}
    return {"choice": [default]}


def space_help(name: str, kind: type, default: Any, search: Any = None) -> str:
    """What a search space accepts for one hyper-parameter, with an example for it."""
    import json

    forms = "; ".join(FORMS[k] for k in forms_for(kind))
    example = json.dumps({"space": {name: example_domain(kind, default, search)}})
    fixed = json.dumps({"space": {name: default}})
    return (
        f"In a search space, {name} ({kind.__name__}) takes a fixed value or one of: {forms}. "
        f"E.g. --tune '{example}' searches it, --tune '{fixed}' fixes it."
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
