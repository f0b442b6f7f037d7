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


# The start's ridge penalty, in the model's standardized units (a column's X'X is about n there): only enough to keep
# the solve well-posed when columns are collinear (s1 and s2 are, closely); the search's weight decay shrinks further.
START_RIDGE = 1.0


class MLP(nn.Module):
    """A linear path plus an MLP residual, in standardized units (features times FEATURE_GAIN, the target's mean and
    std). The residual's last layer starts at zero and the linear path at the least-squares fit of the training split
    (`init_linear_path`): the model starts as the linear model that suits this table, and training learns what the
    hidden layers add. Measured (`python -m bench.diabetes`, 20 seeds of the default search): started from zero, the
    model lost to its ridge baseline (test RMSE 55.05 against 54.53); from the fit it does not (54.44)."""

    def __init__(self, hidden: int = 32, layers: int = 1, dropout: float = 0.2) -> None:
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
        nn.init.zeros_(self.linear.weight)  # predicts the mean until `init_linear_path` (or a state_dict) sets it
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * FEATURE_GAIN
        return (self.linear(x) + self.net(x)).squeeze(-1) * TARGET_STD + TARGET_MEAN


def init_linear_path(model: MLP, batches, total) -> None:
    """The linear path at the (lightly ridged) least-squares fit of the training split, in one pass: X'X and X'y of
    this worker's rows, summed over the workers by `total`, then solved; every worker gets the same weights."""
    xtx = torch.zeros(NUM_FEATURES + 1, NUM_FEATURES + 1, dtype=torch.float64)
    xty = torch.zeros(NUM_FEATURES + 1, dtype=torch.float64)
    for x, y in batches:
        a = torch.cat([x.double() * FEATURE_GAIN, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
        xtx += a.T @ a
        xty += a.T @ ((y.double() - TARGET_MEAN) / TARGET_STD)
    xtx, xty = total(xtx), total(xty)
    if xtx[-1, -1] == 0:
        return  # no training rows on any worker: the zero start (the target's mean)
    penalty = torch.full((NUM_FEATURES + 1,), START_RIDGE, dtype=torch.float64)
    penalty[-1] = 0.0  # the intercept is not shrunk
    w = torch.linalg.solve(xtx + torch.diag(penalty), xty)
    model.linear.weight.copy_(w[:-1].reshape(1, -1).float())
    model.linear.bias.copy_(w[-1:].float())


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
    description="MLP regressor (least-squares linear path plus MLP residual) of diabetes progression from 10 baseline features (PyTorch state_dict), trained with Ray Train DDP",
    schema=Schema(feature_shape=(NUM_FEATURES,), target="real", min_samples=50),
    load_default=load_default,
    build_model=build_model,
    hyperparams={
        "lr": HyperParam(float, 0.002, LogUniform(0.001, 0.005), lambda v: v > 0, "> 0", "Adam learning rate"),
        "weight_decay": HyperParam(float, 1e-2, LogUniform(3e-3, 3e-2), lambda v: v >= 0, ">= 0", "Adam weight decay"),
        "hidden": HyperParam(int, 32, Choice((16, 32)), lambda v: v >= 1, ">= 1", "units per hidden layer"),
        "layers": HyperParam(int, 1, IntRange(1, 2), lambda v: v >= 0, ">= 0", "hidden layers (0: the linear path)"),
        "dropout": HyperParam(
            float, 0.2, Uniform(0.1, 0.3), lambda v: 0 <= v < 1, "in [0, 1)", "dropout after each hidden layer"
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
    init_from_data=init_linear_path,
    prepare_features=prepare_features,
    rows=Rows(columns=(*FEATURE_COLUMNS, "target"), decode=decode_rows, encode=encode_rows),
    split=(0.15, 0.15),  # a small table: 310 / 66 / 66 rows
    labels=("pytorch", "tabular", "regression", "ray"),
    default_source="embedded:sklearn-diabetes",
)
