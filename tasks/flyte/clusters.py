"""Every Ray cluster this project asks for, defined once.

Remote: each Ray task gets a transient KubeRay RayJob built from its `RayJobConfig`: a head
that coordinates and does not compute (`num-cpus: 0`), one worker group of the size the run
asks for (`TuneCluster`/`TrainCluster` in tasks/training/settings.py, applied by the workflow's dynamic
steps), a TTL, and a Flyte timeout derived from the settings, so no cluster outlives its job.
Here too: what a size can hold, checked before any cluster starts. Local `pyflyte run`: the plugin only calls `ray.init()`;
`RayTask.pre_execute` starts that local cluster first, without the dashboard and with the
environment the workers need, so a local run behaves like the remote one as far as one
machine allows. Nothing secret is ever put in `runtime_env` (it is readable by anyone who can
read the RayJob resource); secrets are read at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

from flytekit import Resources
from flytekit.core.context_manager import ExecutionParameters, FlyteContextManager
from flytekit.exceptions.user import FlyteUserRuntimeException
from flytekit.extend import TaskPlugins
from flytekitplugins.ray import HeadNodeConfig, RayJobConfig, WorkerNodeConfig
from flytekitplugins.ray.task import RayFunctionTask

from tasks.ray_glue.local import init_local_ray
from tasks.training.capacity import Capacity
from tasks.training.settings import ClusterShape, TrainCluster, TuneCluster


@dataclass
class ProjectRayJobConfig(RayJobConfig):
    """RayJobConfig that runs as `RayTask`; the wire format is the plugin's own."""


def is_local_execution() -> bool:
    return FlyteContextManager.current_context().execution_state.is_local_execution()


def capacity(shape: ClusterShape) -> Capacity:
    """The cluster a Ray task will get: this machine when run locally, the requested worker group remotely."""
    if is_local_execution():
        return Capacity.local()
    return Capacity.of(shape)


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


# The packaged defaults; a run's own sizes (`tune_cluster`, `train_cluster`) replace them through
# `with_overrides(task_config=...)` (workflows/tune_train.py). Their values live in tasks/training/settings.py.
TUNE_CLUSTER = ray_job_config(TuneCluster())
TRAIN_CLUSTER = ray_job_config(TrainCluster())
