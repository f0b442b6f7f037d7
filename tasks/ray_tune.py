"""Ray Tune glue: the trial function and the search driver. Imports Ray, not Flyte."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import pandas as pd
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from tasks.data import Splits
from tasks.report import trial_line
from tasks.settings import HyperParams, TuneSettings
from tasks.storage import AWS_CREDENTIAL_ENV_VARS
from tasks.training import build, evaluate, make_loader, train_epoch

log = logging.getLogger(__name__)
METRIC = "accuracy"


class TuneError(RuntimeError):
    """The search produced no usable trial."""


@dataclass
class TuneOutcome:
    best: HyperParams
    best_accuracy: float
    trials: pd.DataFrame  # one row per trial
    history: pd.DataFrame  # one row per trial and epoch


def trial_on_worker(config: dict, data: Splits, max_epochs: int, seed: int) -> None:
    """One Tune trial: train with sampled hyper-parameters, report held-out metrics each epoch."""
    hp = HyperParams(**config)
    torch.set_num_threads(1)
    model, optimizer = build(hp, seed)
    train_loader = make_loader(data.x_train, data.y_train, hp.batch_size, shuffle=True, seed=seed)
    test_loader = make_loader(data.x_test, data.y_test, 512, shuffle=False)
    for epoch in range(1, max_epochs + 1):
        train_loss = train_epoch(model, train_loader, optimizer, epoch)
        ev = evaluate(model, test_loader)
        tune.report({"epoch": epoch, "train_loss": train_loss, "loss": ev.loss, METRIC: ev.accuracy})


class ProgressLines(tune.Callback):
    """One readable line per trial event in the task log, in place of Tune's status tables."""

    def __init__(self, total: int, max_epochs: int) -> None:
        self.total, self.max_epochs = total, max_epochs
        self._numbers: dict[str, int] = {}

    def _say(self, trial, what: str) -> None:
        n = self._numbers.setdefault(trial.trial_id, len(self._numbers) + 1)
        print(trial_line(n, self.total, trial.trial_id, trial.config, what), flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._numbers.setdefault(trial.trial_id, len(self._numbers) + 1)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._say(trial, f"epoch {result['epoch']}/{self.max_epochs} accuracy {result[METRIC]:.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = (trial.last_result or {}).get("epoch", 0)
        self._say(trial, "completed" if epochs >= self.max_epochs else f"stopped early by ASHA after epoch {epochs}")

    def on_trial_error(self, iteration, trials, trial, **info):
        error = str(trial.error_file or "")
        self._say(trial, f"error (the search goes on; details in {error or 'the trial log'})")


def search_space(s: TuneSettings) -> dict:
    return {
        "lr": tune.loguniform(s.lr_min, s.lr_max) if s.lr_min < s.lr_max else s.lr_min,
        "momentum": tune.uniform(s.momentum_min, s.momentum_max) if s.momentum_min < s.momentum_max else s.momentum_min,
        "batch_size": tune.choice(s.batch_sizes),
    }


def run_tune(data: Splits, settings: TuneSettings, storage_path: str, storage_filesystem=None) -> TuneOutcome:
    """Run the search on the connected Ray cluster; one failing trial does not sink it."""
    # Tune's status tables and INFO logs drown the log; ProgressLines prints one line per event.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    concurrency = min(settings.max_concurrent_trials or cpus, cpus)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(trial_on_worker, data=data, max_epochs=settings.max_epochs, seed=settings.seed),
            {"cpu": 1},
        ),
        param_space=search_space(settings),
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=settings.num_samples,
            # The bound lives on the generator: Tune ignores max_concurrent_trials with a SearchGenerator.
            search_alg=BasicVariantGenerator(random_state=settings.seed, max_concurrent=concurrency),
            scheduler=ASHAScheduler(time_attr="epoch", max_t=settings.max_epochs, grace_period=settings.grace_period),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="tune",
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            verbose=0,
            callbacks=[ProgressLines(settings.num_samples, settings.max_epochs)],
        ),
    )
    with without_cloud_keys():
        grid = tuner.fit()
    return summarize(grid, settings)


@contextmanager
def without_cloud_keys():
    """Hide the driver's AWS keys from Tune, which copies them into every trial's runtime_env.

    Ray logs and shows a runtime_env (runtime_env_agent.log, the state API), so the keys would be
    readable there. Trials read storage with their own node's credentials instead
    (tasks/storage.py); local trial processes inherited them when the local cluster started.
    """
    saved = {k: os.environ.pop(k) for k in AWS_CREDENTIAL_ENV_VARS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def error_text(error: BaseException) -> str:
    """The trial's own exception in one line (Ray wraps it in a RayTaskError whose first line is Ray's)."""
    cause = getattr(error, "cause", None) or error
    lines = str(cause).strip().splitlines() or [""]
    return f"{type(cause).__name__}: {lines[-1][:200]}"


def summarize(grid, settings: TuneSettings) -> TuneOutcome:
    rows, history = [], []
    for result in grid:
        trial_id = result.path.rstrip("/").rsplit("/", 1)[-1] if result.path else "?"
        df = result.metrics_dataframe
        epochs = 0 if df is None or df.empty else int(df["epoch"].max())
        if df is not None and not df.empty and METRIC in df:
            history.append(df[["epoch", "train_loss", "loss", METRIC]].assign(trial_id=trial_id))
        best_acc = float(df[METRIC].max()) if epochs else float("nan")
        status = "error" if result.error else ("completed" if epochs >= settings.max_epochs else "stopped_early")
        rows.append(
            {
                "trial_id": trial_id,
                **{k: result.config.get(k) for k in ("lr", "momentum", "batch_size")},
                "status": status,
                "epochs": epochs,
                "accuracy": best_acc,
                "error": error_text(result.error) if result.error else "",
            }
        )
    trials = pd.DataFrame(rows).sort_values("accuracy", ascending=False, na_position="last").reset_index(drop=True)
    ok = trials[trials["status"] != "error"].dropna(subset=["accuracy"])
    if ok.empty:
        raise TuneError(f"all {len(trials)} trials failed; first error: {trials['error'].iloc[0]}")
    best = ok.iloc[0]
    hp = HyperParams(lr=float(best["lr"]), momentum=float(best["momentum"]), batch_size=int(best["batch_size"]))
    hist = pd.concat(history, ignore_index=True) if history else pd.DataFrame(columns=["trial_id", "epoch", "train_loss", "loss", METRIC])
    log.info("best trial %s: accuracy %.4f with %s", best["trial_id"], best["accuracy"], asdict(hp))
    return TuneOutcome(best=hp, best_accuracy=float(best["accuracy"]), trials=trials, history=hist)
