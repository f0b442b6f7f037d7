"""Diabetes against its ridge baseline: how far the built-in regression's model family is from the baseline on the
same splits, over seeds, with no search in the way. Figures, never pass/fail (bench/README.md, "Diabetes").

    .venv/bin/python -m bench.diabetes            # about a minute on one core

The project's own splits (`make_splits`, seed 0: 310 / 66 / 66 rows) and baseline (`score_baseline`: a ridge
regression, its alpha chosen on validation); each configuration trained in one process with the problem's own
model, loss and optimizer (plain mini-batch loop, one thread) for 5 seeds, the last epoch's validation and test
RMSE averaged. "linear" is the model with no hidden layer (its linear path alone).
"""

from __future__ import annotations

import json
import math
import statistics

import torch

from tasks.data.arrays import load_raw, make_splits, parse_source
from tasks.problem import load_problem
from tasks.training.baselines import score_baseline

CONFIGS = [  # (name, hyper-parameters over the problem's defaults, epochs)
    ("default", {}, 5),
    ("default", {}, 20),
    ("linear", {"layers": 0}, 10),
    ("linear, lr 0.003", {"layers": 0, "lr": 0.003}, 30),
    ("hidden 16, dropout 0.2, weight decay 1e-2", {"hidden": 16, "dropout": 0.2, "weight_decay": 1e-2}, 5),
    (
        "hidden 16, dropout 0.2, weight decay 1e-2, lr 0.003",
        {"hidden": 16, "dropout": 0.2, "weight_decay": 1e-2, "lr": 0.003},
        20,
    ),
]
SEEDS = range(5)


def rmse(model, x, y) -> float:
    with torch.no_grad():
        return math.sqrt(float(((model(x) - y) ** 2).mean()))


def train(problem, splits, hp: dict, epochs: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = problem.build_model(hp)
    opt, loss = problem.make_optimizer(model.parameters(), hp), problem.loss()
    xt, yt = torch.tensor(splits.x_train), torch.tensor(splits.y_train, dtype=torch.float32)
    xv, yv = torch.tensor(splits.x_val), torch.tensor(splits.y_val, dtype=torch.float32)
    xs, ys = torch.tensor(splits.x_test), torch.tensor(splits.y_test, dtype=torch.float32)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), hp["batch_size"]):
            rows = order[i : i + hp["batch_size"]]
            opt.zero_grad()
            loss(model(xt[rows]), yt[rows]).backward()
            opt.step()
    model.eval()
    return rmse(model, xv, yv), rmse(model, xs, ys)


def main() -> None:
    torch.set_num_threads(1)
    problem = load_problem("diabetes")
    splits = make_splits(load_raw(parse_source(""), problem)[0], problem, seed=0)
    base = score_baseline(problem, splits)
    rows = [
        {
            "model": base.name,
            "val_rmse": base.scores["baseline/val/rmse"],
            "test_rmse": base.scores["baseline/test/rmse"],
        }
    ]
    defaults = {k: h.default for k, h in problem.hyperparams.items()}
    for name, over, epochs in CONFIGS:
        runs = [train(problem, splits, {**defaults, **over}, epochs, s) for s in SEEDS]
        tests = [t for _, t in runs]
        rows.append(
            {
                "model": f"{name}, {epochs} epochs",
                "val_rmse": statistics.mean(v for v, _ in runs),
                "test_rmse": statistics.mean(tests),
                "test_rmse_min": min(tests),
                "test_rmse_max": max(tests),
            }
        )
    print("| model | val RMSE | test RMSE (mean of 5 seeds) | test min-max |")
    print("|---|---|---|---|")
    for r in rows:
        spread = f"{r['test_rmse_min']:.2f}-{r['test_rmse_max']:.2f}" if "test_rmse_min" in r else ""
        print(f"| {r['model']} | {r['val_rmse']:.2f} | {r['test_rmse']:.2f} | {spread} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
