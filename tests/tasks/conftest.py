"""Shared fixtures for the unit tests of `tasks/`: small synthetic digit arrays and the embedded set."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.data import Splits, load_raw, make_splits, parse_source


def _synthetic(n: int = 200, seed: int = 0, counts: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`n` random uint8 images (N, 784) with balanced labels 0-9 (or the given class counts).

    Pixel 0 of image i holds i (for n <= 256), so a row can be traced back to its source index.
    """
    rng = np.random.default_rng(seed)
    if counts is None:
        y = np.arange(n, dtype=np.int64) % 10
    else:
        y = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
        n = len(y)
    x = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    if n <= 256:
        x[:, 0] = np.arange(n, dtype=np.uint8)
    return x, y


@pytest.fixture
def synthetic():
    """Factory: synthetic(n=200, seed=0, counts=None) -> (x (N, 784) uint8, y (N,) int64)."""
    return _synthetic


@pytest.fixture
def write_npz(tmp_path):
    """Factory: write_npz(name, **arrays) -> path of an .npz written under tmp_path."""

    def write(name: str = "data.npz", **arrays: np.ndarray):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write


@pytest.fixture(scope="session")
def embedded_arrays() -> dict[str, np.ndarray]:
    arrays, rev = load_raw(parse_source(""))
    assert rev == ""
    return arrays


@pytest.fixture(scope="session")
def embedded_splits(embedded_arrays) -> Splits:
    return make_splits(embedded_arrays, test_fraction=0.2, seed=0)
