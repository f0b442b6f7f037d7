"""Diabetes progression: a regression on scikit-learn's diabetes table, an MLP, RMSE (lower is better).

442 patients, 10 baseline features (age, sex, BMI, blood pressure, six blood serum values), the
target a measure of disease progression one year later. The embedded data are scikit-learn's own
copy (`sklearn.datasets.load_diabetes`, read offline), features as scikit-learn scales them (each
column mean 0, norm 1). A dataset of your own is an `.npz` with `x` (N, 10) scaled the same way and
`y` (N,) in the target's units.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from tasks.problem import Choice, HyperParam, IntRange, LogUniform, Metric, Problem, Rows, Schema, Uniform

NUM_FEATURES = 10
# scikit-learn scales each column to norm 1 over its 442 rows: times sqrt(442) is unit variance.
FEATURE_GAIN = math.sqrt(442)
TARGET_MEAN, TARGET_STD = 152.0, 77.0  # of the table's target; the net predicts in standard units


class MLP(nn.Module):
    """A linear path plus an MLP residual, both zero at the start (the prediction starts at the target's mean): it
    reaches the linear fit, which suits this table, within a few epochs, and the search decides how much the hidden
    layers add. Measured (README, "Measured"): the plain MLP lost to a ridge regression within the default budget."""

    def __init__(self, hidden: int = 32, layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = NUM_FEATURES
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        last = nn.Linear(width, 1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*blocks, last)
        self.linear = nn.Linear(NUM_FEATURES, 1)
        nn.init.zeros_(self.linear.weight)  # predicts the mean at the start: a few epochs reach the linear fit
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * FEATURE_GAIN
        return (self.linear(x) + self.net(x)).squeeze(-1) * TARGET_STD + TARGET_MEAN


def build_model(hp: Mapping[str, Any]) -> nn.Module:
    return MLP(hidden=hp["hidden"], layers=hp["layers"], dropout=hp["dropout"])


def load_default() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_diabetes

    table = load_diabetes()
    return {"x": table.data, "y": table.target}


def prepare_features(x: np.ndarray, name: str) -> np.ndarray:
    if x.shape[1:] != (NUM_FEATURES,):
        raise ValueError(
            f"{name} has shape {x.shape}: the diabetes table has {NUM_FEATURES} features per row, (N, {NUM_FEATURES})."
        )
    if x.size and np.abs(x).max() > 1:
        raise ValueError(
            f"{name} has values up to {np.abs(x).max():.4g}: features must be scaled as scikit-learn's "
            "load_diabetes() scales them (each column mean 0, norm 1); raw units are not accepted."
        )
    return x.astype(np.float32)


def _squared_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((out - y) ** 2).sum()


FEATURE_COLUMNS = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")  # scikit-learn's names


def decode_rows(columns) -> tuple[np.ndarray, np.ndarray]:
    """Parquet rows -> samples: ten scaled feature columns, and `target`."""
    x = np.stack([np.asarray(columns[c], dtype=np.float32) for c in FEATURE_COLUMNS], axis=1)
    return prepare_features(x, "the feature columns"), np.asarray(columns["target"], dtype=np.float32)


def encode_rows(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    return {
        **{c: np.asarray(x[:, i], np.float32) for i, c in enumerate(FEATURE_COLUMNS)},
        "target": np.asarray(y, np.float32),
    }


PROBLEM = Problem(
    name="diabetes",
    description="MLP regressor (linear path plus MLP residual) of diabetes progression from 10 baseline features (PyTorch state_dict), trained with Ray Train DDP",
    schema=Schema(feature_shape=(NUM_FEATURES,), target="real", min_samples=50),
    load_default=load_default,
    build_model=build_model,
    hyperparams={
        "lr": HyperParam(float, 0.01, LogUniform(0.003, 0.03), lambda v: v > 0, "> 0", "Adam learning rate"),
        "weight_decay": HyperParam(float, 1e-4, LogUniform(1e-6, 1e-2), lambda v: v >= 0, ">= 0", "Adam weight decay"),
        "hidden": HyperParam(int, 32, Choice((16, 32, 64)), lambda v: v >= 1, ">= 1", "units per hidden layer"),
        "layers": HyperParam(int, 1, IntRange(1, 2), lambda v: v >= 1, ">= 1", "hidden layers"),
        "dropout": HyperParam(
            float, 0.1, Uniform(0.0, 0.2), lambda v: 0 <= v < 1, "in [0, 1)", "dropout after each hidden layer"
        ),
        "batch_size": HyperParam(int, 32, Choice((16, 32)), lambda v: v >= 1, ">= 1", "global batch size"),
    },
    metrics=(
        Metric("rmse", _squared_error, mode="min", finish=math.sqrt),
        Metric("mae", lambda out, y: (out - y).abs().sum(), mode="min"),
    ),
    select="rmse",
    gate=65.0,
    loss=nn.MSELoss,
    make_optimizer=lambda params, hp: torch.optim.Adam(params, lr=hp["lr"], weight_decay=hp["weight_decay"]),
    prepare_features=prepare_features,
    rows=Rows(columns=(*FEATURE_COLUMNS, "target"), decode=decode_rows, encode=encode_rows),
    split=(0.15, 0.15),  # a small table: 310 / 66 / 66 rows
    labels=("pytorch", "tabular", "regression", "ray"),
    default_source="embedded:sklearn-diabetes",
)
