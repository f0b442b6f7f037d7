"""tasks/clusters.py: cluster shapes, the RayJob configs built from them, the local worker env."""

from __future__ import annotations

import dataclasses
import os

import pytest
from flytekitplugins.ray import RayJobConfig

from tasks.clusters import (
    PROJECT_ROOT,
    ClusterShape,
    ProjectRayJobConfig,
    RayTask,
    local_worker_env,
    ray_job_config,
)

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


def test_cluster_shape_is_frozen():
    shape = ClusterShape(**BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shape.workers = 5  # type: ignore[misc]


def test_capacity_cpus():
    assert ClusterShape(**BASE).capacity_cpus == 4
    assert ClusterShape(workers=2, cpus_per_worker=3, memory_per_worker="1Gi", min_workers=1, max_workers=5).capacity_cpus == 15


# --------------------------------------------------------------------------- ray_job_config


def test_ray_job_config_fixed_size():
    shape = ClusterShape(workers=3, cpus_per_worker=2, memory_per_worker="6Gi", head_cpus="2", head_memory="3Gi", ttl_seconds=900)
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
