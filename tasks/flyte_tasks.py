"""The Flyte tasks: a few lines each over the pure logic and the Ray glue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import flytekit
from flytekit import HashMethod, task
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from tasks.clusters import TRAIN_CLUSTER, TUNE_CLUSTER, training_capacity_cpus
from tasks.contracts import Dataset, EpochMetrics, TrainResult, TuneResult
from tasks.data import Splits, load_raw, make_splits, parse_source
from tasks.settings import HyperParams, SettingsError, TrainSettings, TuneSettings

# Bump when a change to the code should invalidate cached task outputs.
CACHE_VERSION = "1"


def _workdir(name: str) -> Path:
    path = Path(flytekit.current_context().working_directory) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_settings(tune: TuneSettings, train: TrainSettings, cluster_cpus: int) -> None:
    """Validate what a user set, including whether the training workers fit on the cluster."""
    tune.validate()
    train.validate()
    if train.num_workers > cluster_cpus:
        raise SettingsError(
            f"train.num_workers={train.num_workers} is not valid: the training cluster holds at most "
            f"{cluster_cpus} one-CPU workers; lower it or enlarge TRAIN_SHAPE in tasks/clusters.py."
        )


@task
def validate_settings(tune: TuneSettings, train: TrainSettings) -> bool:
    """Refuse bad settings before any Ray cluster starts."""
    check_settings(tune, train, training_capacity_cpus())
    return True


@task(cache=True, cache_version=CACHE_VERSION)
def prepare_data(source: str, seed: int = 0) -> Annotated[Dataset, HashMethod(lambda d: d.sha256)]:
    """Load, check, split and normalize the data; the output is keyed by its content hash."""
    parsed = parse_source(source)
    raw, rev = load_raw(parsed)
    splits = make_splits(raw, seed=seed)
    digest = splits.content_hash()
    path = _workdir("data") / f"dataset-{digest[:16]}.npz"
    splits.save(path)
    return Dataset(
        file=FlyteFile(str(path)),
        sha256=digest,
        n_train=len(splits.y_train),
        n_test=len(splits.y_test),
        source=parsed.describe(),
        dvc_rev=rev,
    )


def _load(data: Dataset) -> Splits:
    return Splits.load(data.file.download())


@task(task_config=TUNE_CLUSTER, cache=True, cache_version=CACHE_VERSION)
def tune_hyperparameters(data: Dataset, settings: TuneSettings) -> TuneResult:
    """Ray Tune search with ASHA early stopping on the task's own Ray cluster."""
    from tasks.ray_tune import run_tune
    from tasks.report import trials_plot
    from tasks.storage import ray_storage

    settings.validate()
    storage_path, fs = ray_storage(flytekit.current_context().raw_output_prefix, "ray")
    outcome = run_tune(_load(data), settings, storage_path, fs)
    out = _workdir("tune")
    outcome.trials.to_csv(out / "trials.csv", index=False)
    trials_plot(outcome.history, out / "trials.png")
    return TuneResult(
        best=outcome.best,
        best_accuracy=outcome.best_accuracy,
        trials_csv=FlyteFile(str(out / "trials.csv")),
        trials_png=FlyteFile(str(out / "trials.png")),
    )


@task(task_config=TRAIN_CLUSTER, cache=True, cache_version=CACHE_VERSION)
def train_model(data: Dataset, params: HyperParams, settings: TrainSettings) -> TrainResult:
    """Ray Train TorchTrainer (DDP) with the tuned hyper-parameters, a checkpoint every epoch."""
    from tasks.ray_train import run_train
    from tasks.storage import ray_storage

    params.validate()
    settings.validate()
    storage_path, fs = ray_storage(flytekit.current_context().raw_output_prefix, "ray")
    outcome = run_train(_load(data), params, settings, _workdir("train"), storage_path, fs)
    return TrainResult(
        model=FlyteFile(str(outcome.model_path)),
        dvclive=FlyteDirectory(str(outcome.live_dir)),
        accuracy=float(outcome.final["accuracy"]),
        loss=float(outcome.final["loss"]),
        history=[EpochMetrics(**m) for m in outcome.history],
    )
