"""An emulated remote run: the nightly launch plan from `pyflyte package`, every task through its own
container command with inputs and outputs in S3 on loopback, the Ray tasks on real multi-node Ray
clusters built from their RayJob specs (the `emulator` package says what is emulated and how).

The run happens once per module; each test checks one promise of the remote path against it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import typing
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from flyteidl.core import literals_pb2
from remote_env import CANARIES, IMAGE, package_env
from support import assert_experiment_in_remote, bare_remote

from emulator.blobstore import BlobStore
from emulator.literals import python_literals, to_python
from emulator.packaging import Package, build_package
from emulator.run import Execution, NodeRun
from tasks.flyte import secrets
from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings
from workflows.launch_plans import NIGHTLY_NAME, experiment_name
from workflows.tune_train import TuneTrainOutputs

pytestmark = pytest.mark.slow

TINY_TUNE = TuneSettings(num_samples=2, max_epochs=1, space={"lr": {"loguniform": [0.02, 0.1]}, "batch_size": 64})
TINY_TRAIN = TrainSettings(epochs=2, num_workers=2)
KICKOFF = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
# The blob store's own key: a credential too, so it must not land in outputs either.
BLOB_STORE_KEY = f"canary-blob-store-key-{uuid.uuid4().hex}"
TUNE_TASK, TRAIN_TASK = "tasks.flyte.tasks.tune_hyperparameters", "tasks.flyte.tasks.train_model"
# The diabetes run asks for its own cluster sizes, unlike the nightly run's defaults: each must be built as asked.
DIABETES_TUNE_CLUSTER = TuneCluster(workers=1, cpus_per_worker=3, memory_per_worker="3Gi", head_memory="1536Mi")
DIABETES_TRAIN_CLUSTER = TrainCluster(workers=3, cpus_per_worker=1, memory_per_worker="2Gi")


@dataclass
class Emulated:
    execution: Execution
    outputs: TuneTrainOutputs
    store: BlobStore
    repo_url: str
    dvc_bucket: str
    workdir: Path
    seconds: float

    def run(self, task: str) -> NodeRun:
        (run,) = [r for r in self.execution.runs if r.task == task]
        return run


@pytest.fixture(scope="module")
def emulated(tmp_path_factory, s3_endpoint) -> Emulated:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("emulated")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    blob_bucket, dvc_bucket = f"flyte-{uuid.uuid4().hex[:8]}", f"dvc-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=blob_bucket)
    s3.create_bucket(Bucket=dvc_bucket)

    # What the remote_target fixture makes, once for the module: a bare git remote with an S3 DVC remote.
    from tasks.scaffold import scaffold

    scaffold(work / "seed", remote=f"s3://{dvc_bucket}/dvc", endpoint=s3_endpoint)
    repo_url = bare_remote(work / "seed", work / "remote.git")

    # Registration: the nightly plan commits to that repo; fast registration, as `pyflyte run --remote`.
    archive = build_package(work / "package.tgz", IMAGE, env=package_env(EXPERIMENTS_REPO_URL=repo_url), copy="all")
    package = Package.load(archive, work / "package")

    store = BlobStore(s3_endpoint, blob_bucket, access_key="blob-store-user", secret_key=BLOB_STORE_KEY)
    flyte_secrets = {(s.group, s.key): CANARIES[s.env_var] for s in [*secrets.BRIDGE_SECRETS, *secrets.TRAIN_SECRETS]}
    execution = Execution(package, store, work, secrets=flyte_secrets)
    inputs = python_literals({"tune": TINY_TUNE, "train": TINY_TRAIN}, {"tune": TuneSettings, "train": TrainSettings})
    literals = execution.run_launch_plan(NIGHTLY_NAME, inputs, kickoff_time=KICKOFF)
    outputs = TuneTrainOutputs(**to_python(literals, typing.get_type_hints(TuneTrainOutputs)))
    seconds = time.monotonic() - started
    print(f"\nemulated remote run: {seconds:.1f} s wall")
    for r in execution.runs:
        ray = (
            f" (cluster up {r.ray.seconds_start:.1f} s, job {r.ray.seconds_job:.1f} s, down {r.ray.seconds_stop:.1f} s)"
            if r.ray
            else ""
        )
        print(f"  {r.node_id} {r.task}: {r.seconds:.1f} s{ray}")
    return Emulated(execution, outputs, store, repo_url, dvc_bucket, work, seconds)


def test_emulated_streaming_run_of_the_diabetes_problem_commits_its_own_experiment(emulated, tmp_path, s3_endpoint):
    """The default launch plan with --problem diabetes, through the same emulated cluster path, streaming its data:
    Parquet shards in a DVC data repo of their own (`dvc://data/diabetes?repo=...`), read from the DVC remote on S3
    by the worker pods (never pulled; the head, 0 CPUs, runs no read task); a regression whose experiment carries
    test/rmse (lower is better), not the digits' accuracy, and the shards' DVC hash as its data version."""
    from dvc.api import exp_show
    from support import git, publish_shards

    from tasks.scaffold import scaffold
    from workflows.launch_plans import DEFAULT_NAME

    scaffold(tmp_path / "data-seed", remote=f"s3://{emulated.dvc_bucket}/data", endpoint=s3_endpoint)
    data_url = bare_remote(tmp_path / "data-seed", tmp_path / "data.git")
    md5, data_commit = publish_shards(data_url, tmp_path / "publisher", "diabetes", 3)
    execution = Execution(
        emulated.execution.package, emulated.store, emulated.workdir / "diabetes", secrets=emulated.execution.secrets
    )
    values = {
        "problem": "diabetes",
        "dataset": f"dvc://data/diabetes?repo={data_url}",
        "repo_url": emulated.repo_url,
        "exp_name": "emulated-diabetes",
        "tune": TuneSettings(num_samples=2, max_epochs=1),
        "train": TrainSettings(epochs=2, num_workers=3),
        "tune_cluster": DIABETES_TUNE_CLUSTER,
        "train_cluster": DIABETES_TRAIN_CLUSTER,
    }
    types = {
        "problem": str,
        "dataset": str,
        "repo_url": str,
        "exp_name": str,
        "tune": TuneSettings,
        "train": TrainSettings,
        "tune_cluster": TuneCluster,
        "train_cluster": TrainCluster,
    }
    literals = execution.run_launch_plan(DEFAULT_NAME, python_literals(values, types))
    out = TuneTrainOutputs(**to_python(literals, typing.get_type_hints(TuneTrainOutputs)))
    assert out.experiment.metric == "test/rmse" and set(out.trained.test) == {"test/loss", "test/rmse", "test/mae"}
    clone = tmp_path / "clone"
    git("clone", "--quiet", emulated.repo_url, str(clone))
    subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "exp", "pull", "origin", "emulated-diabetes"],
        cwd=clone,
        check=True,
        capture_output=True,
    )
    row = {
        k.rsplit(":", 1)[-1]: v
        for k, v in next(r for r in exp_show(repo=str(clone)) if r.get("Experiment") == "emulated-diabetes").items()
    }
    assert row["problem"] == "diabetes" and row["test.rmse"] == pytest.approx(out.trained.test["test/rmse"])
    # The least-squares start (init_from_data) read the shards too, in the trials and on the three workers: this
    # budget (1 epoch a trial, 2 of training) starts near the linear fit; from zero it is above 70. The baseline is a
    # ridge regression fitted from one pass of sums on a worker, scored on the same hash splits.
    assert row["baseline.test.rmse"] > 0 and row["test.rmse"] < 1.1 * row["baseline.test.rmse"], row
    # DVC's own view of the experiment: the data version is the shards' directory hash, at the commit read.
    assert (row["data.dvc_md5"], row["data.dvc_rev"]) == (md5, data_commit), row
    assert row["data.rows"] == 442 and row["data.files"] == 3, row
    train = [r for r in execution.runs if r.task == TRAIN_TASK][0]
    assert train.ray is not None and train.ray.job_status == "SUCCEEDED"
    assert "Dataset train_" in _job_log(train, 0), _job_log(train, 0)[-3000:]  # Ray Data fed the workers
    assert not [p for p in train.ray.placements if p.cpus > 0 and p.node_id == train.ray.head_node_id]

    # The sizes asked for are the clusters built (through the dynamic steps' with_overrides), not the defaults.
    for task, shape in ((TUNE_TASK, DIABETES_TUNE_CLUSTER), (TRAIN_TASK, DIABETES_TRAIN_CLUSTER)):
        (run,) = [r for r in execution.runs if r.task == task]
        assert_cluster_is(run, shape)
        assert run.node_id.endswith("-0-dn0"), run.node_id  # a node of the dynamic step, as propeller names it
    assert len([p for p in train.ray.placements if p.name == "RayTrainWorker"]) == 3


def test_emulated_run_commits_the_nightly_experiment_to_the_remote(emulated, tmp_path):
    exp = emulated.outputs.experiment
    assert exp.name == experiment_name(KICKOFF) == "nightly-20261122-0200"
    assert exp.data_pushed and exp.ref_pushed
    model = emulated.store.get(emulated.outputs.trained.model.remote_source)
    assert_experiment_in_remote(emulated.repo_url, exp.name, model, tmp_path)


def test_emulated_outputs_land_in_s3(emulated):
    runs = emulated.execution.runs
    assert {TUNE_TASK, TRAIN_TASK, "tasks.flyte.tasks.commit_experiment"} <= {r.task for r in runs}
    for run in runs:
        assert emulated.store.exists(f"{run.output_prefix}/outputs.pb"), run.node_id
    train = emulated.run(TRAIN_TASK)
    trained = emulated.outputs.trained
    model_uri = trained.model.remote_source
    assert model_uri.startswith(train.raw_prefix + "/") and model_uri.endswith("model.pth")
    assert emulated.store.exists(model_uri)
    live_uri = trained.dvclive.remote_source
    assert live_uri.startswith(train.raw_prefix + "/")
    live_files = [k.removeprefix(live_uri.rstrip("/") + "/") for k in emulated.store.keys(live_uri)]
    assert "metrics.json" in live_files and "plots/metrics/val/accuracy.tsv" in live_files, live_files
    assert [m["epoch"] for m in trained.history] == list(range(1, TINY_TRAIN.epochs + 1))
    assert set(trained.test) == {"test/loss", "test/accuracy"}


# The actors that compute: Ray Train's DDP workers and Ray Tune's function trainables (one per running trial).
COMPUTE_ACTORS = {TRAIN_TASK: "RayTrainWorker", TUNE_TASK: "ImplicitFunc"}


def assert_cluster_is(run: NodeRun, shape) -> None:
    """The Ray nodes the emulated RayJob ran: a head with no CPUs, `workers` nodes of the asked CPUs and memory, and a
    Flyte timeout on the node derived from the run's settings."""
    from emulator.kuberay import quantity_value

    ray = run.ray
    assert ray is not None and ray.job_status == "SUCCEEDED", ray and ray.logs[-3000:]
    heads = [n for n in ray.nodes if n["is_head"]]
    workers = [n for n in ray.nodes if not n["is_head"]]
    assert [(n["CPU"], n["memory"]) for n in heads] == [(0.0, quantity_value(shape.head_memory))]
    assert [(n["CPU"], n["memory"]) for n in workers] == [
        (float(shape.cpus_per_worker), quantity_value(shape.memory_per_worker))
    ] * shape.workers


@pytest.mark.parametrize(
    ("task", "shape"), [(TUNE_TASK, TuneCluster()), (TRAIN_TASK, TrainCluster())], ids=["tune", "train"]
)
def test_emulated_ray_cluster_follows_the_spec_and_the_head_does_not_compute(emulated, task, shape):
    ray = emulated.run(task).ray
    assert_cluster_is(emulated.run(task), shape)

    computing = [p for p in ray.placements if p.name == COMPUTE_ACTORS[task] or p.cpus > 0]
    on_head = [p for p in computing if p.node_id == ray.head_node_id]
    assert not on_head, f"computed on the head: {on_head}"
    actors = [p for p in computing if p.name == COMPUTE_ACTORS[task]]
    if task == TRAIN_TASK:  # one DDP worker per worker node (1 CPU each)
        assert len(actors) == TINY_TRAIN.num_workers == len({p.node_id for p in actors}), ray.placements
    else:  # trials run in actors, reused between trials
        assert 1 <= len(actors) <= TINY_TUNE.num_samples, ray.placements
    assert ray.leftover_pids == [], "the cluster's processes must be gone after teardown"


def _git_objects(bare: Path) -> bytes:
    return subprocess.run(
        "git cat-file --batch-all-objects --batch", shell=True, cwd=bare, capture_output=True, check=True
    ).stdout


def test_emulated_run_leaks_no_secret(emulated):
    """No secret value in any pod or Ray log, pod directory, S3 object (blob store, DVC remote) or git object."""
    values = {**CANARIES, "blob store key": BLOB_STORE_KEY}
    places: dict[str, bytes] = {}
    for path in (emulated.workdir / "pods").rglob("*"):
        if path.is_file() and not path.is_symlink():
            places[str(path)] = path.read_bytes()
    for bucket in (emulated.store.bucket, emulated.dvc_bucket):
        for uri in emulated.store.keys(f"s3://{bucket}/"):
            places[uri] = emulated.store.get(uri)
    places["git objects of the remote"] = _git_objects(Path(emulated.repo_url.removeprefix("file://")))
    assert len(places) > 50 and any(b"nightly-20261122-0200" in v for v in places.values())
    leaks = sorted(
        {f"{name} in {where}" for where, data in places.items() for name, v in values.items() if v.encode() in data}
    )
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    ("task", "shape"), [(TUNE_TASK, TuneCluster()), (TRAIN_TASK, TrainCluster())], ids=["tune", "train"]
)
def test_emulated_cluster_is_what_flyte_and_kuberay_build(emulated, task, shape):
    """The nodes ran what the RayJob Flyte builds and KubeRay completes: the plugin's start params, memory from the
    container limits, the task pod's env in every pod (plus each role's), the driver on the head, a small working_dir."""
    from emulator.kuberay import quantity_value

    run = emulated.run(task)
    ray = run.ray
    head_params = ray.manifest["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert {"include-dashboard", "dashboard-host", "node-ip-address", "disable-usage-stats"} <= set(head_params)
    starts = {pod.rsplit("-", 1)[-1] if "head" in pod else "worker": args for pod, args in ray.start_commands.items()}
    assert "--head" in starts["head"] and "--disable-usage-stats" in starts["head"] and "--block" in starts["head"]
    assert "--include-dashboard=true" in starts["head"]
    memory = {n["is_head"]: n["memory"] for n in ray.nodes}
    assert memory[True] == quantity_value(shape.head_memory)
    assert memory[False] == quantity_value(shape.memory_per_worker)
    assert ray.driver_node_id == ray.head_node_id, "the entrypoint runs as the job driver in the head pod"
    pods = emulated.workdir / "pods"
    attempt = f"{run.node_id}-{run.attempts - 1}"
    assert (pods / f"{attempt}-rayjob.yaml").is_file()
    ((_, mib),) = ray.uploads  # flytekit's working_dir: the head pod's app dir, uploaded once
    assert 0 < mib < 5 and ray.upload_warnings == []


def _tune_alone(emulated: Emulated, where: str, settings: TuneSettings, cluster: TuneCluster, **execution_args):
    """The dynamic tune step of the nightly run again, alone, on its prepared data, with other settings and sizes."""
    prepared = emulated.run("tasks.flyte.tasks.prepare_data")
    data = literals_pb2.LiteralMap.FromString(emulated.store.get(f"{prepared.output_prefix}/outputs.pb")).literals["o0"]
    execution = Execution(
        emulated.execution.package,
        emulated.store,
        emulated.workdir / where,
        secrets=emulated.execution.secrets,
        **execution_args,
    )
    from tasks.flyte.contracts import SearchHistory

    inputs = {
        "data": data,
        **python_literals(
            {"settings": settings, "cluster": cluster, "history": SearchHistory()},
            {"settings": TuneSettings, "cluster": TuneCluster, "history": SearchHistory},
        ),
    }
    return execution, lambda: execution.run_task("tasks.flyte.tasks.tune_on_cluster", inputs, node_id="n4")


def test_emulated_search_whose_gpus_never_come_fails_in_bounded_time_naming_them(emulated):
    """An autoscaling tune cluster that starts empty and asks for GPU workers on a cluster with none (here: no
    autoscaler adds a node, as none could be scheduled): the RayJob starts (KubeRay only waits for the head), the
    search waits `startup_timeout_s` for one trial's resources, then fails naming them; not retried."""
    from emulator.propeller import TaskFailed

    cluster = TuneCluster(workers=0, min_workers=0, max_workers=2, gpus_per_worker=1, startup_timeout_s=10)
    settings = TuneSettings(num_samples=1, max_epochs=1, gpus_per_trial=1, space={"batch_size": 64})
    execution, run = _tune_alone(emulated, "no-gpu", settings, cluster)
    started = time.monotonic()
    with pytest.raises(TaskFailed) as info:
        run()
    print(f"\nrefused after {time.monotonic() - started:.1f} s: {str(info.value).splitlines()[0]}")
    message = " ".join(str(info.value).split())
    assert "(tasks.flyte.tasks.tune_hyperparameters) failed after 1 attempt(s)" in message, message[:3000]
    assert "a trial needs 1 x (1 CPU, 1 GPU) = 1 CPU, 1 GPU, and after 10 s the Ray cluster offers only" in message
    assert "Missing: CPU, GPU" in message and "tune_cluster.startup_timeout_s" in message
    (tune,) = [r for r in execution.runs if r.task == TUNE_TASK]
    assert tune.node_id == "n4-0-dn0" and [n["is_head"] for n in tune.ray.nodes] == [True], "the group starts empty"


def test_emulated_fixed_size_cluster_whose_gpu_pods_cannot_be_scheduled_ends_at_its_flyte_timeout(emulated):
    """A fixed-size tune cluster asking for GPU workers where the (emulated) Kubernetes node has none: the worker pod stays
    Pending, KubeRay never submits the job to a cluster that is not ready, and only the task's Flyte timeout, derived
    from the run's settings (startup_timeout_s + waves x epochs x epoch_timeout_s), ends it: bounded, not forever."""
    from emulator.propeller import TaskFailed
    from tasks.training.capacity import tune_timeout_s

    cluster = TuneCluster(workers=1, cpus_per_worker=2, gpus_per_worker=1, startup_timeout_s=5)
    settings = TuneSettings(num_samples=1, max_epochs=1, gpus_per_trial=1, epoch_timeout_s=5, space={"batch_size": 64})
    execution, run = _tune_alone(
        emulated, "pending", settings, cluster, node_allocatable={"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0"}
    )
    with pytest.raises(TaskFailed) as info:
        run()
    message = " ".join(str(info.value).split())
    timeout = tune_timeout_s(settings, cluster)
    assert timeout == 10
    assert f"TimeoutExpired: task execution timeout [{timeout}s] expired" in message, message[:2000]
    assert "retries exhausted" in message  # a timeout is a retryable user error; the Ray task has retries=0
    (tune,) = [r for r in execution.runs if r.task == TUNE_TASK]
    assert list(tune.ray.pending_pods.values()) == ["0/1 nodes are available: 1 Insufficient nvidia.com/gpu."]
    assert tune.ray.job_status == "" and tune.ray.nodes == [], "no job was ever submitted"


# --------------------------------------------------------------------------- clusters lost whole, as spot nodes are

LOST_TUNE = TuneSettings(num_samples=4, max_epochs=1, max_concurrent_trials=1, space=TINY_TUNE.space)
LOST_TRAIN = TrainSettings(epochs=4, num_workers=2)


@pytest.fixture(scope="module")
def lost(emulated) -> Emulated:
    """The default plan on digits, its search's cluster lost after 2 of 4 trials and its training's after epoch 2 of
    4 (`--lose-cluster tune_hyperparameters:2 --lose-cluster train_model:2`): every Ray process of the first attempt
    killed; propeller retries each with the previous attempt's checkpoint prefix."""
    from emulator.chaos import ClusterLoss
    from workflows.launch_plans import DEFAULT_NAME

    started = time.monotonic()
    execution = Execution(
        emulated.execution.package,
        emulated.store,
        emulated.workdir / "lost",
        secrets=emulated.execution.secrets,
        lose_clusters=(ClusterLoss("tune_hyperparameters", 2), ClusterLoss("train_model", 2)),
    )
    values = {"repo_url": emulated.repo_url, "exp_name": "emulated-lost", "tune": LOST_TUNE, "train": LOST_TRAIN}
    types = {"repo_url": str, "exp_name": str, "tune": TuneSettings, "train": TrainSettings}
    literals = execution.run_launch_plan(DEFAULT_NAME, python_literals(values, types))
    outputs = TuneTrainOutputs(**to_python(literals, typing.get_type_hints(TuneTrainOutputs)))
    seconds = time.monotonic() - started
    print(f"\nemulated run with both clusters lost once: {seconds:.1f} s wall")
    for r in execution.runs:
        print(f"  {r.node_id} {r.task}: {r.attempts} attempt(s), lost at {r.lost_cluster_at}, {r.seconds:.1f} s")
    return Emulated(
        execution, outputs, emulated.store, emulated.repo_url, emulated.dvc_bucket, emulated.workdir, seconds
    )


def _job_log(run: NodeRun, attempt: int) -> str:
    log = run.history[attempt].log
    return log.read_text() if log is not None and log.exists() else ""


def test_emulated_training_lost_cluster_after_epoch_2_of_4_retry_trains_epochs_3_and_4_only(lost):
    train = lost.run(TRAIN_TASK)
    assert train.lost_cluster_at is not None and 2 <= train.lost_cluster_at < LOST_TRAIN.epochs
    assert train.attempts == 2 and train.history[0].failure is not None and train.history[0].retried
    # The killed attempt's log may lack its last lines (they stream through the driver that was killed): the
    # retry's log, whole, says which epochs were trained again.
    first, retry = _job_log(train, 0), _job_log(train, 1)
    assert "epoch 1/4" in first, first[-3000:]
    redone = [e for e in range(1, LOST_TRAIN.epochs + 1) if f"epoch {e}/4:" in retry]
    assert redone == list(range(train.lost_cluster_at + 1, LOST_TRAIN.epochs + 1)), retry[-3000:]
    # The result holds every epoch once, as an uninterrupted run's does.
    assert [m["epoch"] for m in lost.outputs.trained.history] == [1, 2, 3, 4]


def test_emulated_search_lost_cluster_after_2_of_4_trials_retry_runs_only_the_unfinished(lost):
    import re

    tune = lost.run(TUNE_TASK)
    assert tune.lost_cluster_at is not None and 2 <= tune.lost_cluster_at < LOST_TUNE.num_samples
    assert tune.attempts == 2 and tune.history[0].retried
    trial = re.compile(r"trial \d+/\d+ (\S+) \[.*\]: epoch 1/1")
    retried = set(trial.findall(_job_log(tune, 1)))  # the retry's log is whole (the killed attempt's may not be)
    assert len(retried) == LOST_TUNE.num_samples - tune.lost_cluster_at, retried


def test_emulated_lost_cluster_run_commits_an_experiment_shaped_like_an_uninterrupted_one(lost, emulated, tmp_path):
    """The same files, params, metrics and plots as the nightly run (uninterrupted, same problem), one plot row per
    epoch, every epoch once."""
    exp = lost.outputs.experiment
    assert exp.data_pushed and exp.ref_pushed
    model = lost.store.get(lost.outputs.trained.model.remote_source)
    lost_row = assert_experiment_in_remote(lost.repo_url, exp.name, model, tmp_path / "lost")
    nightly = emulated.outputs.experiment
    nightly_model = emulated.store.get(emulated.outputs.trained.model.remote_source)
    nightly_row = assert_experiment_in_remote(emulated.repo_url, nightly.name, nightly_model, tmp_path / "nightly")
    present = lambda row: {k.rsplit(":", 1)[-1] for k, v in row.items() if v is not None}  # noqa: E731
    assert present(lost_row) == present(nightly_row), present(lost_row) ^ present(nightly_row)


SCORE_TASK = "tasks.flyte.predict.score_data"


def test_emulated_predict_wf_scores_the_registered_nightly_model_on_its_own_ray_cluster(emulated):
    """`pyflyte run --remote workflows/predict.py predict_wf --model digits-model@<version> --repo_url ...`, from the
    same package: the version the nightly run registered, resolved from the remote repo (tags, then the model's
    file from the S3 DVC remote), scored by Ray Data on an emulated RayJob of PredictCluster's shape with the
    driver on the head; the predictions land in the blob store and agree with the metrics the run returned."""
    import io

    import pandas as pd

    from tasks.data.arrays import load_raw, parse_source
    from tasks.flyte.predict import PredictCluster, Predictions
    from tasks.problem import load_problem

    nightly = emulated.outputs.experiment
    assert nightly.version and nightly.stage == "staging", nightly
    execution = Execution(
        emulated.execution.package, emulated.store, emulated.workdir / "predict", secrets=emulated.execution.secrets
    )
    model = f"digits-model@{nightly.version}"
    inputs = python_literals({"model": model, "repo_url": emulated.repo_url}, {"model": str, "repo_url": str})
    # `pyflyte run --remote` executes the workflow's default launch plan: its defaults, then these inputs.
    literals = execution.run_launch_plan("workflows.predict.predict_wf", inputs)
    (predictions,) = to_python(literals, {"o0": Predictions}).values()

    score = [r for r in execution.runs if r.task == SCORE_TASK]
    assert len(score) == 1 and score[0].attempts == 1
    assert_cluster_is(score[0], PredictCluster())
    assert score[0].ray.driver_node_id == score[0].ray.head_node_id
    assert predictions.version == nightly.version and predictions.rev == nightly.commit

    embedded = load_raw(parse_source(""), load_problem("digits"))[0]
    uri = predictions.predictions.remote_source
    assert uri.startswith(score[0].raw_prefix + "/"), uri
    frame = pd.read_parquet(io.BytesIO(emulated.store.get(uri)))
    assert predictions.n == len(frame) == len(embedded["y"])
    assert list(frame["row"]) == list(range(len(frame)))
    accuracy = float((frame["prediction"] == frame["target"]).mean())
    assert predictions.metrics["data/accuracy"] == pytest.approx(accuracy)
    test = emulated.outputs.trained.test
    assert predictions.experiment_test == pytest.approx(test)
    # The embedded data holds the test split and the rows the model trained on: no worse than its test score.
    assert accuracy >= test["test/accuracy"] - 0.05, (accuracy, test)
