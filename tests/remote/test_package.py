"""Golden checks of what `pyflyte package` really produces for a Flyte cluster with KubeRay.

Every expected value comes from the settings (tasks/flyte/clusters.py, tasks/flyte/secrets.py, the nightly
configuration in the environment), so these fail when the serialized spec drifts from them.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from flyteidl.core import types_pb2
from google.protobuf.json_format import MessageToDict
from remote_env import CANARIES, IMAGE, NIGHTLY_ENV, archive_files

from tasks.flyte import secrets
from tasks.flyte.clusters import TRAIN_CLUSTER, TUNE_CLUSTER
from tasks.flyte.predict import PREDICT_CLUSTER, PredictCluster
from tasks.problem import DEFAULT_PROBLEM
from tasks.training.settings import TrainCluster, TuneCluster
from workflows.launch_plans import DEFAULT_NAME, KICKOFF_INPUT, NIGHTLY_NAME, PREDICT_NAME, experiment_name

RAY_TASKS = {
    "tasks.flyte.predict.score_data": (PredictCluster(), PREDICT_CLUSTER),
    "tasks.flyte.tasks.tune_hyperparameters": (TuneCluster(), TUNE_CLUSTER),
    "tasks.flyte.tasks.train_model": (TrainCluster(), TRAIN_CLUSTER),
}
# Which task asks Flyte for which secrets; every other task asks for none.
SECRET_REQUESTS = {
    "tasks.flyte.tasks.check_target": secrets.BRIDGE_SECRETS,
    "tasks.flyte.tasks.commit_experiment": secrets.BRIDGE_SECRETS,
    "tasks.flyte.tasks.train_model": secrets.TRAIN_SECRETS,
    # The data's readers: an s3:// or dvc:// dataset lives in the team's object store.
    "tasks.flyte.tasks.pin_dataset": secrets.CLOUD,
    "tasks.flyte.tasks.prepare_data": secrets.CLOUD,
    "tasks.flyte.tasks.tune_hyperparameters": secrets.CLOUD,
    "tasks.flyte.predict.resolve_model": secrets.BRIDGE_SECRETS,
    "tasks.flyte.predict.score_data": secrets.CLOUD,
    "tasks.flyte.predict.load_data": secrets.CLOUD,
}


def test_package_holds_the_whole_workflow(golden):
    assert set(RAY_TASKS) <= set(golden.tasks)
    assert {
        "workflows.tune_train.tune_train_wf",
        "workflows.launch_plans.nightly_wf",
        "workflows.predict.predict_wf",
    } <= set(golden.workflows)
    assert {DEFAULT_NAME, NIGHTLY_NAME, PREDICT_NAME} <= set(golden.launch_plans)


def test_every_task_runs_in_the_given_image(golden):
    for name, task in golden.tasks.items():
        assert task.container.image == IMAGE, name
        assert task.container.args[0] == "pyflyte-execute", name  # --copy none: the code is in the image


@pytest.mark.parametrize("name", sorted(RAY_TASKS), ids=["score", "train", "tune"])
def test_ray_task_spec_matches_the_cluster_shape(golden, name):
    shape, cluster = RAY_TASKS[name]
    task = golden.tasks[name]
    assert task.type == "ray"
    assert cluster.shutdown_after_job_finishes is True and cluster.ttl_seconds_after_finished == shape.ttl_seconds
    assert_ray_spec(MessageToDict(task.custom), shape)
    assert task.metadata.timeout.ToSeconds() > 0, "a Ray task without a timeout can hold its cluster forever"


def assert_ray_spec(custom: dict, shape) -> None:
    """The RayJob part of a Ray task's spec is the shape: head without CPUs, the worker group's size, autoscaling
    bounds, requests = limits (GPUs included), TTL, no runtime_env."""
    assert custom["shutdownAfterJobFinishes"] is True
    assert custom["ttlSecondsAfterFinished"] == shape.ttl_seconds > 0
    assert not {"runtimeEnv", "runtimeEnvYAML", "runtimeEnvYaml"} & set(custom), "runtime_env is readable by anyone"

    ray_cluster = custom["rayCluster"]
    assert ray_cluster.get("enableAutoscaling", False) == shape.autoscaling
    head = ray_cluster["headGroupSpec"]
    assert head["rayStartParams"] == {"num-cpus": "0"}
    (head_container,) = head["k8sPod"]["podSpec"]["containers"]
    head_resources = {"cpu": shape.head_cpus, "memory": shape.head_memory}
    assert head_container["resources"] == {"requests": head_resources, "limits": head_resources}
    assert head_container.get("image", IMAGE) == IMAGE

    (group,) = ray_cluster["workerGroupSpec"]
    assert group["groupName"] == "workers"
    assert group["replicas"] == shape.workers
    assert group["minReplicas"] == (shape.min_workers if shape.autoscaling else shape.workers)
    assert group["maxReplicas"] == (shape.max_workers if shape.autoscaling else shape.workers)
    assert group["rayStartParams"] == {"num-cpus": str(shape.cpus_per_worker)}
    (worker_container,) = group["k8sPod"]["podSpec"]["containers"]
    worker_resources = {"cpu": str(shape.cpus_per_worker), "memory": shape.memory_per_worker}
    if shape.gpus_per_worker:
        worker_resources["nvidia.com/gpu"] = str(shape.gpus_per_worker)
    assert worker_container["resources"] == {"requests": worker_resources, "limits": worker_resources}
    assert worker_container.get("image", IMAGE) == IMAGE


def test_run_sizes_reach_the_ray_tasks_the_dynamic_steps_emit_mocked_flyte_backend():
    """No Flyte backend here: the dynamic steps are compiled as their pods would compile them (flytekit's task-execution
    mode), and the DynamicJobSpec they hand propeller carries each run's own cluster sizes, GPUs and timeouts."""
    from tasks.flyte.sizing import ray_tasks
    from tasks.training.capacity import train_timeout_s, tune_timeout_s
    from tasks.training.settings import TrainSettings, TuneSettings

    tune, train = TuneSettings(num_samples=12, gpus_per_trial=0.5), TrainSettings(use_gpu=True, num_workers=4, epochs=3)
    tune_cluster = TuneCluster(
        workers=1,
        min_workers=1,
        max_workers=3,
        cpus_per_worker=4,
        gpus_per_worker=1,
        memory_per_worker="16Gi",
        head_cpus="2",
        head_memory="3Gi",
        ttl_seconds=120,
    )
    train_cluster = TrainCluster(workers=2, cpus_per_worker=2, gpus_per_worker=2, memory_per_worker="32Gi")
    specs = ray_tasks(tune, train, tune_cluster, train_cluster)
    assert_ray_spec(specs["tune_hyperparameters"], tune_cluster)
    assert_ray_spec(specs["train_model"], train_cluster)
    assert specs["tune_hyperparameters"]["timeout_s"] == tune_timeout_s(tune, tune_cluster)
    assert specs["train_model"]["timeout_s"] == train_timeout_s(train, train_cluster)
    # 3 workers x 2 trials a GPU = 6 at once: 12 trials in 2 waves (the timeout counts them).
    assert (
        tune_timeout_s(tune, tune_cluster)
        == tune_cluster.startup_timeout_s + 2 * tune.max_epochs * tune.epoch_timeout_s
    )
    # The packaged tasks keep their defaults in this process (with_overrides sets the task object's config).
    from tasks.flyte.clusters import ray_job_config
    from tasks.flyte.tasks import train_model, tune_hyperparameters

    assert tune_hyperparameters.task_config == ray_job_config(TuneCluster())
    assert train_model.task_config == ray_job_config(TrainCluster())


def test_only_ray_tasks_are_ray(golden):
    assert {n for n, t in golden.tasks.items() if t.type == "ray"} == set(RAY_TASKS)


@pytest.mark.parametrize(
    "name", sorted(SECRET_REQUESTS) + ["tasks.flyte.tasks.validate_settings", "tasks.flyte.tasks.check_target"]
)
def test_secret_requests_in_the_task_templates(golden, name):
    requested = [(s.group, s.key, s.env_var) for s in golden.tasks[name].security_context.secrets]
    expected = [(s.group, s.key, s.env_var) for s in SECRET_REQUESTS.get(name, [])]
    assert sorted(requested) == sorted(expected), f"{name} requests {requested}"
    assert all(group == secrets.GROUP for group, _, _ in requested)


def test_nightly_launch_plan_carries_its_schedule_and_config(golden):
    lp = golden.launch_plans[NIGHTLY_NAME]
    assert lp.spec.workflow_id.name == "workflows.launch_plans.nightly_wf"
    schedule = lp.spec.entity_metadata.schedule
    assert schedule.cron_schedule.schedule == NIGHTLY_ENV["NIGHTLY_CRON"]
    assert schedule.kickoff_time_input_arg == KICKOFF_INPUT
    fixed = {k: v.scalar.primitive.string_value for k, v in lp.spec.fixed_inputs.literals.items()}
    assert fixed == {
        "dataset": NIGHTLY_ENV["NIGHTLY_DATASET"],
        "repo_url": NIGHTLY_ENV["EXPERIMENTS_REPO_URL"],
        "problem": NIGHTLY_ENV.get("NIGHTLY_PROBLEM", DEFAULT_PROBLEM),
    }
    # The kickoff time is the one input the schedule fills: required, no default.
    assert KICKOFF_INPUT in lp.spec.default_inputs.parameters
    assert lp.spec.default_inputs.parameters[KICKOFF_INPUT].required


def test_nightly_predict_plan_scores_the_newest_data_with_the_prod_model(golden):
    lp = golden.launch_plans[PREDICT_NAME]
    assert lp.spec.workflow_id.name == "workflows.predict.predict_wf"
    assert lp.spec.entity_metadata.schedule.cron_schedule.schedule == "0 4 * * *"
    fixed = {k: v.scalar.primitive.string_value for k, v in lp.spec.fixed_inputs.literals.items()}
    assert fixed == {
        "model": "digits-model#prod",
        "dataset": NIGHTLY_ENV["NIGHTLY_DATASET"],  # no rev=: the newest revision each night
        "repo_url": NIGHTLY_ENV["EXPERIMENTS_REPO_URL"],
    }


def test_nightly_workflow_names_the_experiment_from_the_kickoff_time(golden):
    template = golden.workflows["workflows.launch_plans.nightly_wf"].template
    kickoff = template.interface.inputs.variables[KICKOFF_INPUT].type
    assert kickoff.simple == types_pb2.SimpleType.DATETIME
    (name_node,) = [
        n for n in template.nodes if n.task_node.reference_id.name == "workflows.launch_plans.nightly_exp_name"
    ]
    (binding,) = name_node.inputs
    assert binding.binding.promise.var == KICKOFF_INPUT and binding.binding.promise.node_id == ""
    (sub,) = [n for n in template.nodes if n.HasField("workflow_node")]
    assert sub.workflow_node.sub_workflow_ref.name == "workflows.tune_train.tune_train_wf"
    exp = next(b.binding.promise for b in sub.inputs if b.var == "exp_name")
    assert exp.node_id == name_node.id
    assert experiment_name(datetime(2026, 11, 22, 2, 0)) == "nightly-20261122-0200"


def test_default_launch_plan_commits_to_the_configured_repo(golden):
    lp = golden.launch_plans[DEFAULT_NAME]
    assert lp.spec.workflow_id.name == "workflows.tune_train.tune_train_wf"
    assert not lp.spec.entity_metadata.HasField("schedule")
    repo = lp.spec.default_inputs.parameters["repo_url"].default.scalar.primitive.string_value
    assert repo == NIGHTLY_ENV["EXPERIMENTS_REPO_URL"]


@pytest.mark.parametrize("which", ["copy-none", "copy-all"])
def test_no_secret_anywhere_in_the_package(golden, fast_archive, which):
    archive = golden.dir.parent / "package.tgz" if which == "copy-none" else fast_archive
    files = list(archive_files(archive))
    assert any(IMAGE.encode() in data for _, data in files), "the scan must find a value that is there"
    if which == "copy-all":
        assert any(name.endswith("tasks/flyte/secrets.py") for name, _ in files), "the code archive must be scanned"
    for name, data in files:
        for var, value in CANARIES.items():
            assert value.encode() not in data, f"{var} leaked into {name}"


@pytest.mark.parametrize("name", sorted(RAY_TASKS), ids=["score", "train", "tune"])
def test_print_rayjob_shows_what_flyte_and_kuberay_build_from_the_package(golden, capsys, name):
    """`emulate_remote.py --print-rayjob --package ...` on the real package: the RayJob of each Ray task, as the
    Flyte 1.16 plugin builds it, and the `ray start` KubeRay derives per pod. Golden keys, from the settings."""
    import yaml

    from emulator.cli import main
    from emulator.kuberay import quantity_value

    assert (
        main(
            [
                "--print-rayjob",
                "--package",
                str(golden.dir.parent / "package.tgz"),
                "--workdir",
                str(golden.dir.parent / f"print-{name}"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out

    def task_of(job: dict) -> str:
        env = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]["env"]
        return next(e["value"] for e in env if e["name"] == "FLYTE_INTERNAL_TASK_NAME")

    docs = {task_of(d): d for d in yaml.safe_load_all(out) if d}
    assert set(docs) == set(RAY_TASKS)
    shape, cluster = RAY_TASKS[name]
    job = docs[name]
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert (
        spec["entrypoint"].startswith("pyflyte-execute --inputs s3://")
        and f"task-name {name.rsplit('.', 1)[1]}" in spec["entrypoint"]
    )
    assert "--prev-checkpoint ''" in spec["entrypoint"]  # empty args kept, as the plugin joins them
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == shape.ttl_seconds
    assert "runtimeEnvYAML" not in spec
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"] == {
        **cluster.head_node_config.ray_start_params,
        "include-dashboard": "true",
        "dashboard-host": "0.0.0.0",
        "node-ip-address": "$MY_POD_IP",
        "disable-usage-stats": "true",
    }
    (head_container,) = head["template"]["spec"]["containers"]
    assert head_container["name"] == "ray-head" and head_container["image"] == IMAGE
    assert head_container["resources"]["limits"] == {"cpu": shape.head_cpus, "memory": shape.head_memory}
    (group,) = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert group["rayStartParams"] == {
        "num-cpus": str(shape.cpus_per_worker),
        "node-ip-address": "$MY_POD_IP",
        "disable-usage-stats": "true",
    }
    (worker,) = group["template"]["spec"]["containers"]
    assert worker["name"] == "ray-worker" and {"TYPE", "MY_POD_IP"} <= {e["name"] for e in worker["env"]}
    # Every pod a copy of the task pod: its env, and the secret requests (names only) for Flyte's webhook.
    submitter = spec["submitterPodTemplate"]
    pods = [head["template"], group["template"], submitter]
    task_env = {e["name"]: e.get("value") for e in submitter["spec"]["containers"][0]["env"]}
    for pod in pods:
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert task_env.items() <= env.items()
        assert (pod["metadata"].get("labels", {}).get("inject-flyte-secrets") == "true") == bool(
            SECRET_REQUESTS.get(name)
        )
    # What KubeRay starts: num-cpus as given, memory from the container limits, a bare --block.
    starts = [line for line in out.split("---")[[*docs].index(name) + 1].splitlines() if line.startswith("#   ray-")]
    head_start, worker_start = starts
    assert "ray start --head" in head_start and "--num-cpus=0" in head_start
    assert f"--memory={quantity_value(shape.head_memory)}" in head_start and quantity_value("2Gi") == 2 * 2**30
    assert f"--num-cpus={shape.cpus_per_worker}" in worker_start
    assert f"--memory={quantity_value(shape.memory_per_worker)}" in worker_start
    assert " --block " in worker_start and "--disable-usage-stats " in worker_start
    for value in CANARIES.values():
        assert value not in out


def test_data_no_head_could_hold_is_refused_before_the_rayjob_exists_mocked_flyte_backend():
    """The dynamic step runs in its own pod before propeller creates the RayJob: splits larger than the head's memory
    (where the task's driver loads them) fail there, naming the field to raise; a head large enough compiles."""
    from flytekit.types.file import FlyteFile

    from tasks.flyte.contracts import Dataset
    from tasks.flyte.sizing import compile_dynamic
    from tasks.flyte.tasks import tune_on_cluster
    from tasks.training.settings import TuneSettings

    def data(nbytes: int, d: Path) -> Dataset:
        (d / "data.npz").write_bytes(b"")
        return Dataset(
            file=FlyteFile(str(d / "data.npz")),
            sha256="0" * 64,
            n_train=1,
            n_val=1,
            n_test=1,
            source="",
            problem="digits",
            nbytes=nbytes,
        )

    with tempfile.TemporaryDirectory() as d:
        three_gib = data(3 * 2**30, Path(d))
        spec = compile_dynamic(
            tune_on_cluster, {"data": three_gib, "settings": TuneSettings(), "cluster": TuneCluster(head_memory="8Gi")}
        )
        assert [t.id.name for t in spec.tasks] == ["tasks.flyte.tasks.tune_hyperparameters"]
        with pytest.raises(Exception, match=r'3\.00 GiB .* tune_cluster.head_memory to at least "7Gi"'):
            compile_dynamic(tune_on_cluster, {"data": three_gib, "settings": TuneSettings(), "cluster": TuneCluster()})
