"""Ray Tune glue: the trial function and the search driver. Imports Ray, not Flyte."""

from __future__ import annotations

import functools
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from dvc_bridge.direction import best_of, higher_is_better
from tasks.data.shards import Manifest, iter_samples
from tasks.problem import (
    Choice,
    IntRange,
    LogUniform,
    Problem,
    Uniform,
    complete,
    fixed_by_space,
    load_problem,
    metric_key,
    search_space,
)
from tasks.ray_glue.resources import wait_for
from tasks.ray_glue.resume import RestoreGuard, fit_or_resume
from tasks.ray_glue.searchers import make_search
from tasks.ray_glue.storage import AWS_CREDENTIAL_ENV_VARS
from tasks.ray_glue.tune_dvclive import DVCLiveTrials, write_missing_trials
from tasks.record.history import SearchHistory
from tasks.reporting.lines import trial_line, trial_number
from tasks.training.loop import (
    EVAL_BATCH,
    EpochBatches,
    build,
    evaluate,
    make_loader,
    start_from_data,
    train_epoch,
)
from tasks.training.settings import TuneSettings

log = logging.getLogger(__name__)

SEARCH_NAME = "tune"  # the search's directory in its storage; the same name resumes a stored search


class TuneError(RuntimeError):
    """The search produced no usable trial."""


@dataclass
class TuneOutcome:
    best: dict  # every hyper-parameter of the problem, the searched ones as the best trial had them
    best_score: float  # the best trial's best validation score of the selecting metric
    metric: str  # that score's name, e.g. "val/accuracy"
    searched: list[str]  # the hyper-parameters the space searched
    trials: pd.DataFrame  # one row per trial
    history: pd.DataFrame  # one row per trial and epoch


def trial_device() -> torch.device:
    """The GPU Ray gave this trial (`gpus_per_trial` > 0 sets its CUDA_VISIBLE_DEVICES to it), else the CPU."""
    return torch.device("cuda", 0) if ray.get_gpu_ids() and torch.cuda.is_available() else torch.device("cpu")


def trial_on_worker(config: dict, data_ref: ray.ObjectRef, problem_ref: str, max_epochs: int, seed: int) -> None:
    """One Tune trial: train with sampled hyper-parameters, report validation metrics each epoch (never test).

    The splits are the node's one copy in the object store, read in place batch by batch; or a
    `Manifest` of Parquet shards, streamed.
    """
    if load_problem(problem_ref).form != "declarative":  # a LightningModule or a plain loop: ray_glue/forms
        from tasks.ray_glue.forms.loop import trial

        return trial(config, data_ref, problem_ref, max_epochs, seed)
    data = ray.get(data_ref) if isinstance(data_ref, ray.ObjectRef) else data_ref
    problem = load_problem(problem_ref)
    hp = complete(problem, config)
    torch.set_num_threads(1)
    model, optimizer = build(problem, hp, seed)
    loss_fn = problem.loss()
    if isinstance(data, Manifest):
        # Streamed inside the trial process with pyarrow, not Ray Data: Ray Data's tasks would wait for
        # the CPUs the trials hold (ray#24304), and a trial's one CPU reads its batches as it trains on them.
        train_loader = EpochBatches(
            lambda epoch: iter_samples(data, problem, "train", hp["batch_size"], seed=seed * 1000 + epoch)
        )
        val_loader = EpochBatches(lambda epoch: iter_samples(data, problem, "val", EVAL_BATCH))
        start_from_data(problem, model, train_loader)
    else:
        train_loader = make_loader(data.x_train, data.y_train, hp["batch_size"], shuffle=True, seed=seed)
        val_loader = make_loader(data.x_val, data.y_val, EVAL_BATCH, shuffle=False)
        start_from_data(problem, model, make_loader(data.x_train, data.y_train, EVAL_BATCH, shuffle=False))
    model.to(trial_device())  # in place: the optimizer keeps the same parameters
    for epoch in range(1, max_epochs + 1):
        train_loss = train_epoch(model, train_loader, optimizer, loss_fn, epoch)
        scores = evaluate(model, val_loader, problem).scores(problem, "val")
        tune.report({"epoch": epoch, metric_key("train", "loss"): train_loss, **scores})


class ProgressLines(tune.Callback):
    """One readable line per trial event in the task log, in place of Tune's status tables."""

    def __init__(self, total: int, max_epochs: int, metric: str, searched: list[str]) -> None:
        self.total, self.max_epochs, self.metric, self.searched = total, max_epochs, metric, searched
        self._numbers: dict[str, int] = {}

    def _say(self, trial, what: str) -> None:
        n = trial_number(trial.trial_id, self._numbers.setdefault(trial.trial_id, len(self._numbers) + 1))
        shown = {k: trial.config.get(k) for k in self.searched}
        print(trial_line(n, self.total, trial.trial_id, shown, what), flush=True)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._numbers.setdefault(trial.trial_id, len(self._numbers) + 1)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._say(trial, f"epoch {result['epoch']}/{self.max_epochs} {self.metric} {result[self.metric]:.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        epochs = (trial.last_result or {}).get("epoch", 0)
        self._say(trial, "completed" if epochs >= self.max_epochs else f"stopped early by ASHA after epoch {epochs}")

    def on_trial_error(self, iteration, trials, trial, **info):
        error = str(trial.error_file or "")
        self._say(trial, f"error (the search goes on; details in {error or 'the trial log'})")


def trial_metrics(problem: Problem) -> list[str]:
    """What a trial reports each epoch, minus the epoch itself."""
    return [
        metric_key("train", "loss"),
        metric_key("val", "loss"),
        *(metric_key("val", m.name) for m in problem.metrics),
    ]


def searched_names(space: dict) -> list[str]:
    return [n for n, d in space.items() if isinstance(d, (LogUniform, Uniform, IntRange, Choice))]


def run_tune(
    data_ref: ray.ObjectRef,
    problem_ref: str,
    settings: TuneSettings,
    storage_path: str,
    storage_filesystem=None,
    *,
    concurrency: int = 0,
    startup_timeout_s: float = 600,
    where: str = "tune_cluster",
    trials_live_dir: Optional[Path] = None,
    warm: Optional[SearchHistory] = None,
) -> TuneOutcome:
    """Run the search on the connected Ray cluster; one failing trial does not sink it.

    `data_ref`: the splits in the object store (`ray.put(splits)`, the caller keeping no copy of its own).
    `concurrency`: trials at once (0: the CPUs the cluster has now); give the autoscaled maximum so
    the trials waiting for nodes are the demand the autoscaler acts on. The search starts once one
    trial fits, and fails after `startup_timeout_s` naming what `where` never offered.
    A search already stored in `storage_path` (a lost cluster's) is resumed, not started anew (resume.py).
    `settings.search` picks the searcher (tasks/ray_glue/searchers.py); `warm`: earlier trials that seed it.
    """
    problem = load_problem(problem_ref)
    space = search_space(problem, settings.space)
    if fixed := fixed_by_space(problem, settings.space):
        print(fixed, flush=True)
    metric = metric_key("val", problem.select)
    # Tune's status tables and INFO logs drown the log; ProgressLines prints one line per event.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    # The search's state reaches its storage within a second of each change (Tune's defaults: a snapshot every
    # ~10 s and an upload every 300 s), so a lost cluster costs only the trials still running, not the finished
    # ones since the last upload. The state is a few KiB.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    per_trial = {
        "CPU": settings.cpus_per_trial,
        **({"GPU": settings.gpus_per_trial} if settings.gpus_per_trial else {}),
    }
    wait_for([per_trial], startup_timeout_s, "a trial", where)
    if not concurrency:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        concurrency = min(settings.max_concurrent_trials or cpus, cpus)
    trainable = tune.with_resources(
        # A partial, not tune.with_parameters: its registry would hold the splits for the process's life.
        functools.partial(
            trial_on_worker,
            data_ref=data_ref,
            problem_ref=problem_ref,
            max_epochs=settings.max_epochs,
            seed=settings.seed,
        ),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial},
    )
    plan = make_search(settings, space, metric, problem.mode, concurrency, warm)
    new_tuner = functools.partial(
        tune.Tuner,
        trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(
            metric=metric,
            mode=problem.mode,
            num_samples=plan.num_samples,
            search_alg=plan.search_alg,
            scheduler=ASHAScheduler(time_attr="epoch", max_t=settings.max_epochs, grace_period=settings.grace_period),
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=SEARCH_NAME,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            sync_config=tune.SyncConfig(sync_period=1),
            verbose=0,
            callbacks=[
                RestoreGuard(),  # a stored search that Tune fails to restore is an error, not a new search
                ProgressLines(plan.trials, settings.max_epochs, metric, searched_names(space)),
                # record_trials: each trial's per-epoch history with DVCLive, one directory per trial
                *(
                    [DVCLiveTrials(trials_live_dir, params=searched_names(space), metrics=trial_metrics(problem))]
                    if trials_live_dir is not None
                    else []
                ),
            ],
        ),
    )
    with without_cloud_keys():
        # A search stored under the same name (a lost cluster's) resumes: tasks/ray_glue/resume.py.
        grid = fit_or_resume(storage_path, SEARCH_NAME, trainable, new_tuner, storage_filesystem)
    if trials_live_dir is not None:
        write_missing_trials(trials_live_dir, grid, searched_names(space), trial_metrics(problem))
    return summarize(grid, settings, problem, searched_names(space))


@contextmanager
def without_cloud_keys():
    """Hide the driver's AWS keys from Tune, which copies them into every trial's runtime_env.

    Ray logs and shows a runtime_env (runtime_env_agent.log, the state API), so the keys would be
    readable there. Trials read storage with their own node's credentials instead
    (tasks/ray_glue/storage.py); local trial processes inherited them when the local cluster started.
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


def summarize(grid, settings: TuneSettings, problem: Problem, searched: list[str]) -> TuneOutcome:
    """One row per trial (its searched hyper-parameters, status, epochs, best validation score, error); the best trial."""
    metric = metric_key("val", problem.select)
    rows, history, configs = [], [], {}
    for result in grid:
        trial_id = result.path.rstrip("/").rsplit("/", 1)[-1] if result.path else "?"
        configs[trial_id] = result.config or {}
        df = result.metrics_dataframe
        epochs = 0 if df is None or df.empty else int(df["epoch"].max())
        if epochs and metric in df:
            keep = ["epoch", *[c for c in df.columns if c.startswith(("train/", "val/"))]]
            history.append(df[keep].assign(trial_id=trial_id))
        score = best_of(problem.mode, df[metric]) if epochs and metric in df else float("nan")
        status = "error" if result.error else ("completed" if epochs >= settings.max_epochs else "stopped_early")
        rows.append(
            {
                "trial_id": trial_id,
                **{k: configs[trial_id].get(k) for k in searched},
                "status": status,
                "epochs": epochs,
                metric: score,
                "error": error_text(result.error) if result.error else "",
            }
        )
    trials = (
        pd.DataFrame(rows)
        .sort_values(metric, ascending=not higher_is_better(problem.mode), na_position="last")
        .reset_index(drop=True)
    )
    ok = trials[trials["status"] != "error"].dropna(subset=[metric])
    if ok.empty:
        raise TuneError(f"all {len(trials)} trials failed; first error: {trials['error'].iloc[0]}")
    top = ok.iloc[0]
    best = complete(problem, configs[top["trial_id"]])
    hist = pd.concat(history, ignore_index=True) if history else pd.DataFrame(columns=["trial_id", "epoch", metric])
    log.info("best trial %s: %s %.4f with %s", top["trial_id"], metric, top[metric], best)
    return TuneOutcome(
        best=best, best_score=float(top[metric]), metric=metric, searched=searched, trials=trials, history=hist
    )
