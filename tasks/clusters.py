"""Every Ray cluster this project asks for, defined once.

Remote: each Ray task gets a transient KubeRay RayJob built from its `RayJobConfig`: a head
that coordinates and does not compute (`num-cpus: 0`), one worker group of the size the run
asks for (`TuneCluster`/`TrainCluster` in tasks/settings.py, applied by the workflow's dynamic
steps), a TTL, and a Flyte timeout derived from the settings, so no cluster outlives its job.
Here too: what a size can hold, checked before any cluster starts. Local `pyflyte run`: the plugin only calls `ray.init()`;
`RayTask.pre_execute` starts that local cluster first, without the dashboard and with the
environment the workers need, so a local run behaves like the remote one as far as one
machine allows. Nothing secret is ever put in `runtime_env` (it is readable by anyone who can
read the RayJob resource); secrets are read at run time.
"""

from __future__ import annotations

import math
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

from tasks.settings import ClusterShape, SettingsError, TrainCluster, TrainSettings, TuneCluster, TuneSettings, quantity

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Environment variables handed to local Ray workers when set in the driver (never secrets).
FORWARDED_ENV = ("DVC_SITE_CACHE_DIR", "DVC_NO_ANALYTICS", "AWS_ENDPOINT_URL", "FLYTE_AWS_ENDPOINT")


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


def local_memory() -> float:
    """Bytes of memory this process's machine offers: its RAM, capped by a cgroup memory limit."""
    memory = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    try:  # cgroup v2: "max" or bytes
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            memory = min(memory, float(limit))
    except (OSError, ValueError):
        pass
    return memory


def local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@dataclass(frozen=True)
class Capacity:
    """What one cluster can offer: its nodes at most, each with `cpus` and `gpus` (the head offers none), and
    the memory of the node the task's driver runs on (the head; locally this machine)."""

    nodes: int
    cpus: int
    gpus: int
    where: str  # for messages: "this machine" or "tune_cluster"/"train_cluster"
    driver_memory: float = math.inf  # bytes; inf: not known, nothing is refused for it

    @classmethod
    def of(cls, shape: ClusterShape) -> "Capacity":
        return cls(nodes=shape.most_workers, cpus=shape.cpus_per_worker, gpus=shape.gpus_per_worker, where=shape.label,
                   driver_memory=quantity(shape.head_memory, f"{shape.label}.head_memory"))

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus


def capacity(shape: ClusterShape) -> Capacity:
    """The cluster a Ray task will get: this machine when run locally, the requested worker group remotely."""
    if is_local_execution():
        return Capacity(nodes=1, cpus=local_cpus(), gpus=local_gpus(), where="this machine", driver_memory=local_memory())
    return Capacity.of(shape)


def trial_slots(settings: TuneSettings, cap: Capacity) -> int:
    """How many trials the cluster can run at once at its largest (0: a trial fits on no node)."""
    per_node = math.floor(cap.cpus / settings.cpus_per_trial + 1e-9)
    if settings.gpus_per_trial:
        per_node = min(per_node, math.floor(cap.gpus / settings.gpus_per_trial + 1e-9))
    return cap.nodes * per_node


def tune_concurrency(settings: TuneSettings, cap: Capacity) -> int:
    """Trials run at once: the autoscaled maximum (so pending trials are the demand the autoscaler acts on)."""
    slots = trial_slots(settings, cap)
    return max(1, min(settings.max_concurrent_trials or slots, slots, settings.num_samples))


def train_slots(settings: TrainSettings, cap: Capacity) -> int:
    """How many one-CPU (and, with use_gpu, one-GPU) DDP workers the cluster can place at its largest."""
    return cap.nodes * (min(cap.cpus, cap.gpus) if settings.use_gpu else cap.cpus)


def check_cluster_fits(tune: TuneSettings, train: TrainSettings, tune_cap: Capacity, train_cap: Capacity) -> None:
    """Refuse, before any cluster starts, what a cluster could never offer: Ray would wait for it forever."""
    if tune.gpus_per_trial and tune_cap.gpus == 0:
        raise SettingsError(
            f"tune.gpus_per_trial={tune.gpus_per_trial} is not valid: {tune_cap.where} has no GPU, so no trial could "
            f"ever start; set it to 0" + ("" if tune_cap.where == "this machine" else f", or give {tune_cap.where}.gpus_per_worker") + "."
        )
    if trial_slots(tune, tune_cap) == 0:
        raise SettingsError(
            f"tune.cpus_per_trial={tune.cpus_per_trial}, tune.gpus_per_trial={tune.gpus_per_trial} is not valid: a trial "
            f"must fit on one node, and {tune_cap.where} offers {tune_cap.cpus} CPU(s) and {tune_cap.gpus} GPU(s) per node; "
            "ask for less per trial" + ("" if tune_cap.where == "this machine" else f" or larger {tune_cap.where} workers") + "."
        )
    if train.use_gpu and train_cap.total_gpus < train.num_workers:
        fix = ("set train.use_gpu to false, or run where there are GPUs" if train_cap.where == "this machine"
               else f"give {train_cap.where}.gpus_per_worker (one GPU per DDP worker) or lower train.num_workers")
        raise SettingsError(
            f"train.use_gpu=True is not valid: {train_cap.where} has {train_cap.total_gpus} GPU(s) for "
            f"{train.num_workers} worker(s) (one GPU each), so training would wait for them forever; {fix}."
        )
    slots = train_slots(train, train_cap)
    if train.num_workers > slots:
        fix = ("lower it" if train_cap.where == "this machine"
               else f"lower it, or give {train_cap.where} more workers or cpus_per_worker")
        raise SettingsError(
            f"train.num_workers={train.num_workers} is not valid: {train_cap.where} holds at most {slots} DDP workers "
            f"(one CPU{' and one GPU' if train.use_gpu else ''} each); {fix}."
        )


# A Ray task's driver (Python with flytekit, Ray, torch and pandas imported) takes more than this before any data.
DRIVER_BASE_BYTES = 512 * 2**20


def check_data_fits(nbytes: int, cap: Capacity) -> None:
    """Refuse, before the RayJob exists, splits the task's driver could never load.

    The driver holds the splits whole while it puts them into the object store (`_in_object_store`;
    trials and workers then read that copy in place), on the head remotely and on this machine
    locally; there is no streaming path for data larger than that node.
    """
    if not nbytes or nbytes + DRIVER_BASE_BYTES <= cap.driver_memory:
        return
    gib = 2**30
    need = math.ceil((2 * nbytes + gib) / gib)  # the driver's copy, the object store's, Ray and Python
    fix = ("use less data, or run on a Flyte cluster with enough head_memory" if cap.where == "this machine"
           else f"raise {cap.where}.head_memory to at least \"{need}Gi\" (about twice the data plus 1Gi), or use less data")
    raise SettingsError(
        f"the data set takes {nbytes / gib:.2f} GiB in memory and {cap.where} gives the task's driver "
        f"{cap.driver_memory / gib:.2f} GiB: the driver loads the splits whole (then puts them into Ray's object "
        f"store, which every trial and worker reads), so it could never run; {fix}. Data larger than one node's "
        "memory would need streaming shards (Ray Data), which this project does not do."
    )


def task_timeout_s(shape: ClusterShape, waves: int, epochs: int, epoch_timeout_s: int) -> int:
    """A Ray task's Flyte timeout: the wait for its workers, then every epoch of every wave at its longest."""
    return shape.startup_timeout_s + waves * epochs * epoch_timeout_s


def tune_timeout_s(settings: TuneSettings, shape: TuneCluster) -> int:
    waves = math.ceil(settings.num_samples / tune_concurrency(settings, Capacity.of(shape)))
    return task_timeout_s(shape, waves, settings.max_epochs, settings.epoch_timeout_s)


def train_timeout_s(settings: TrainSettings, shape: TrainCluster) -> int:
    # Each of up to max_failures restarts resumes from the last checkpoint and waits for its workers again; a whole
    # pass for each is a safe bound.
    return task_timeout_s(shape, 1 + settings.max_failures, settings.epochs, settings.epoch_timeout_s)


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
LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}


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


# The packaged defaults; a run's own sizes (`tune_cluster`, `train_cluster`) replace them through
# `with_overrides(task_config=...)` (workflows/tune_train.py). Their values live in tasks/settings.py.
TUNE_CLUSTER = ray_job_config(TuneCluster())
TRAIN_CLUSTER = ray_job_config(TrainCluster())
