"""A Ray Tune callback that logs every trial with DVCLive: what DVCLive users asked for since 2022
(treeverse/dvclive issue 237). Reusable on its own:

    tuner = tune.Tuner(trainable, param_space=..., run_config=tune.RunConfig(
        callbacks=[DVCLiveTrials("trials-dvclive", params=["lr", "batch_size"])]))

Each trial gets `<directory>/<trial_id>/`, a DVCLive directory: `params.yaml` (the trial's
hyper-parameters), one step per reported result in `plots/metrics/*.tsv` and the latest in
`metrics.json`, closed when the trial completes, errs or is stopped early. The callback runs on the
Tune driver, so the directories are local to it whatever node a trial ran on. It never touches git
or DVC; this project's bridge saves each directory as its own DVC experiment (`record_trials`).
"""

from __future__ import annotations

import math
from numbers import Number
from pathlib import Path
from typing import Iterable, Optional

from ray import tune

# What Tune adds to every result; not the trial's own metrics.
TUNE_KEYS = {
    "time_this_iter_s",
    "time_total_s",
    "timestamp",
    "training_iteration",
    "done",
    "trial_id",
    "date",
    "pid",
    "hostname",
    "node_ip",
    "time_since_restore",
    "iterations_since_restore",
    "checkpoint_dir_name",
    "config",
}


class DVCLiveTrials(tune.Callback):
    """Log each Tune trial to its own DVCLive directory under `directory`.

    params: the config keys logged as the trial's params (default: every scalar of its config).
    metrics: the result keys logged per step (default: every number a trial reports, minus Tune's own).
    studio: let DVCLive post to DVC Studio (off by default: one Studio row per trial is rarely wanted).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        params: Optional[Iterable[str]] = None,
        metrics: Optional[Iterable[str]] = None,
        studio: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self.params = list(params) if params is not None else None
        self.metrics = list(metrics) if metrics is not None else None
        self.studio = studio
        self._lives: dict[str, object] = {}

    def _live(self, trial):
        return self._live_of(trial.trial_id, trial.config or {})

    def _live_of(self, trial_id: str, config: dict):
        if trial_id not in self._lives:
            from dvclive import Live

            from compat.dvclive import live_without_studio

            cls = Live if self.studio else live_without_studio()
            live = cls(dir=str(self.directory / trial_id), save_dvc_exp=False, dvcyaml=None, report=None)
            keys = self.params if self.params is not None else [k for k, v in config.items() if _scalar(v)]
            live.log_params({k: config[k] for k in keys if k in config})
            self._lives[trial_id] = live
        return self._lives[trial_id]

    def replay(self, trial_id: str, config: dict, results: Iterable[dict]) -> None:
        """Write a trial's directory from its stored results, as the callback would have while it ran."""
        live = self._live_of(trial_id, config)
        for result in results:
            self._log(live, result)
        self._lives.pop(trial_id).end()

    def _log(self, live, result: dict) -> None:
        keys = self.metrics if self.metrics is not None else [k for k in result if k not in TUNE_KEYS]
        logged = False
        for key in keys:
            value = result.get(key)
            if isinstance(value, Number) and not isinstance(value, bool) and math.isfinite(value):
                live.log_metric(key, value)
                logged = True
        if logged:
            live.next_step()

    def on_trial_start(self, iteration, trials, trial, **info):
        self._live(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._log(self._live(trial), result)

    def _end(self, trial) -> None:
        live = self._lives.pop(trial.trial_id, None)
        if live is not None:
            live.end()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial)

    def on_experiment_end(self, trials, **info):
        for trial in list(trials):
            self._end(trial)


def _scalar(value) -> bool:
    return isinstance(value, (str, bool, Number)) or value is None


def write_missing_trials(
    directory: str | Path, grid, params: Optional[Iterable[str]] = None, metrics: Optional[Iterable[str]] = None
) -> list[str]:
    """Write the directory of every trial in a ResultGrid that `directory` lacks, from its stored results.

    A search resumed on a new cluster (tasks/ray_glue/resume.py) has the trials the lost attempt
    finished only in its storage; their directories are written here, as the callback would have.
    Returns the trial ids written.
    """
    directory = Path(directory)
    writer = DVCLiveTrials(directory, params=params, metrics=metrics)
    written = []
    for result in grid:
        df = result.metrics_dataframe
        rows = [] if df is None else df.to_dict("records")
        trial_id = (result.metrics or {}).get("trial_id") or (rows[0].get("trial_id") if rows else None)
        if not trial_id or (directory / trial_id).is_dir():
            continue  # no result ever reported: the trial has no id to name a directory by, and nothing to log
        writer.replay(trial_id, result.config or {}, rows)
        written.append(trial_id)
    return written
