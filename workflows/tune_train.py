"""Tune, then train with the best hyper-parameters, then record the run as a DVC experiment.

    pyflyte run workflows/tune_train.py tune_train_wf
    pyflyte run workflows/tune_train.py tune_train_wf --problem diabetes
    pyflyte run workflows/tune_train.py tune_train_wf --problem my_team.churn:PROBLEM --dataset s3://bucket/churn.npz \
        --tune '{"num_samples": 50, "max_epochs": 10, "space": {"lr": {"loguniform": [0.001, 0.1]}}}' \
        --train '{"epochs": 10}' --repo_url https://github.com/you/experiments.git
    pyflyte run --remote workflows/tune_train.py tune_train_wf --repo_url ... \
        --tune_cluster '{"workers": 1, "min_workers": 1, "max_workers": 4, "cpus_per_worker": 4}' \
        --train_cluster '{"workers": 2, "gpus_per_worker": 1, "memory_per_worker": "16Gi"}' --train '{"use_gpu": true}'
"""

from __future__ import annotations

from typing import NamedTuple, Optional

from flytekit import workflow

from dvc_bridge.bridge import ExperimentRef
from tasks.flyte.contracts import TrainResult
from tasks.flyte.tasks import (
    check_target,
    commit_experiment,
    pin_dataset,
    prepare_data,
    search_history,
    train_on_cluster,
    tune_on_cluster,
    validate_settings,
)
from tasks.problem import DEFAULT_PROBLEM
from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings


class TuneTrainOutputs(NamedTuple):
    experiment: ExperimentRef
    trained: TrainResult


@workflow
def tune_train_wf(
    dataset: str = "",
    repo_url: str = "",
    base_rev: str = "",
    exp_name: str = "",
    problem: str = DEFAULT_PROBLEM,
    gate: Optional[float] = None,
    tune: TuneSettings = TuneSettings(),
    train: TrainSettings = TrainSettings(),
    seed: int = 0,
    live_uri: str = "",
    tune_cluster: TuneCluster = TuneCluster(),
    train_cluster: TrainCluster = TrainCluster(),
    stage: str = "staging",
    champion: str = "",
    margin: float = 0.0,
    beat_baseline: Optional[bool] = None,
) -> TuneTrainOutputs:
    """Tune, train, and record the run as a DVC experiment; one whose test score passes the gate is also
    promoted to a branch `exp-<name>`.

    Args:
        dataset: The data: "" (default) for the problem's embedded data; a local path or fsspec URI
            (s3://..., file://...) of an .npz (keys x, y or x_train, y_train, x_test, y_test), or a directory
            the problem reads; or dvc://PATH?repo=REPO&rev=REV, a DVC-tracked file at a git revision.
        repo_url: The DVC repo the experiment is committed to: a git URL (https://, ssh://, file://) or a
            local path; "" (default) for the git repo the command runs from.
        base_rev: The commit the experiment is based on; "" (default) for the repo's HEAD.
        exp_name: The experiment's name; "" (default) for flyte-<execution id> (local runs: local-<time>).
        problem: What is trained: a built-in problem (digits, the default, or diabetes) or your own
            "module:attribute" importable on PYTHONPATH.
        gate: The test score of the problem's selecting metric at which the run is promoted to a branch:
            at least it for a metric where higher is better, at most it where lower is (default: the
            problem's own, digits test/accuracy >= 0.9, diabetes test/rmse <= 65).
        tune: The search, as JSON. num_samples 4: trials; max_epochs 2: epochs per trial; grace_period 1:
            epochs before ASHA may stop a trial; max_concurrent_trials 0: trials at once (0: as many as the
            cluster holds at its largest); space {}: the search space, {} for the problem's own, else
            {"name": fixed value | {"loguniform"|"uniform"|"randint": [low, high]} | {"choice": [...]}}
            (left-out hyper-parameters are fixed at their defaults); seed 0; cpus_per_trial 1;
            gpus_per_trial 0 (a fraction shares a GPU); record_trials false: also save each trial as a DVC
            experiment; epoch_timeout_s 900: the longest one trial's epoch may take; search "random": the
            searcher ("random", "grid" over choices and integer ranges, or "optuna"); warm_start false: seed
            Optuna with the trials of earlier experiments in the repo on the same problem and data. E.g.
            '{"num_samples": 8, "space": {"lr": {"loguniform": [0.01, 0.2]}}}'.
        train: The training run with the best hyper-parameters, as JSON. epochs 5; num_workers 2: DDP
            workers; use_gpu false: one GPU per worker; seed 0; max_failures 2: restarts from the last
            checkpoint; epoch_timeout_s 900: the longest one epoch may take. E.g. '{"epochs": 10}'.
        seed: The seed of the train / validation / test split (default 0).
        live_uri: An fsspec URI (s3://..., file://...) under which rank 0 copies its DVCLive directory
            every epoch, as <live_uri>/<experiment>; "" (default) for the execution's raw-output location.
        tune_cluster: The search's Ray cluster on Flyte, as JSON (a local run uses this machine and checks
            the settings against it). workers 2; cpus_per_worker 2; memory_per_worker "4Gi";
            gpus_per_worker 0; min_workers, max_workers unset (null; set both to autoscale between them);
            head_cpus "1"; head_memory "2Gi"; ttl_seconds 600: the RayJob is deleted this long after it
            ends; startup_timeout_s 600: how long to wait for the workers before failing; interruptible false:
            run on spot capacity (the last attempts on regular nodes).
        train_cluster: The training's Ray cluster on Flyte, as JSON: the same fields as tune_cluster, with
            cpus_per_worker 1. E.g. '{"workers": 2, "gpus_per_worker": 1, "memory_per_worker": "16Gi"}'.
        stage: The GTO stage a promoted run's model version is assigned (default "staging"; "" for a version
            with no stage; the repo's .gto may restrict stages).
        champion: A stage whose model the run must beat on the same test split and data version to be
            promoted; "" (default) compares with none.
        margin: How much better than the champion the run must be (default 0.0).
        beat_baseline: Promote only a run whose test score is also at least as good as the simple reference
            model's (logistic or ridge regression, baseline/test/<metric>); unset (default) for no such rule.
    """
    checked = validate_settings(
        problem=problem, tune=tune, train=train, gate=gate, tune_cluster=tune_cluster, train_cluster=train_cluster
    )
    run = check_target(
        repo_url=repo_url,
        exp_name=exp_name,
        base_rev=base_rev,
        dataset=dataset,
        live_uri=live_uri,
        stage=stage,
        champion=champion,
        margin=margin,
    )
    pinned = pin_dataset(source=dataset, problem=problem)
    checked >> pinned.source  # settings and target are checked before the data is touched
    run >> pinned.source
    data = prepare_data(source=pinned.source, version=pinned.version, problem=problem, seed=seed)
    history = search_history(run=run, data=data, settings=tune)  # warm_start: earlier experiments' trials
    tuned = tune_on_cluster(data=data, settings=tune, cluster=tune_cluster, history=history)
    trained = train_on_cluster(
        data=data, params=tuned.best, settings=train, run=run, live_uri=live_uri, cluster=train_cluster
    )
    experiment = commit_experiment(
        repo=run,
        gate=gate,
        data=data,
        tuned=tuned,
        trained=trained,
        tune=tune,
        train=train,
        seed=seed,
        stage=stage,
        champion=champion,
        margin=margin,
        beat_baseline=beat_baseline,
    )
    return TuneTrainOutputs(experiment=experiment, trained=trained)


# `pyflyte run ... tune_train_wf --help` prints the workflow's __doc__ above the options, and each option
# already carries its input's text from `Args:`: the summary alone there, not every input twice.
tune_train_wf.__doc__ = tune_train_wf.__doc__.split("\n\n")[0]
