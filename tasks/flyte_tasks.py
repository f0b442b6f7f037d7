"""The Flyte tasks: a few lines each over the pure logic and the Ray glue."""

from __future__ import annotations

import html
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, NamedTuple

import flytekit
import pandas as pd
from flytekit import Deck, HashMethod, task
from flytekit.deck import DeckField
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from dvc_bridge.live import LiveConfig, live_env
from tasks import report, secrets
from tasks.clusters import TRAIN_CLUSTER, TUNE_CLUSTER, training_capacity_cpus
from tasks.contracts import Dataset, EpochMetrics, RunTarget, TrainResult, TuneResult
from tasks.data import Splits, load_raw, make_splits, parse_source, pin_source
from tasks.settings import HyperParams, SettingsError, TrainSettings, TuneSettings
from tasks.storage import fsspec_options

# Bump when a change to the code should invalidate cached task outputs.
CACHE_VERSION = "1"
# Decks show our own pages plus inputs, outputs and the timeline; flytekit's default also has a
# "Dependencies" page, which runs `pip` after every task (seconds each, and noise in the log).
DECK_FIELDS = (DeckField.INPUT, DeckField.OUTPUT, DeckField.TIMELINE)


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
def validate_settings(tune: TuneSettings, train: TrainSettings, min_accuracy: float) -> bool:
    """Refuse bad settings before any Ray cluster starts."""
    check_settings(tune, train, training_capacity_cpus())
    if not 0 <= min_accuracy <= 1:
        raise SettingsError(
            f"min_accuracy={min_accuracy!r} is not valid: it is a held-out accuracy, give a value in [0, 1] "
            "(0 promotes every run, 1 only perfect ones)."
        )
    return True


class PinnedSource(NamedTuple):
    source: str
    version: str


@task
def pin_dataset(source: str) -> PinnedSource:
    """Never cached: pins the source to what it names now, so the cached preparation sees new data."""
    return PinnedSource(*pin_source(source))


@task(cache=True, cache_version=CACHE_VERSION)
def prepare_data(source: str, version: str, seed: int = 0) -> Annotated[Dataset, HashMethod(lambda d: d.sha256)]:
    """Load, check, split and normalize the data; the output is keyed by its content hash.

    `version` (from `pin_dataset`) is only part of the cache key: new content, new preparation.
    """
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


@task(task_config=TUNE_CLUSTER, cache=True, cache_version=CACHE_VERSION, enable_deck=True, deck_fields=DECK_FIELDS)
def tune_hyperparameters(data: Dataset, settings: TuneSettings) -> TuneResult:
    """Ray Tune search with ASHA early stopping on the task's own Ray cluster."""
    from tasks.ray_tune import run_tune
    from tasks.storage import ray_storage

    settings.validate()
    storage_path, fs = ray_storage(flytekit.current_context().raw_output_prefix, "ray")
    outcome = run_tune(_load(data), settings, storage_path, fs)
    out = _workdir("tune")
    outcome.trials.to_csv(out / "trials.csv", index=False)
    report.trials_plot(outcome.history, out / "trials.png")
    Deck(
        "Trials",
        f"<h3>Best: accuracy {outcome.best_accuracy:.4f} with {html.escape(str(asdict(outcome.best)))}</h3>"
        + report.png_html(out / "trials.png", "held-out accuracy per trial")
        + report.table_html(outcome.trials),
    )
    return TuneResult(
        best=outcome.best,
        best_accuracy=outcome.best_accuracy,
        trials_csv=FlyteFile(str(out / "trials.csv")),
        trials_png=FlyteFile(str(out / "trials.png")),
    )


def live_config(run: RunTarget, live_uri: str, raw_output_prefix: str) -> LiveConfig:
    """Where rank 0 mirrors DVCLive (default: this execution's raw output) and the DVC / Studio env it logs with.

    Read at run time; the Studio token comes from the environment or Flyte's secret store and
    travels to rank 0 in memory only.
    """
    mirror = f"{live_uri.rstrip('/')}/{run.exp_name}" if live_uri else f"{raw_output_prefix.rstrip('/')}/dvclive"
    env = live_env(run.exp_name, run.baseline_rev, run.repo)
    token = secrets.read(secrets.STUDIO_TOKEN)
    if token:
        env[secrets.STUDIO_TOKEN.env_var] = token
    return LiveConfig(mirror_uri=mirror, storage_options=fsspec_options(mirror, credentials=False), env=env)


@task(
    task_config=TRAIN_CLUSTER,
    cache=True,
    cache_version=CACHE_VERSION,
    # Where the run is recorded and watched does not change what is trained.
    cache_ignore_input_vars=("run", "live_uri"),
    secret_requests=secrets.TRAIN_SECRETS,
    enable_deck=True,
    deck_fields=DECK_FIELDS,
)
def train_model(data: Dataset, params: HyperParams, settings: TrainSettings, run: RunTarget, live_uri: str) -> TrainResult:
    """Ray Train TorchTrainer (DDP) with the tuned hyper-parameters, a checkpoint every epoch.

    Rank 0 logs each epoch with DVCLive and mirrors it to `live_uri`/<experiment> (default: under
    this execution's raw-output prefix) while training runs.
    """
    from tasks.ray_train import run_train
    from tasks.storage import ray_storage

    params.validate()
    settings.validate()
    ctx = flytekit.current_context()
    live = live_config(run, live_uri, ctx.raw_output_prefix)
    print(f"live metrics (DVCLive metrics.json, plots/metrics/*.tsv) are copied each epoch to {live.mirror_uri}", flush=True)
    storage_path, fs = ray_storage(ctx.raw_output_prefix, "ray")
    outcome = run_train(_load(data), params, settings, _workdir("train"), storage_path, fs, live=live)
    curves = _workdir("train-report") / "curves.png"
    report.curves_plot(outcome.history, curves)
    Deck(
        "Training",
        f"<h3>Held-out accuracy {outcome.final['accuracy']:.4f} after {len(outcome.history)} epochs</h3>"
        + f"<p>Live DVCLive copy: <code>{html.escape(live.mirror_uri)}</code></p>"
        + report.png_html(curves, "loss and accuracy per epoch")
        + report.table_html(pd.DataFrame(outcome.history)),
    )
    return TrainResult(
        model=FlyteFile(str(outcome.model_path)),
        dvclive=FlyteDirectory(str(outcome.live_dir)),
        accuracy=float(outcome.final["accuracy"]),
        loss=float(outcome.final["loss"]),
        history=[EpochMetrics(**m) for m in outcome.history],
        live_uri=live.mirror_uri,
    )
