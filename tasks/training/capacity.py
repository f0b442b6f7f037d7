"""What a cluster can hold, and what a run's settings need of it: checked before any cluster starts.

A `Capacity` is one cluster: the requested worker group remotely (`Capacity.of(shape)`), this machine
locally (`Capacity.local()`). A request a cluster can never satisfy is refused here, naming the fix:
Ray would wait for it forever. Timeouts follow from the same sizes. No Flyte or Ray.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from tasks.problem import Problem, search_space, smallest_batch
from tasks.training.search import SearchError, check_search
from tasks.training.settings import (
    ClusterShape,
    SettingsError,
    TrainCluster,
    TrainSettings,
    TuneCluster,
    TuneSettings,
    quantity,
)


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
    def of(cls, shape: ClusterShape) -> Capacity:
        return cls(
            nodes=shape.most_workers,
            cpus=shape.cpus_per_worker,
            gpus=shape.gpus_per_worker,
            where=shape.label,
            driver_memory=quantity(shape.head_memory, f"{shape.label}.head_memory"),
        )

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus

    @classmethod
    def local(cls) -> Capacity:
        """This machine, as a local run's one Ray node (CPUs as cgroup and affinity allow)."""
        return cls(nodes=1, cpus=local_cpus(), gpus=local_gpus(), where="this machine", driver_memory=local_memory())


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
            f"ever start; set it to 0"
            + ("" if tune_cap.where == "this machine" else f", or give {tune_cap.where}.gpus_per_worker")
            + "."
        )
    if trial_slots(tune, tune_cap) == 0:
        raise SettingsError(
            f"tune.cpus_per_trial={tune.cpus_per_trial}, tune.gpus_per_trial={tune.gpus_per_trial} is not valid: a trial "
            f"must fit on one node, and {tune_cap.where} offers {tune_cap.cpus} CPU(s) and {tune_cap.gpus} GPU(s) per node; "
            "ask for less per trial"
            + ("" if tune_cap.where == "this machine" else f" or larger {tune_cap.where} workers")
            + "."
        )
    if train.use_gpu and train_cap.total_gpus < train.num_workers:
        fix = (
            "set train.use_gpu to false, or run where there are GPUs"
            if train_cap.where == "this machine"
            else f"give {train_cap.where}.gpus_per_worker (one GPU per DDP worker) or lower train.num_workers"
        )
        raise SettingsError(
            f"train.use_gpu=True is not valid: {train_cap.where} has {train_cap.total_gpus} GPU(s) for "
            f"{train.num_workers} worker(s) (one GPU each), so training would wait for them forever; {fix}."
        )
    slots = train_slots(train, train_cap)
    if train.num_workers > slots:
        fix = (
            "lower it"
            if train_cap.where == "this machine"
            else f"lower it, or give {train_cap.where} more workers or cpus_per_worker"
        )
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
    locally. Only for data loaded whole: a directory of Parquet shards is streamed, and never checked here.
    """
    if not nbytes or nbytes + DRIVER_BASE_BYTES <= cap.driver_memory:
        return
    gib = 2**30
    need = math.ceil((2 * nbytes + gib) / gib)  # the driver's copy, the object store's, Ray and Python
    fix = (
        "use less data, or run on a Flyte cluster with enough head_memory"
        if cap.where == "this machine"
        else f'raise {cap.where}.head_memory to at least "{need}Gi" (about twice the data plus 1Gi), or use less data'
    )
    raise SettingsError(
        f"the data set takes {nbytes / gib:.2f} GiB in memory and {cap.where} gives the task's driver "
        f"{cap.driver_memory / gib:.2f} GiB: the driver loads the splits whole (then puts them into Ray's object "
        f"store, which every trial and worker reads), so it could never run; {fix}. Data larger than one node's "
        "memory streams instead: write it as a directory of Parquet shards (`python -m tasks.shards`, README "
        '"Data larger than a node") and give that directory as the dataset.'
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


def tune_timeout_text(settings: TuneSettings, shape: TuneCluster) -> str:
    """How tune_timeout_s is made, in words: "600 + 4 waves of 8 trials x 10 epochs x 900"."""
    at_once = tune_concurrency(settings, Capacity.of(shape))
    waves = math.ceil(settings.num_samples / at_once)
    return (
        f"{shape.startup_timeout_s} + {waves} wave{'s' * (waves != 1)} of {at_once} trial{'s' * (at_once != 1)} x "
        f"{settings.max_epochs} epochs x {settings.epoch_timeout_s}"
    )


def train_timeout_text(settings: TrainSettings, shape: TrainCluster) -> str:
    """How train_timeout_s is made, in words: "600 + (1 + 2 restarts) x 10 epochs x 900"."""
    return (
        f"{shape.startup_timeout_s} + (1 + {settings.max_failures} restarts) x {settings.epochs} epochs x "
        f"{settings.epoch_timeout_s}"
    )


def check_settings(
    problem: Problem, tune: TuneSettings, train: TrainSettings, tune_cap: Capacity, train_cap: Capacity
) -> None:
    """Validate what a user set against the problem and the clusters it will get, before any cluster starts.

    A request a cluster can never satisfy is refused here: Ray would wait for it forever.
    """
    tune.validate()
    train.validate()
    space = search_space(problem, tune.space)  # unknown names, wrong bounds, empty choices
    try:
        check_search(space, tune.search, tune.num_samples)  # a grid over continuous domains, or too large
    except SearchError as e:
        raise SettingsError(str(e)) from None
    check_cluster_fits(tune, train, tune_cap, train_cap)
    if smallest_batch(space) < train.num_workers:
        raise SettingsError(
            f"train.num_workers={train.num_workers} is not valid: the search can choose batch_size "
            f"{smallest_batch(space)}, and each worker takes a share of the batch; use at most "
            f"{smallest_batch(space)} workers or search larger batch sizes."
        )
