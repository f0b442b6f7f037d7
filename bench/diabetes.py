"""Diabetes against its ridge baseline: the built-in regression's model against the baseline on the same splits, over
seeds, from the zero start (before) and from the least-squares start (`init_from_data`, now). Figures, never
pass/fail (bench/README.md, "Diabetes").

    .venv/bin/python -m bench.diabetes            # about 20 seconds on one core

The project's own splits (`make_splits`, seed 0: 310 / 66 / 66 rows) and baseline (`score_baseline`: a ridge
regression, its alpha chosen on validation). Each row is trained in one process with the problem's own model, loss,
optimizer and start (plain mini-batch loop, one thread), for 20 seeds:

* "default search": the default budget replayed: 4 configurations drawn at random from the problem's default space,
  2 epochs each, the best on validation trained for 5 epochs (Tune and Ray Train do this in a run, on 2 workers);
* a fixed configuration for a number of epochs, with no search.

The last epoch's validation and test RMSE are averaged over the seeds; "<= ridge" counts the seeds whose test RMSE is
no worse than the baseline's.
"""

from __future__ import annotations

import json
import math
import random
import statistics

import torch

from tasks.data.arrays import load_raw, make_splits, parse_source
from tasks.problem import Choice, IntRange, LogUniform, Uniform, defaults, load_problem, search_space
from tasks.training.baselines import score_baseline
from tasks.training.loop import EVAL_BATCH, make_loader, start_from_data

SEEDS = range(20)
SEARCH = (4, 2, 5)  # the default budget: trials, epochs per trial, training epochs
CONFIGS = [  # (name, hyper-parameters over the problem's defaults, epochs)
    ("defaults", {}, 5),
    ("defaults", {}, 20),
    ("linear path only (layers 0)", {"layers": 0}, 5),
]


def rmse(model, x, y) -> float:
    with torch.no_grad():
        return math.sqrt(float(((model(x) - y) ** 2).mean()))


def train(problem, splits, hp: dict, epochs: int, seed: int, start: bool) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = problem.build_model(hp)
    if start:
        start_from_data(problem, model, make_loader(splits.x_train, splits.y_train, EVAL_BATCH, shuffle=False))
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


def draw(space: dict, rng: random.Random) -> dict:
    """One random configuration of a space (as Tune's random search draws one)."""

    def one(d):
        if isinstance(d, LogUniform):
            return math.exp(rng.uniform(math.log(d.low), math.log(d.high)))
        if isinstance(d, Uniform):
            return rng.uniform(d.low, d.high)
        if isinstance(d, IntRange):
            return rng.randint(d.low, d.high)
        if isinstance(d, Choice):
            return rng.choice(d.options)
        return d  # fixed

    return {k: one(d) for k, d in space.items()}


def default_search(problem, splits, seed: int, start: bool) -> tuple[float, float]:
    trials, trial_epochs, epochs = SEARCH
    rng = random.Random(seed)
    drawn = [draw(search_space(problem), rng) for _ in range(trials)]
    best = min(drawn, key=lambda hp: train(problem, splits, hp, trial_epochs, seed, start)[0])
    return train(problem, splits, best, epochs, seed, start)


def row(name: str, runs: list[tuple[float, float]], ridge: float) -> dict:
    tests = [t for _, t in runs]
    return {
        "model": name,
        "val_rmse": statistics.mean(v for v, _ in runs),
        "test_rmse": statistics.mean(tests),
        "test_rmse_min": min(tests),
        "test_rmse_max": max(tests),
        "no_worse_than_ridge": sum(t <= ridge for t in tests),
        "seeds": len(tests),
    }


def main() -> None:
    torch.set_num_threads(1)
    problem = load_problem("diabetes")
    splits = make_splits(load_raw(parse_source(""), problem)[0], problem, seed=0)
    base = score_baseline(problem, splits)
    ridge = base.scores["baseline/test/rmse"]
    rows = [{"model": base.name, "val_rmse": base.scores["baseline/val/rmse"], "test_rmse": ridge}]
    trials, trial_epochs, epochs = SEARCH
    for start in (False, True):
        how = "least-squares start" if start else "zero start"
        rows.append(
            row(
                f"default search ({trials} x {trial_epochs} epochs, {epochs} epochs), {how}",
                [default_search(problem, splits, s, start) for s in SEEDS],
                ridge,
            )
        )
        for name, over, n in CONFIGS:
            hp = {**defaults(problem), **over}
            rows.append(
                row(f"{name}, {n} epochs, {how}", [train(problem, splits, hp, n, s, start) for s in SEEDS], ridge)
            )
    print(f"| model | val RMSE | test RMSE (mean of {len(SEEDS)} seeds) | test min-max | test <= ridge |")
    print("|---|---|---|---|---|")
    for r in rows:
        spread = f"{r['test_rmse_min']:.2f}-{r['test_rmse_max']:.2f}" if "seeds" in r else ""
        wins = f"{r['no_worse_than_ridge']}/{r['seeds']}" if "seeds" in r else ""
        print(f"| {r['model']} | {r['val_rmse']:.2f} | {r['test_rmse']:.2f} | {spread} | {wins} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
