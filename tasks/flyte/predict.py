"""Batch prediction's Flyte tasks: resolve a registered model, check the data against it, score on a Ray cluster.

Everything that can be refused is refused before the RayJob exists: a model name, version or stage the
repo does not have (`resolve_model` lists those it has), a model whose problem cannot be imported here,
data that does not fit the problem's schema (`load_data`). The scoring itself (`score_data`) is Ray Data
batch inference (`tasks.ray_glue.predict`) on a transient Ray cluster sized by `PredictCluster`. A directory of
Parquet shards is never loaded: `load_data` hands on its manifest (schema checked on a sample, as training
does) and the cluster reads, scores and writes it (`Predictions.parts`).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import flytekit
import numpy as np
import yaml
from flytekit import Deck, dynamic, task
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from dvc_bridge.bridge import resolve_target
from dvc_bridge.errors import RegistryError
from dvc_bridge.layout import PARAMS, RUN_INFO
from dvc_bridge.registry import resolve_model as resolve_registered
from tasks.data.shards import Manifest
from tasks.flyte import secrets
from tasks.flyte.clusters import capacity, is_local_execution, ray_job_config
from tasks.flyte.recoverable import recoverable_on_transient
from tasks.problem import ProblemError, complete, load_problem, metric_key
from tasks.record.experiment import BEST_PARAMS
from tasks.training.capacity import check_data_fits
from tasks.training.settings import ClusterShape


@dataclass
class PredictCluster(ClusterShape):
    """The scoring's cluster: by default 1 worker of 2 CPUs, one model replica (a Ray Data actor) per CPU."""

    @property
    def label(self) -> str:
        return "predict_cluster"

    workers: int = 1
    cpus_per_worker: int = 2
    score_timeout_s: int = 3600  # the scoring's Flyte timeout, besides startup_timeout_s


@dataclass
class ModelRef:
    """A registered model, resolved: where it is, what trained it, and the file itself."""

    model: str  # as asked: "<artifact>#<stage>" or "<artifact>@<version>"
    artifact: str
    version: str
    stage: str
    repo: str  # the repo (no credentials)
    rev: str  # the experiment's commit
    path: str  # the model's path in it
    problem: str  # the problem that trained it (params.yaml `problem`)
    hyperparams: dict[str, Any]  # every hyper-parameter it was built with
    data_sha256: str  # the data version it was trained and tested on
    test: dict[str, float]  # its test scores, as the experiment records them
    file: FlyteFile  # the model's weights (a state_dict)


@dataclass
class DataBatch:
    """The data to score: every sample in one npz, or, for a directory of Parquet shards (streamed, never loaded
    whole), its manifest in `shards` (file URLs, rows per file, the DVC hash and commit); then `file` is that
    manifest as JSON, `n` the rows the footers count and `sha256` the manifest's hash."""

    file: FlyteFile  # npz: x (prepared features), y (prepared targets, when the data has them) (shards: manifest.json)
    n: int
    has_targets: bool
    source: str
    sha256: str
    nbytes: int = 0  # the samples' size in memory (shards: 0, never held)
    shards: Optional[Manifest] = None  # streamed: the Parquet shards' manifest (tasks/data/shards.py)


@dataclass
class Predictions:
    # Parquet: row, prediction (, confidence for classes) (, target). Shards: the index of the source files
    # (file, url, rows), and the predictions themselves in `parts`.
    predictions: FlyteFile
    n: int
    metrics: dict[str, float] = field(default_factory=dict)  # "data/<metric>", "data/loss" when the data has targets
    model: str = ""
    version: str = ""
    rev: str = ""
    source: str = ""
    experiment_test: dict[str, float] = field(default_factory=dict)  # the model's own test scores, beside
    # Shards: a directory of Parquet files, a row each: file, row_hash, split, prediction (, confidence), target,
    # output (see tasks/ray_glue/predict.py). None for data scored in memory.
    parts: Optional[FlyteDirectory] = None


def _workdir(name: str) -> Path:
    path = Path(flytekit.current_context().working_directory) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@task(retries=2, secret_requests=secrets.BRIDGE_SECRETS)
def resolve_model(model: str, repo_url: str) -> ModelRef:
    """Resolve `<artifact>#<stage>` or `<artifact>@<version>` through DVC/GTO (tags read with `git ls-remote`,
    only that commit fetched, `--depth 1`; its files through DVC, only the model's file from the DVC remote);
    refuse a model whose problem cannot be imported here."""
    from dvc.api import DVCFileSystem

    secrets.export(secrets.BRIDGE_SECRETS)
    target = resolve_target(repo_url)
    commit = Path(tempfile.mkdtemp(dir=_workdir("repo"))) / "commit"
    with recoverable_on_transient():
        found = resolve_registered(target.url, model, commit)
    # A local repo (`make run`'s, often without a DVC remote) is read in place at that commit, from its own DVC
    # cache; a remote one from the fetched commit, DVC-tracked files from its DVC remote.
    fs = DVCFileSystem(repo=target.url, rev=found.rev) if target.local else DVCFileSystem(repo=str(commit))
    params = yaml.safe_load(fs.read_text(PARAMS)) or {}
    problem_ref = str(params.get("problem", ""))
    try:
        problem = load_problem(problem_ref)
    except ProblemError as e:
        raise RegistryError(
            f"model {model!r} ({found.artifact} {found.version or found.rev[:8]}) was trained by problem "
            f"{problem_ref!r}, which cannot be imported here: {e} Make its module importable (PYTHONPATH; on a "
            "cluster, in the image) and run again."
        ) from e
    best = yaml.safe_load(fs.read_text(BEST_PARAMS)) if fs.exists(BEST_PARAMS) else {}
    run_info = json.loads(fs.read_text(RUN_INFO)) if fs.exists(RUN_INFO) else {}
    local = _workdir("model") / Path(found.path).name
    fs.get_file(found.path, str(local))  # just this file, from the DVC remote (or the repo's cache)
    return ModelRef(
        model=model,
        artifact=found.artifact,
        version=found.version,
        stage=found.stage,
        repo=target.display,
        rev=found.rev,
        path=found.path,
        problem=problem_ref,
        hyperparams=complete(problem, best or {}),
        data_sha256=str((params.get("data") or {}).get("sha256", "")),
        test={k: float(v) for k, v in (run_info.get("test") or {}).items()},
        file=FlyteFile(str(local)),
    )


@task(secret_requests=secrets.CLOUD)  # an s3:// or dvc:// dataset is read with the team's cloud credentials
def load_data(dataset: str, model: ModelRef) -> DataBatch:
    """Every sample of `dataset` (tune_train_wf's sources), checked against the schema of the model's problem;
    a directory of Parquet shards is not loaded: its manifest, its schema checked on a sample as training does."""
    from tasks.data.batch import load_batch
    from tasks.data.shards import is_sharded

    problem = load_problem(model.problem)
    if is_sharded(dataset):
        return _shards_batch(dataset, problem, model.problem)
    batch = load_batch(dataset, problem)
    path = _workdir("batch") / "batch.npz"
    arrays = {"x": batch.x, **({"y": batch.y} if batch.y is not None else {})}
    np.savez(path, **arrays)
    return DataBatch(
        file=FlyteFile(str(path)),
        n=len(batch.x),
        has_targets=batch.y is not None,
        source=batch.source,
        sha256=batch.content_hash(),
        nbytes=int(sum(a.nbytes for a in arrays.values())),
    )


def _shards_batch(source: str, problem, problem_ref: str) -> DataBatch:
    """A directory of Parquet shards: its manifest (a problem without `rows` refused naming the fix), nothing loaded."""
    from tasks.data.shards import resolve_to_file

    manifest, path = resolve_to_file(source, problem, problem_ref, _workdir("batch"))
    return DataBatch(
        file=FlyteFile(str(path)),
        n=manifest.total_rows,
        has_targets=True,  # a row decodes to (x, y): the problem's columns include its target
        source=manifest.source,
        sha256=manifest.sha256,
        shards=manifest,
    )


def replicas(cpus: int) -> int:
    """Model replicas (Ray Data actors of one CPU each) for a cluster of `cpus`: one CPU is left for the tasks that
    read the blocks, or the actors hold every CPU and the read waits forever."""
    return max(1, cpus - 1)


def score_timeout(cluster: PredictCluster) -> timedelta:
    return timedelta(seconds=cluster.startup_timeout_s + cluster.score_timeout_s)


PREDICT_CLUSTER = ray_job_config(PredictCluster())


@task(
    task_config=PREDICT_CLUSTER,
    timeout=score_timeout(PredictCluster()),  # a run's own: predict_on_cluster
    secret_requests=secrets.CLOUD,
    enable_deck=True,
)
def score_data(
    model: ModelRef, data: DataBatch, batch_size: int = 256, cluster: PredictCluster = PredictCluster()
) -> Predictions:
    """Ray Data batch inference (`map_batches`, one model replica per CPU of the cluster but one): predictions as Parquet,
    and the problem's metrics when the data has targets. Parquet shards are read, scored and written by the
    cluster (`parts`, a directory of Parquet files), never gathered on the driver."""
    import pandas as pd

    from tasks.ray_glue.predict import run_predict, run_predict_shards

    problem = load_problem(model.problem)
    weights = Path(model.file.download()).read_bytes()
    cap = capacity(cluster)
    concurrency = replicas(cap.nodes * cap.cpus)
    parts = None
    if data.shards is not None:
        streamed = run_predict_shards(
            data.shards,
            model.problem,
            model.hyperparams,
            weights,
            _parts_uri(),
            batch_size=batch_size,
            concurrency=concurrency,
        )
        n, metrics, parts = streamed.n, streamed.metrics, FlyteDirectory(streamed.path)
        out = Path(tempfile.mkdtemp(dir=_workdir("predictions"))) / "files.parquet"
        index = {"file": range(len(data.shards.files)), "url": data.shards.files, "rows": data.shards.rows}
        pd.DataFrame(index).to_parquet(out, index=False)
        where = f"{n} rows of {data.source} ({len(data.shards.files)} files; {streamed.files} Parquet files written)"
    else:
        with np.load(data.file.download(), allow_pickle=False) as f:
            x, y = f["x"], (f["y"] if "y" in f.files else None)
        scored = run_predict(
            x, y, model.problem, model.hyperparams, weights, batch_size=batch_size, concurrency=concurrency
        )
        out = Path(tempfile.mkdtemp(dir=_workdir("predictions"))) / "predictions.parquet"
        pd.DataFrame(scored.columns).to_parquet(out, index=False)
        n, metrics, where = len(x), scored.metrics, f"{len(x)} samples of {data.source}"
    select = metric_key("data", problem.select)
    said = f"{where} scored with {model.model} ({model.artifact} {model.version}, {model.rev[:8]})"
    if metrics:
        test = model.test.get(metric_key("test", problem.select))
        said += f": {select} {metrics[select]:.4f}" + (
            f" (the experiment's test {problem.select} {test:.4f})" if test is not None else ""
        )
    print(said, flush=True)
    rows = "".join(f"<tr><th>{k}</th><td>{v:.4f}</td></tr>" for k, v in {**metrics, **model.test}.items())
    flytekit.current_context().decks.insert(0, Deck("Predictions", f"<p>{said}</p><table>{rows}</table>"))
    return Predictions(
        predictions=FlyteFile(str(out)),
        n=n,
        metrics=metrics,
        model=model.model,
        version=model.version,
        rev=model.rev,
        source=data.source,
        experiment_test=model.test,
        parts=parts,
    )


def _parts_uri() -> str:
    """A new, empty place for the streamed predictions, which the cluster's nodes write: the execution's
    raw-output prefix on Flyte (an object store every node reaches), the task's working directory locally.
    A new name per attempt, so files of an attempt that died are never mixed in."""
    name = f"predictions-{uuid.uuid4().hex[:12]}"
    if is_local_execution():
        return str(_workdir("predictions") / name)
    return f"{flytekit.current_context().raw_output_prefix.rstrip('/')}/{name}"


@dynamic
def predict_on_cluster(model: ModelRef, data: DataBatch, batch_size: int, cluster: PredictCluster) -> Predictions:
    """The scoring on a RayJob of the requested size, with its Flyte timeout; data the driver could never hold
    is refused here, before the RayJob exists (data loaded whole only: shards are streamed, never held)."""
    if data.shards is None:
        check_data_fits(data.nbytes, capacity(cluster))
    return score_data(model=model, data=data, batch_size=batch_size, cluster=cluster).with_overrides(
        task_config=ray_job_config(cluster), timeout=score_timeout(cluster)
    )
