"""How a search chooses its trials, as pure logic: the searchers a user can name and the grid a space spans.

    "random"  Ray Tune's random sampling (the default): num_samples independent draws from the space.
    "grid"    every combination of the space's choices and integer ranges, each once; num_samples is the
              budget, and a grid larger than it is refused (no silent truncation). Continuous domains
              (uniform, loguniform) have no grid: they are refused, naming what to give instead.
    "optuna"  Optuna's TPE sampler (Bayesian): each new trial is drawn where earlier ones scored well;
              it alone takes a warm start (the earlier experiments' trials, with their scores).

No Ray here: tasks/ray_glue/searchers.py turns these into Ray Tune's searchers.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

from tasks.problem import Choice, IntRange, LogUniform, Uniform
from tasks.problem.space import domain_spec

SEARCHERS = ("random", "grid", "optuna")


class SearchError(ValueError):
    """A searcher cannot search this space; the message says why and what to do."""


def searched(space: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters a space varies (a continuous domain with low == high is a fixed value)."""
    out = {}
    for name, d in space.items():
        if isinstance(d, (LogUniform, Uniform)) and d.low == d.high:
            continue
        if isinstance(d, (LogUniform, Uniform, IntRange, Choice)):
            out[name] = d
    return out


def grid_axes(space: Mapping[str, Any]) -> dict[str, list]:
    """Each searched hyper-parameter's grid values: a choice's options, an integer range's every integer.

    A continuous domain has no grid and is refused: list the values to try as a choice, or use optuna.
    """
    axes = {}
    for name, d in searched(space).items():
        if isinstance(d, Choice):
            axes[name] = list(d.options)
        elif isinstance(d, IntRange):
            axes[name] = list(range(d.low, d.high + 1))
        else:
            raise SearchError(
                f"tune.search='grid' cannot search {name} over {domain_spec(d)}: a grid takes only choices and "
                f'integer ranges (randint). Give the values to try, e.g. "space": {{"{name}": {{"choice": '
                f'[{d.low}, {d.high}]}}}}, fix it to one value, or use "search": "optuna" (or "random") for a '
                "continuous range."
            )
    return axes


def grid_size(space: Mapping[str, Any]) -> int:
    return math.prod(len(v) for v in grid_axes(space).values())


def grid_points(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination, in a fixed order (the first axis varies slowest)."""
    axes = grid_axes(space)
    return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]


def check_search(space: Mapping[str, Any], search: str, num_samples: int) -> None:
    """Refuse a search that cannot run on this space, before any cluster starts."""
    if search != "grid":
        return
    size = grid_size(space)
    if size > num_samples:
        raise SearchError(
            f"tune.search='grid' over {', '.join(grid_axes(space)) or 'nothing'} has {size} combinations, more "
            f"than tune.num_samples={num_samples}: a grid runs each combination once and num_samples is its "
            f'budget. Set "num_samples": {size}, or search fewer values.'
        )
