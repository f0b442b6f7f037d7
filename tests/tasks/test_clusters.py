"""tasks/flyte/clusters.py: cluster shapes, the RayJob configs built from them, the local worker env."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flytekitplugins.ray import RayJobConfig

from tasks.flyte.clusters import ProjectRayJobConfig, RayTask, ray_job_config
from tasks.ray_glue.local import PROJECT_ROOT, local_worker_env
from tasks.training.settings import ClusterShape

BASE = dict(workers=2, cpus_per_worker=2, memory_per_worker="4Gi")


# --------------------------------------------------------------------------- ClusterShape


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "at least 1 worker"),
        ({"workers": -1}, "at least 1 worker"),
        ({"cpus_per_worker": 0}, "at least 1 CPU"),
        ({"min_workers": 1}, "set both min_workers and max_workers"),
        ({"max_workers": 3}, "set both min_workers and max_workers"),
        ({"min_workers": 3, "max_workers": 4}, "min_workers <= workers"),
        ({"min_workers": 1, "max_workers": 1}, "workers <= max_workers"),
        ({"min_workers": -1, "max_workers": 4}, "0 <= min_workers"),
    ],
)
def test_cluster_shape_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClusterShape(**{**BASE, **kwargs})


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"workers": 1, "cpus_per_worker": 1},
        {"min_workers": 0, "max_workers": 2},
        {"min_workers": 2, "max_workers": 2},
        {"min_workers": 1, "max_workers": 8, "gpus_per_worker": 1},
    ],
)
def test_cluster_shape_valid(kwargs):
    shape = ClusterShape(**{**BASE, **kwargs})
    assert shape.autoscaling == ("min_workers" in kwargs)


def test_ray_job_config_fixed_size():
    shape = ClusterShape(
        workers=3, cpus_per_worker=2, memory_per_worker="6Gi", head_cpus="2", head_memory="3Gi", ttl_seconds=900
    )
    cfg = ray_job_config(shape)
    assert isinstance(cfg, ProjectRayJobConfig) and isinstance(cfg, RayJobConfig)

    head = cfg.head_node_config
    assert head.ray_start_params == {"num-cpus": "0"}
    assert (head.requests.cpu, head.requests.mem) == ("2", "3Gi")
    assert (head.limits.cpu, head.limits.mem) == ("2", "3Gi")
    assert head.limits.gpu is None

    assert len(cfg.worker_node_config) == 1
    group = cfg.worker_node_config[0]
    assert group.replicas == 3
    assert group.ray_start_params == {"num-cpus": "2"}
    assert (group.requests.cpu, group.requests.mem) == ("2", "6Gi")
    assert (group.limits.cpu, group.limits.mem) == ("2", "6Gi")
    assert group.limits.gpu is None and group.requests.gpu is None
    assert group.min_replicas is None and group.max_replicas is None

    assert cfg.enable_autoscaling is False
    assert cfg.shutdown_after_job_finishes is True
    assert cfg.ttl_seconds_after_finished == 900
    assert cfg.runtime_env is None
    assert cfg.address is None


def test_ray_job_config_default_ttl_is_set():
    cfg = ray_job_config(ClusterShape(**BASE))
    assert isinstance(cfg.ttl_seconds_after_finished, int) and cfg.ttl_seconds_after_finished > 0


@pytest.mark.parametrize("gpus", [1, 2])
def test_ray_job_config_gpu_workers(gpus):
    cfg = ray_job_config(ClusterShape(**BASE, gpus_per_worker=gpus))
    group = cfg.worker_node_config[0]
    assert group.limits.gpu == str(gpus)
    assert group.requests.gpu == str(gpus)
    assert cfg.head_node_config.limits.gpu is None  # the head never gets a GPU


def test_ray_job_config_autoscaling():
    cfg = ray_job_config(ClusterShape(**BASE, min_workers=1, max_workers=6))
    group = cfg.worker_node_config[0]
    assert cfg.enable_autoscaling is True
    assert (group.min_replicas, group.replicas, group.max_replicas) == (1, 2, 6)
    assert cfg.head_node_config.ray_start_params == {"num-cpus": "0"}
    assert cfg.runtime_env is None


def test_project_config_makes_a_ray_task_whose_spec_has_no_runtime_env():
    from flytekit import task
    from flytekit.configuration import ImageConfig, SerializationSettings

    @task(task_config=ray_job_config(ClusterShape(**BASE, gpus_per_worker=1, min_workers=1, max_workers=3)))
    def t() -> int:
        return 1

    assert isinstance(t, RayTask)
    custom = t.get_custom(SerializationSettings(image_config=ImageConfig.auto_default_image()))
    assert "runtimeEnv" not in custom and "runtimeEnvYAML" not in custom and "runtimeEnvYaml" not in custom
    assert custom["shutdownAfterJobFinishes"] is True
    assert custom["ttlSecondsAfterFinished"] == 600
    cluster = custom["rayCluster"]
    assert cluster["enableAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"] == {"num-cpus": "0"}
    (group,) = cluster["workerGroupSpec"]
    assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (2, 1, 3)
    (container,) = group["k8sPod"]["podSpec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (head_container,) = cluster["headGroupSpec"]["k8sPod"]["podSpec"]["containers"]
    assert "nvidia.com/gpu" not in head_container["resources"]["limits"]


# --------------------------------------------------------------------------- local_worker_env


def test_local_worker_env_puts_the_project_on_pythonpath(monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = local_worker_env()
    assert env["PYTHONPATH"].split(os.pathsep) == [str(PROJECT_ROOT)]


def test_local_worker_env_keeps_existing_pythonpath_without_duplicates(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/opt/a", str(PROJECT_ROOT), "", "/opt/b", "/opt/a"]))
    parts = local_worker_env()["PYTHONPATH"].split(os.pathsep)
    assert parts == [str(PROJECT_ROOT), "/opt/a", "/opt/b"]


def test_local_worker_env_never_forwards_secrets(monkeypatch):
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-value")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:9000")
    env = local_worker_env()
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"):
        assert name not in env
    assert all(secret not in v for v in env.values())
    # Non-secret settings are forwarded.
    assert env["DVC_NO_ANALYTICS"] == "1"
    assert env["AWS_ENDPOINT_URL"] == "http://localhost:9000"


def test_local_worker_env_skips_unset_and_empty_settings(monkeypatch):
    monkeypatch.delenv("DVC_SITE_CACHE_DIR", raising=False)
    monkeypatch.setenv("FLYTE_AWS_ENDPOINT", "")
    env = local_worker_env()
    assert "DVC_SITE_CACHE_DIR" not in env
    assert "FLYTE_AWS_ENDPOINT" not in env
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())


# --------------------------------------------------------------------------- requested sizes: what fits, timeouts


def _remote(shape):
    from tasks.training.capacity import Capacity

    return Capacity.of(shape)


def test_requested_train_cluster_with_gpus_places_one_ddp_worker_per_gpu():
    from tasks.training.capacity import check_cluster_fits, train_slots
    from tasks.training.settings import SettingsError, TrainCluster, TrainSettings, TuneCluster, TuneSettings

    gpu_cluster = TrainCluster(workers=2, cpus_per_worker=4, gpus_per_worker=1)
    assert train_slots(TrainSettings(use_gpu=True), _remote(gpu_cluster)) == 2  # GPUs, not the 8 CPUs, bound it
    check_cluster_fits(
        TuneSettings(), TrainSettings(use_gpu=True, num_workers=2), _remote(TuneCluster()), _remote(gpu_cluster)
    )
    with pytest.raises(SettingsError, match=r"train_cluster has 2 GPU\(s\) for 3 worker\(s\)"):
        check_cluster_fits(
            TuneSettings(), TrainSettings(use_gpu=True, num_workers=3), _remote(TuneCluster()), _remote(gpu_cluster)
        )
    few_cpus = TrainCluster(workers=2, cpus_per_worker=1, gpus_per_worker=2)  # 4 GPUs, but a DDP worker needs a CPU too
    with pytest.raises(
        SettingsError,
        match=r"train\.num_workers=3 .*train_cluster holds at most 2 DDP workers \(one CPU and one GPU each\)",
    ):
        check_cluster_fits(
            TuneSettings(), TrainSettings(use_gpu=True, num_workers=3), _remote(TuneCluster()), _remote(few_cpus)
        )
    with pytest.raises(SettingsError, match=r"train_cluster has 0 GPU\(s\) .*give train_cluster\.gpus_per_worker"):
        check_cluster_fits(TuneSettings(), TrainSettings(use_gpu=True), _remote(TuneCluster()), _remote(TrainCluster()))


def test_autoscaled_train_cluster_counts_its_maximum():
    from tasks.training.capacity import check_cluster_fits
    from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings

    grows = TrainCluster(workers=1, min_workers=1, max_workers=4)
    check_cluster_fits(TuneSettings(), TrainSettings(num_workers=4), _remote(TuneCluster()), _remote(grows))


@pytest.mark.parametrize(
    ("tune", "cluster", "slots"),
    [
        ({}, {}, 4),  # 2 workers x 2 CPUs, 1 CPU a trial
        ({"cpus_per_trial": 2}, {}, 2),
        ({"cpus_per_trial": 1.5}, {"cpus_per_worker": 3}, 4),
        ({"gpus_per_trial": 0.5}, {"gpus_per_worker": 1}, 4),  # two trials share each GPU
        ({"gpus_per_trial": 0.25}, {"gpus_per_worker": 1}, 4),  # CPUs bound it
        ({}, {"workers": 1, "min_workers": 0, "max_workers": 8}, 16),  # the autoscaled maximum
    ],
)
def test_trial_slots_follow_the_requested_shape(tune, cluster, slots):
    from tasks.training.capacity import trial_slots, tune_concurrency
    from tasks.training.settings import TuneCluster, TuneSettings

    settings = TuneSettings(num_samples=64, **tune)
    assert trial_slots(settings, _remote(TuneCluster(**cluster))) == slots
    assert tune_concurrency(settings, _remote(TuneCluster(**cluster))) == slots
    assert (
        tune_concurrency(TuneSettings(num_samples=64, max_concurrent_trials=1, **tune), _remote(TuneCluster(**cluster)))
        == 1
    )


def test_a_trial_that_fits_no_node_or_wants_a_gpu_there_is_none_is_refused():
    from tasks.training.capacity import check_cluster_fits
    from tasks.training.settings import SettingsError, TrainCluster, TrainSettings, TuneCluster, TuneSettings

    with pytest.raises(SettingsError, match=r"a trial must fit on one node, and tune_cluster offers 2 CPU\(s\)"):
        check_cluster_fits(
            TuneSettings(cpus_per_trial=3), TrainSettings(), _remote(TuneCluster()), _remote(TrainCluster())
        )
    with pytest.raises(
        SettingsError,
        match=r"tune\.gpus_per_trial=1 is not valid: tune_cluster has no GPU.*tune_cluster\.gpus_per_worker",
    ):
        check_cluster_fits(
            TuneSettings(gpus_per_trial=1), TrainSettings(), _remote(TuneCluster()), _remote(TrainCluster())
        )


def test_local_capacity_is_this_machine_and_remote_capacity_the_requested_shape():
    from flytekit.core.context_manager import ExecutionState, FlyteContextManager

    from tasks.flyte.clusters import capacity
    from tasks.training.capacity import local_cpus
    from tasks.training.settings import TrainCluster

    shape = TrainCluster(workers=5, cpus_per_worker=3, gpus_per_worker=2)
    ctx = FlyteContextManager.current_context()
    local_state = ctx.new_execution_state().with_params(mode=ExecutionState.Mode.LOCAL_WORKFLOW_EXECUTION)
    with FlyteContextManager.with_context(ctx.with_execution_state(local_state)):
        local = capacity(shape)
    assert (local.nodes, local.cpus, local.gpus, local.where) == (1, local_cpus(), 0, "this machine")
    remote_state = ctx.new_execution_state().with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
    with FlyteContextManager.with_context(ctx.with_execution_state(remote_state)):
        remote = capacity(shape)
    assert (remote.nodes, remote.cpus, remote.gpus, remote.where) == (5, 3, 2, "train_cluster")
    # the task's driver runs on the head remotely, on this machine locally (its RAM, as /proc/meminfo counts it)
    assert remote.driver_memory == 2 * 2**30  # TrainCluster's head_memory "2Gi"
    total_kib = int(
        next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1]
    )
    assert 0 < local.driver_memory <= total_kib * 1024 * 1.01


@pytest.mark.parametrize(
    "gib, head_memory, refused",
    [(0.01, "2Gi", False), (1.4, "2Gi", False), (1.6, "2Gi", True), (1.6, "4Gi", False), (30, "16Gi", True)],
)
def test_data_the_driver_could_never_hold_is_refused_naming_the_head_memory_to_ask_for(gib, head_memory, refused):
    from tasks.training.capacity import Capacity, check_data_fits
    from tasks.training.settings import SettingsError, TuneCluster

    cap = Capacity.of(TuneCluster(head_memory=head_memory))
    if not refused:
        check_data_fits(int(gib * 2**30), cap)
        return
    with pytest.raises(
        SettingsError,
        match=r"raise tune_cluster\.head_memory to at least \"\d+Gi\".*streams instead: write it as a directory of Parquet shards",
    ):
        check_data_fits(int(gib * 2**30), cap)


def test_data_of_unknown_size_or_on_an_unknown_machine_is_never_refused():
    from tasks.training.capacity import Capacity, check_data_fits

    check_data_fits(0, Capacity.of(ClusterShape(head_memory="1Mi")))  # a Dataset from before sizes were recorded
    check_data_fits(10**15, Capacity(nodes=1, cpus=1, gpus=0, where="this machine"))  # driver_memory not known


def test_timeouts_grow_with_the_work_and_the_start_up_allowance():
    from tasks.training.capacity import train_timeout_s, tune_timeout_s
    from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings

    small = tune_timeout_s(
        TuneSettings(num_samples=4, max_epochs=2, epoch_timeout_s=60), TuneCluster(startup_timeout_s=30)
    )
    assert small == 30 + 1 * 2 * 60  # 4 trials fit the 4 slots at once: one wave
    assert (
        tune_timeout_s(TuneSettings(num_samples=9, max_epochs=2, epoch_timeout_s=60), TuneCluster(startup_timeout_s=30))
        == 30 + 3 * 2 * 60
    )
    # Restarts from a checkpoint are allowed for: max_failures more passes.
    assert (
        train_timeout_s(TrainSettings(epochs=3, max_failures=1, epoch_timeout_s=10), TrainCluster(startup_timeout_s=5))
        == 5 + 2 * 3 * 10
    )


# --------------------------------------------------------------------------- waiting for resources


@pytest.mark.parametrize(
    ("bundles", "nodes", "ok"),
    [
        ([{"CPU": 1}] * 2, [{"CPU": 0}, {"CPU": 1}, {"CPU": 1}], True),
        ([{"CPU": 1}] * 3, [{"CPU": 0}, {"CPU": 1}, {"CPU": 1}], False),
        ([{"CPU": 2}], [{"CPU": 1}, {"CPU": 1}], False),  # a bundle is never split over nodes
        ([{"CPU": 1, "GPU": 1}] * 2, [{"CPU": 4, "GPU": 1}, {"CPU": 4}], False),
        ([{"CPU": 1, "GPU": 0.5}] * 2, [{"CPU": 4, "GPU": 1}], True),
    ],
)
def test_fits(bundles, nodes, ok):
    from tasks.ray_glue.resources import fits

    assert fits(bundles, nodes) is ok


def test_waiting_for_missing_gpus_fails_in_bounded_time_naming_them():
    """A real local Ray cluster without GPUs: the wait gives up after its timeout and names GPU as what is missing."""
    import ray

    from tasks.ray_glue.resources import ClusterResourcesError, wait_for

    if ray.is_initialized():  # an earlier in-process test's session: this test needs a cluster of its own
        ray.shutdown()
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        assert wait_for([{"CPU": 1}], 1, "a trial", "tune_cluster") == 0.0
        with pytest.raises(ClusterResourcesError) as info:
            wait_for([{"CPU": 1, "GPU": 1}] * 2, 1.5, "training on 2 worker(s)", "train_cluster", poll_s=0.2)
    finally:
        ray.shutdown()
    message = str(info.value)
    assert "training on 2 worker(s) needs 2 x (1 CPU, 1 GPU) = 2 CPU, 2 GPU" in message
    assert "after 1.5 s" in message and "Missing: CPU, GPU" in message and "train_cluster.startup_timeout_s" in message


def test_trial_device_is_the_gpu_ray_assigned_mocked_device_count(monkeypatch):
    """No GPU here: Ray's GPU assignment and torch's device count are mocked; only the device choice is checked."""
    import torch

    from tasks.ray_glue import tune as ray_tune

    assert ray_tune.trial_device() == torch.device("cpu")
    monkeypatch.setattr(ray_tune.ray, "get_gpu_ids", lambda: [3])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert ray_tune.trial_device() == torch.device("cuda", 0)  # Ray's CUDA_VISIBLE_DEVICES makes its GPU device 0
