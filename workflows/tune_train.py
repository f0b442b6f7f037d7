"""Tune, then train with the best hyper-parameters, on the same data version.

    pyflyte run workflows/tune_train.py tune_train_wf
    pyflyte run workflows/tune_train.py tune_train_wf --dataset s3://bucket/mnist.npz \
        --tune '{"num_samples": 50, "max_epochs": 10}' --train '{"epochs": 10}'
"""

from __future__ import annotations

from flytekit import workflow

from tasks.contracts import TrainResult, TuneResult
from tasks.flyte_tasks import prepare_data, train_model, tune_hyperparameters, validate_settings
from tasks.settings import TrainSettings, TuneSettings


@workflow
def tune_train_wf(
    dataset: str = "",
    repo_url: str = "",
    tune: TuneSettings = TuneSettings(),
    train: TrainSettings = TrainSettings(),
    seed: int = 0,
) -> tuple[TuneResult, TrainResult]:
    """dataset: a source string, empty for the embedded MNIST digits; repo_url: the DVC repo to commit to."""
    checked = validate_settings(tune=tune, train=train)
    data = prepare_data(source=dataset, seed=seed)
    checked >> data
    tuned = tune_hyperparameters(data=data, settings=tune)
    trained = train_model(data=data, params=tuned.best, settings=train)
    return tuned, trained
