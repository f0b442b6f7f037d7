"""Score a data set with a registered model: `<artifact>#<stage>` or `<artifact>@<version>` of a DVC repo.

    pyflyte run workflows/predict.py predict_wf --model 'digits-model#staging'
    pyflyte run workflows/predict.py predict_wf --model 'digits-model@v0.2.0' --dataset s3://bucket/new.npz \
        --repo_url https://git.example/team/exps.git
    pyflyte run --remote workflows/predict.py predict_wf --model 'digits-model#prod' --repo_url ... \
        --cluster '{"workers": 2, "cpus_per_worker": 4}'

The model resolves through DVC and GTO (the repo's tags, then only the model's file at that commit from
the DVC remote), is built by the problem that trained it (the experiment's params.yaml `problem`) and
scores every sample with Ray Data batch inference on a transient Ray cluster. Output: the predictions
as Parquet and, when the data has targets, the problem's metrics on it. A directory of Parquet shards (as
tune_train_wf streams them) is streamed: read, scored and written by the cluster, the predictions a directory
of Parquet files (`Predictions.parts`) whose rows name their source file and row hash.
"""

from __future__ import annotations

from flytekit import workflow

from tasks.flyte.predict import PredictCluster, Predictions, load_data, predict_on_cluster, resolve_model


@workflow
def predict_wf(
    model: str,
    dataset: str = "",
    repo_url: str = "",
    batch_size: int = 256,
    cluster: PredictCluster = PredictCluster(),
) -> Predictions:
    """Predictions of a registered model on a data set (Parquet), with the metrics when the data has targets.

    model: "<artifact>#<stage>" (e.g. "digits-model#staging") or "<artifact>@<version>" (e.g.
    "digits-model@v0.2.0"). dataset: as tune_train_wf's: "" for the problem's embedded data, a path or
    fsspec URI (npz with x and optionally y, or a directory the problem reads), or
    dvc://PATH?repo=REPO&rev=REV; a directory of Parquet shards (local, s3:// or dvc://) is streamed. repo_url: the DVC repo the model is registered in, "" for the repo
    this runs from. batch_size: samples per Ray Data batch. cluster: the scoring's Ray cluster on Flyte
    (workers, CPUs and memory per worker, head); one model replica per CPU but one.
    """
    resolved = resolve_model(model=model, repo_url=repo_url)
    data = load_data(dataset=dataset, model=resolved)
    return predict_on_cluster(model=resolved, data=data, batch_size=batch_size, cluster=cluster)
