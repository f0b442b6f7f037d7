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
    """Every run becomes a DVC experiment; one whose test score passes the gate is also promoted to a branch.

    problem: a built-in problem ("digits", "diabetes") or an importable "module:attribute".
    dataset: "" for the problem's embedded data, a path or fsspec URI (npz, or a directory the
    problem reads), or dvc://PATH?repo=REPO&rev=REV. repo_url: the DVC repo to commit to, "" for
    the repo this runs from. base_rev: the commit the experiment is based on, "" for the repo's
    HEAD. exp_name: "" derives one from the execution id. gate: the test score of the problem's
    selecting metric at which the run is promoted (at least it for accuracy-like metrics, at most
    it for errors); empty for the problem's default. live_uri: an fsspec URI (s3://..., file://...)
    under which rank 0 mirrors its DVCLive directory each epoch, "" for this execution's
    raw-output location. tune_cluster, train_cluster: the size of each task's Ray cluster on Flyte
    (workers, CPUs, memory and GPUs per worker, autoscaling min/max, head); a local run uses this
    machine and checks the settings against it. stage: the GTO stage a promoted run's model version is
    assigned ("" none; the repo's .gto may restrict stages). champion: a stage whose model the run must beat
    on the same data version to be promoted ("" compares with none); margin: by more than this.
    beat_baseline: promote only a run whose test score is also at
    least as good as the simple reference model's (logistic or ridge regression, `baseline/test/<metric>`).
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
