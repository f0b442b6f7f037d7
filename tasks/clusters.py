"""Every Ray cluster this project asks for, defined once.

Remote: each Ray task gets a transient KubeRay RayJob built from its `RayJobConfig`: a head
that coordinates and does not compute (`num-cpus: 0`), one worker group sized here, and a
TTL so no cluster outlives its job. Local `pyflyte run`: the plugin only calls `ray.init()`;
`RayTask.pre_execute` starts that local cluster first, without the dashboard and with the
environment the workers need, so a local run behaves like the remote one as far as one
machine allows. Nothing secret is ever put in `runtime_env` (it is readable by anyone who can
read the RayJob resource); secrets are read at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from flytekit import Resources
from flytekit.core.context_manager import ExecutionParameters, FlyteContextManager
from flytekit.exceptions.user import FlyteUserRuntimeException
from flytekit.extend import TaskPlugins
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig
from flytekitplugins.ray.task import RayFunctionTask

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Environment variables handed to local Ray workers when set in the driver (never secrets).
FORWARDED_ENV = ("DVC_SITE_CACHE_DIR", "DVC_NO_ANALYTICS", "AWS_ENDPOINT_URL", "FLYTE_AWS_ENDPOINT")


@dataclass(frozen=True)
class ClusterShape:
    """The size of one transient Ray cluster; the worker group is what computes."""

    workers: int
    cpus_per_worker: int
    memory_per_worker: str
    gpus_per_worker: int = 0
    min_workers: Optional[int] = None  # set both to enable autoscaling
    max_workers: Optional[int] = None
    head_cpus: str = "1"
    head_memory: str = "2Gi"
    ttl_seconds: int = 600

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus_per_worker < 1:
            raise ValueError(f"a cluster needs at least 1 worker with at least 1 CPU, got {self}.")
        if (self.min_workers is None) != (self.max_workers is None):
            raise ValueError("set both min_workers and max_workers to autoscale, or neither.")
        if self.autoscaling and not (0 <= self.min_workers <= self.workers <= self.max_workers):
            raise ValueError(f"need 0 <= min_workers <= workers <= max_workers, got {self}.")

    @property
    def autoscaling(self) -> bool:
        return self.min_workers is not None

    @property
    def capacity_cpus(self) -> int:
        """CPUs the worker group can offer at most (the head offers none)."""
        return (self.max_workers or self.workers) * self.cpus_per_worker


@dataclass
class ProjectRayJobConfig(RayJobConfig):
    """RayJobConfig that runs as `RayTask`; the wire format is the plugin's own."""


def is_local_execution() -> bool:
    return FlyteContextManager.current_context().execution_state.is_local_execution()


def local_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (os.cpu_count() sees neither)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def training_capacity_cpus() -> int:
    """CPUs the training cluster offers: this machine locally, the worker group remotely."""
    return local_cpus() if is_local_execution() else TRAIN_SHAPE.capacity_cpus


def training_capacity_gpus() -> int:
    """GPUs the training cluster offers: this machine's locally, the worker group's remotely."""
    return local_gpus() if is_local_execution() else TRAIN_SHAPE.gpus_per_worker * (TRAIN_SHAPE.max_workers or TRAIN_SHAPE.workers)


class RayTask(RayFunctionTask):
    """The plugin's Ray task, with a local Ray start that matches the remote one."""

    def pre_execute(self, user_params: ExecutionParameters) -> ExecutionParameters:
        if is_local_execution():
            init_local_ray()  # the plugin's own local start would only call `ray.init()` again
            return user_params
        try:
            return super().pre_execute(user_params)  # ray.init(): connects, uploads the working dir
        except Exception as e:
            # Ray refuses the job's configuration (a working dir over its upload cap, a bad runtime_env; a
            # ValueError, which Ray wraps in RuntimeEnvSetupError): a user error every retry would repeat,
            # not the recoverable system error flytekit makes of it (propeller would start a new RayJob up
            # to 3 times, failing the same way). A connection error stays recoverable.
            if not _caused_by(e, ValueError):
                raise
            raise FlyteUserRuntimeException(e) from e


def _caused_by(error: BaseException, kind: type) -> bool:
    while error is not None:
        if isinstance(error, kind):
            return True
        error = error.__cause__
    return False


TaskPlugins.register_pythontask_plugin(ProjectRayJobConfig, RayTask)


# Local only. Ray Train's preemption watcher watches for Kubernetes node loss through the
# dashboard's state API, which a local cluster runs without (start-up time): it would only log
# errors. Its controller checks on the workers every 2 s, which adds up to 2 s after the last epoch.
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25"}


def local_worker_env() -> dict[str, str]:
    """What local Ray workers need: this project importable, and the driver's non-secret settings."""
    env = dict(LOCAL_RAY_ENV)
    env.update({name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)})
    paths = [str(PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def init_local_ray(num_cpus: Optional[int] = None) -> None:
    """Start (once per process) the local Ray cluster that local Ray tasks share."""
    import ray

    if ray.is_initialized():
        return
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        # The hook is named by module path, so a worker imports only that small module (not flytekit).
        runtime_env={
            "env_vars": local_worker_env(),
            "worker_process_setup_hook": "tasks.worker_setup.quiet_local_worker_logs",
        },
        logging_level="WARNING",
        log_to_driver=True,
    )


def ray_job_config(shape: ClusterShape) -> ProjectRayJobConfig:
    gpu = {"gpu": str(shape.gpus_per_worker)} if shape.gpus_per_worker else {}
    worker_resources = dict(cpu=str(shape.cpus_per_worker), mem=shape.memory_per_worker, **gpu)
    return ProjectRayJobConfig(
        head_node_config=HeadNodeConfig(
            ray_start_params={"num-cpus": "0"},
            requests=Resources(cpu=shape.head_cpus, mem=shape.head_memory),
            limits=Resources(cpu=shape.head_cpus, mem=shape.head_memory),
        ),
        worker_node_config=[
            WorkerNodeConfig(
                group_name="workers",
                replicas=shape.workers,
                min_replicas=shape.min_workers,
                max_replicas=shape.max_workers,
                ray_start_params={"num-cpus": str(shape.cpus_per_worker)},
                requests=Resources(**worker_resources),
                limits=Resources(**worker_resources),
            )
        ],
        enable_autoscaling=shape.autoscaling,
        shutdown_after_job_finishes=True,
        ttl_seconds_after_finished=shape.ttl_seconds,
    )


TUNE_SHAPE = ClusterShape(workers=2, cpus_per_worker=2, memory_per_worker="4Gi")
TRAIN_SHAPE = ClusterShape(workers=2, cpus_per_worker=1, memory_per_worker="4Gi")
TUNE_CLUSTER = ray_job_config(TUNE_SHAPE)
TRAIN_CLUSTER = ray_job_config(TRAIN_SHAPE)
