"""Stage `tune`: Ray Tune with ASHA, the tutorial's way (ray.init() with its defaults).

The model, hyper-parameters and the train/evaluate steps are the project's (tasks.problem,
tasks.problems.digits, tasks.training.loop) so the compute is the same as the workflow's; each trial
loads the data file itself, trains on the training split and is scored on validation (test is
never seen while searching).
"""

import json
import os
from pathlib import Path

import numpy as np
import ray
import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from tasks.problem import Choice, IntRange, LogUniform, Uniform, complete, load_problem, search_space
from tasks.training.loop import EVAL_BATCH, build, evaluate, make_loader, train_epoch

DATA = os.path.abspath("data/digits.npz")


def train_digits(config, problem_ref, max_epochs, seed):
    problem = load_problem(problem_ref)
    data = np.load(DATA)
    hp = complete(problem, config)
    model, optimizer = build(problem, hp, seed)
    loss_fn = problem.loss()
    train_loader = make_loader(data["x_train"], data["y_train"], hp["batch_size"], shuffle=True, seed=seed)
    val_loader = make_loader(data["x_val"], data["y_val"], EVAL_BATCH, shuffle=False)
    for epoch in range(1, max_epochs + 1):
        train_loss = train_epoch(model, train_loader, optimizer, loss_fn, epoch)
        scores = evaluate(model, val_loader, problem).scores(problem, "val")
        tune.report({"train/loss": train_loss, **scores})


def to_tune(domain):
    if isinstance(domain, LogUniform):
        return tune.loguniform(domain.low, domain.high)
    if isinstance(domain, Uniform):
        return tune.uniform(domain.low, domain.high)
    if isinstance(domain, IntRange):
        return tune.randint(domain.low, domain.high + 1)
    if isinstance(domain, Choice):
        return tune.choice(list(domain.options))
    return domain  # a fixed value


if __name__ == "__main__":
    all_params = yaml.safe_load(open("params.yaml"))
    params = all_params["tune"]
    problem = load_problem(all_params["problem"])
    metric = f"val/{problem.select}"
    ray.init()
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(
                train_digits, problem_ref=all_params["problem"], max_epochs=params["max_epochs"], seed=params["seed"]
            ),
            {"cpu": 1},
        ),
        param_space={name: to_tune(d) for name, d in search_space(problem, params.get("space") or {}).items()},
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=problem.mode,
            num_samples=params["num_samples"],
            scheduler=ASHAScheduler(max_t=params["max_epochs"], grace_period=params["grace_period"]),
            search_alg=BasicVariantGenerator(random_state=params["seed"]),
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    Path("results").mkdir(exist_ok=True)
    yaml.safe_dump(complete(problem, best.config), open("results/best_params.yaml", "w"))
    epochs = [int(r.metrics.get("training_iteration", 0)) for r in results if r.metrics]
    json.dump(
        {f"best_{metric.replace('/', '_')}": best.metrics[metric], "trials": len(results), "trial_epochs": sum(epochs)},
        open("results/tune.json", "w"),
    )
