"""What a user sets: the tuning search and the training run.

Plain dataclasses with no Flyte or Ray imports. Each validates itself on construction, so a
bad value fails where it is typed, before any cluster starts; `validate()` can be called again
on an instance that was built without `__init__` (deserialized).
"""

from __future__ import annotations

import difflib
import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Optional


class SettingsError(ValueError):
    """A setting is out of range; the message names the field and what would be valid."""


def _require(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise SettingsError(f"{name}={value!r} is not valid: {valid}.")


def did_you_mean(word: str, valid: typing.Iterable[str]) -> str:
    """' Did you mean `x`?' for the closest of `valid`, or "" when none is close."""
    close = difflib.get_close_matches(word, list(valid), n=1, cutoff=0.6)
    return f" Did you mean `{close[0]}`?" if close else ""


_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "a string", dict: "a JSON object"}


def _fits(value: Any, kind: Any) -> bool:
    """Whether a JSON value fits a field's annotation (int, float, bool, str, dict[...], Optional[...])."""
    if typing.get_origin(kind) is typing.Union:
        return any(_fits(value, k) for k in typing.get_args(kind))
    kind = typing.get_origin(kind) or kind
    if kind is type(None):
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    if kind is int:
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, kind)


def _kind_text(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Union:
        return " or ".join("null" if k is type(None) else _kind_text(k) for k in typing.get_args(kind))
    return _KINDS.get(typing.get_origin(kind) or kind, str(kind))


class StrictJson:
    """`from_json` for a settings dataclass: a key it does not have is refused, not dropped.

    `pyflyte run --train '{...}'` builds a dataclass input through its class's `from_json` when the class
    has one (flytekit's JSON option type; without it flytekit's own decoder silently drops unknown keys),
    so a mistyped setting fails here, naming the key, the closest valid one and the valid set.
    """

    @classmethod
    def from_dict(cls, values: Any):
        label = cls.input_name()
        if not isinstance(values, dict):
            raise SettingsError(f"{label}={values!r} is not valid: give a JSON object such as {cls.example()}.")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in fields(cls) if f.init]
        for key, value in values.items():
            if key not in names:
                raise SettingsError(
                    f"{label} has no setting `{key}`.{did_you_mean(key, names)} "
                    f"Valid {label} settings: {', '.join(names)}."
                )
            _require(_fits(value, hints[key]), f"{label}.{key}", value, f"give {_kind_text(hints[key])}")
        typed = {k: float(v) if hints[k] is float else int(v) if hints[k] is int else v for k, v in values.items()}
        return cls(**typed)

    @classmethod
    def from_json(cls, text: str, **_: Any):
        return cls.from_dict(json.loads(text))

    @classmethod
    def input_name(cls) -> str:
        """The workflow input these settings arrive as, which messages name."""
        return INPUT_NAMES.get(cls.__name__, cls.__name__)

    @classmethod
    def example(cls) -> str:
        first = next(f for f in fields(cls) if f.init)
        return json.dumps({first.name: first.default})


INPUT_NAMES = {
    "TuneSettings": "tune",
    "TrainSettings": "train",
    "TuneCluster": "tune_cluster",
    "TrainCluster": "train_cluster",
}


@dataclass
class TuneSettings(StrictJson):
    """The search: how many trials, how long each may run, and optionally its space.

    Defaults are a smoke size for 2 cores; pass e.g. `--tune '{"num_samples": 50, "max_epochs": 10}'`
    for a real search, and `"space": {"lr": {"loguniform": [0.001, 0.1]}}` to search your own
    space (checked against the problem's hyper-parameters before any cluster starts).
    `"search"`: "random" (default), "grid" (every combination of choices and integer ranges, once) or
    "optuna" (Bayesian: Optuna's TPE); `"warm_start": true` (optuna) seeds it with the trials of earlier
    experiments in the target repo for the same problem and data version.
    """

    num_samples: int = 4
    max_epochs: int = 2
    grace_period: int = 1
    max_concurrent_trials: int = 0  # 0: as many as the cluster has CPUs
    # The search space, {name: fixed value | {"loguniform"|"uniform"|"randint": [low, high]} | {"choice": [...]}};
    # empty: the problem's own. Hyper-parameters a given space leaves out keep the problem's defaults.
    space: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    cpus_per_trial: float = 1.0  # Ray resources one trial holds
    gpus_per_trial: float = 0.0  # a GPU or a fraction of one (0.5: two trials share a GPU)
    record_trials: bool = False  # also save every trial as its own DVC experiment beside the run's
    # The longest one epoch of one trial may take; with the cluster's startup_timeout_s it sets the task's
    # Flyte timeout (startup + waves of trials x max_epochs x this), so no search holds a cluster forever.
    epoch_timeout_s: int = 900
    # How trials are chosen (tasks/training/search.py): "random", "grid" (num_samples caps the grid's size) or "optuna".
    search: str = "random"
    warm_start: bool = False  # optuna: seed the searcher with the earlier experiments' trials in the target repo

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        from tasks.training.search import SEARCHERS

        _require(
            self.search in SEARCHERS,
            "tune.search",
            self.search,
            f"use one of {', '.join(repr(s) for s in SEARCHERS)} (random is the default)",
        )
        _require(
            not self.warm_start or self.search == "optuna",
            "tune.warm_start",
            self.warm_start,
            f"warm starts seed a searcher that learns from scores; tune.search={self.search!r} does not: "
            'add "search": "optuna", or drop "warm_start"',
        )
        _require(self.num_samples >= 1, "tune.num_samples", self.num_samples, "run at least 1 trial")
        _require(self.max_epochs >= 1, "tune.max_epochs", self.max_epochs, "trials need at least 1 epoch")
        _require(
            1 <= self.grace_period <= self.max_epochs,
            "tune.grace_period",
            self.grace_period,
            f"must be between 1 and tune.max_epochs ({self.max_epochs})",
        )
        _require(
            self.max_concurrent_trials >= 0,
            "tune.max_concurrent_trials",
            self.max_concurrent_trials,
            "use 0 for 'as many as fit' or a positive number",
        )
        _require(isinstance(self.space, dict), "tune.space", self.space, "give an object of hyper-parameter: domain")
        _require(self.epoch_timeout_s >= 1, "tune.epoch_timeout_s", self.epoch_timeout_s, "use at least 1 second")
        _require(
            self.cpus_per_trial > 0,
            "tune.cpus_per_trial",
            self.cpus_per_trial,
            "a trial needs a positive number of CPUs",
        )
        _require(
            self.gpus_per_trial == 0 or 0 < self.gpus_per_trial <= 1 or float(self.gpus_per_trial).is_integer(),
            "tune.gpus_per_trial",
            self.gpus_per_trial,
            "use 0, a fraction of one GPU (0 < x <= 1) or a whole number of GPUs",
        )


@dataclass
class TrainSettings(StrictJson):
    """The distributed training run with the tuned hyper-parameters."""

    epochs: int = 5
    num_workers: int = 2
    use_gpu: bool = False
    seed: int = 0
    max_failures: int = 2  # worker-group restarts from the last checkpoint before giving up
    epoch_timeout_s: int = (
        900  # the longest one epoch may take (sets the task's Flyte timeout, with the cluster's start-up)
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _require(self.epochs >= 1, "train.epochs", self.epochs, "train for at least 1 epoch")
        _require(self.num_workers >= 1, "train.num_workers", self.num_workers, "use at least 1 worker")
        _require(self.max_failures >= 0, "train.max_failures", self.max_failures, "use 0 or more restarts")
        _require(self.epoch_timeout_s >= 1, "train.epoch_timeout_s", self.epoch_timeout_s, "use at least 1 second")


def quantity(value: str, name: str) -> float:
    """A Kubernetes quantity ("4Gi", "500m", "2") as a number, parsed as Kubernetes does (the `kubernetes`
    package's parser, imported when first needed); a SettingsError names the field otherwise."""
    from kubernetes.utils.quantity import parse_quantity

    try:
        number = float(parse_quantity(str(value).strip()))
    except (ValueError, TypeError, ArithmeticError):
        number = None
    _require(number is not None, name, value, 'use a Kubernetes quantity such as "4Gi", "512Mi" or "2"')
    _require(number > 0, name, value, "must be more than 0")
    return number


@dataclass
class ClusterShape(StrictJson):
    """The size of one transient Ray cluster: a head that coordinates (it offers no CPUs to tasks) and one
    worker group that computes. Pods are sized by requests = limits (KubeRay derives Ray's CPUs, memory and
    GPUs from the limits). `min_workers` < `max_workers` lets Ray's autoscaler grow the group from `workers`.
    """

    workers: int = 2
    cpus_per_worker: int = 1
    memory_per_worker: str = "4Gi"
    gpus_per_worker: int = 0
    min_workers: Optional[int] = None  # set both to autoscale between them
    max_workers: Optional[int] = None
    head_cpus: str = "1"
    head_memory: str = "2Gi"
    ttl_seconds: int = 600  # the RayJob is deleted this long after its job finished
    # How long the job may wait for the workers it needs (pods scheduled, nodes up) before it fails naming them.
    startup_timeout_s: int = 600
    # Spot (interruptible) nodes for this task's pods; Flyte runs its last attempts on regular nodes.
    interruptible: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _require(
            self.cpus_per_worker >= 1,
            f"{self.label}.cpus_per_worker",
            self.cpus_per_worker,
            "a worker needs at least 1 CPU",
        )
        _require(
            self.gpus_per_worker >= 0, f"{self.label}.gpus_per_worker", self.gpus_per_worker, "use 0 or more whole GPUs"
        )
        quantity(self.memory_per_worker, f"{self.label}.memory_per_worker")
        quantity(self.head_cpus, f"{self.label}.head_cpus")
        quantity(self.head_memory, f"{self.label}.head_memory")
        _require(self.ttl_seconds >= 0, f"{self.label}.ttl_seconds", self.ttl_seconds, "use 0 or more seconds")
        _require(
            self.startup_timeout_s >= 1,
            f"{self.label}.startup_timeout_s",
            self.startup_timeout_s,
            "use at least 1 second",
        )
        _require(
            (self.min_workers is None) == (self.max_workers is None),
            f"{self.label}.min_workers/max_workers",
            (self.min_workers, self.max_workers),
            "set both min_workers and max_workers to autoscale, or neither",
        )
        _require(
            self.workers >= 1 or (self.autoscaling and self.max_workers >= 1),
            f"{self.label}.workers",
            self.workers,
            "a cluster needs at least 1 worker (0 only to start an autoscaling group empty, with max_workers >= 1)",
        )
        if self.autoscaling:
            _require(
                0 <= self.min_workers <= self.workers <= self.max_workers,
                f"{self.label}.min_workers/workers/max_workers",
                (self.min_workers, self.workers, self.max_workers),
                "need 0 <= min_workers <= workers <= max_workers",
            )

    @property
    def label(self) -> str:
        """The workflow input that errors name."""
        return "cluster"

    @property
    def autoscaling(self) -> bool:
        return self.min_workers is not None

    @property
    def most_workers(self) -> int:
        return self.max_workers if self.autoscaling else self.workers


@dataclass
class TuneCluster(ClusterShape):
    """The search's cluster: by default 2 workers of 2 CPUs, one trial per CPU."""

    @property
    def label(self) -> str:
        return "tune_cluster"

    cpus_per_worker: int = 2


@dataclass
class TrainCluster(ClusterShape):
    """The training cluster: by default 2 workers of 1 CPU, one DDP worker each."""

    @property
    def label(self) -> str:
        return "train_cluster"
