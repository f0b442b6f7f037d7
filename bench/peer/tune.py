"""Stage `tune`: Ray Tune with ASHA, the tutorial's way (ray.init() with its defaults).

The model and the train/evaluate steps are the project's (tasks.model, tasks.training) so the
compute is the same as the workflow's; each trial loads the data file itself.
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

from tasks.settings import HyperParams
from tasks.training import build, evaluate, make_loader, train_epoch

DATA = os.path.abspath("data/digits.npz")


def train_digits(config, max_epochs, seed):
    data = np.load(DATA)
    hp = HyperParams(**config)
    model, optimizer = build(hp, seed)
    train_loader = make_loader(data["x_train"], data["y_train"], hp.batch_size, shuffle=True, seed=seed)
    test_loader = make_loader(data["x_test"], data["y_test"], 512, shuffle=False)
    for epoch in range(1, max_epochs + 1):
        train_loss = train_epoch(model, train_loader, optimizer, epoch)
        result = evaluate(model, test_loader)
        tune.report({"train_loss": train_loss, "loss": result.loss, "accuracy": result.accuracy})


if __name__ == "__main__":
    params = yaml.safe_load(open("params.yaml"))["tune"]
    ray.init()
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(train_digits, max_epochs=params["max_epochs"], seed=params["seed"]), {"cpu": 1}
        ),
        param_space={
            "lr": tune.loguniform(params["lr_min"], params["lr_max"]),
            "momentum": tune.uniform(params["momentum_min"], params["momentum_max"]),
            "batch_size": tune.choice(params["batch_sizes"]),
        },
        tune_config=tune.TuneConfig(
            metric="accuracy",
            mode="max",
            num_samples=params["num_samples"],
            scheduler=ASHAScheduler(max_t=params["max_epochs"], grace_period=params["grace_period"]),
            search_alg=BasicVariantGenerator(random_state=params["seed"]),
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    Path("results").mkdir(exist_ok=True)
    yaml.safe_dump({k: best.config[k] for k in ("lr", "momentum", "batch_size")}, open("results/best_params.yaml", "w"))
    epochs = [int(r.metrics.get("training_iteration", 0)) for r in results if r.metrics]
    json.dump({"best_accuracy": best.metrics["accuracy"], "trials": len(results), "trial_epochs": sum(epochs)},
              open("results/tune.json", "w"))
