"""Which of two scores is better, by a metric's direction: the one rule the whole project uses.

A metric's mode is "max" (higher is better: accuracy) or "min" (lower is better: RMSE).
"""

from __future__ import annotations

from typing import Iterable

MODES = ("max", "min")


def higher_is_better(mode: str) -> bool:
    if mode not in MODES:
        raise ValueError(f"a metric's mode is 'max' (higher is better) or 'min' (lower is better), not {mode!r}")
    return mode == "max"


def at_least_as_good(mode: str, a: float, b: float) -> bool:
    """a is at least as good as b."""
    return a >= b if higher_is_better(mode) else a <= b


def best_of(mode: str, scores: Iterable[float]) -> float:
    return max(scores) if higher_is_better(mode) else min(scores)


def in_words(mode: str) -> str:
    return "higher is better" if higher_is_better(mode) else "lower is better"
