"""What a user sets: the tuning search and the training run.

Plain dataclasses with no Flyte or Ray imports. Each validates itself on construction, so a
bad value fails where it is typed, before any cluster starts; `validate()` can be called again
on an instance that was built without `__init__` (deserialized).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SettingsError(ValueError):
    """A setting is out of range; the message names the field and what would be valid."""


def _require(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise SettingsError(f"{name}={value!r} is not valid: {valid}.")


@dataclass
class TuneSettings:
    """The search: how many trials, how long each may run, and optionally its space.

    Defaults are a smoke size for 2 cores; pass e.g. `--tune '{"num_samples": 50, "max_epochs": 10}'`
    for a real search, and `"space": {"lr": {"loguniform": [0.001, 0.1]}}` to search your own
    space (checked against the problem's hyper-parameters before any cluster starts).
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _require(self.num_samples >= 1, "tune.num_samples", self.num_samples, "run at least 1 trial")
        _require(self.max_epochs >= 1, "tune.max_epochs", self.max_epochs, "trials need at least 1 epoch")
        _require(
            1 <= self.grace_period <= self.max_epochs,
            "tune.grace_period",
            self.grace_period,
            f"must be between 1 and tune.max_epochs ({self.max_epochs})",
        )
        _require(self.max_concurrent_trials >= 0, "tune.max_concurrent_trials", self.max_concurrent_trials, "use 0 for 'as many as fit' or a positive number")
        _require(isinstance(self.space, dict), "tune.space", self.space, "give an object of hyper-parameter: domain")
        _require(self.cpus_per_trial > 0, "tune.cpus_per_trial", self.cpus_per_trial, "a trial needs a positive number of CPUs")
        _require(
            self.gpus_per_trial == 0 or 0 < self.gpus_per_trial <= 1 or float(self.gpus_per_trial).is_integer(),
            "tune.gpus_per_trial",
            self.gpus_per_trial,
            "use 0, a fraction of one GPU (0 < x <= 1) or a whole number of GPUs",
        )


@dataclass
class TrainSettings:
    """The distributed training run with the tuned hyper-parameters."""

    epochs: int = 5
    num_workers: int = 2
    use_gpu: bool = False
    seed: int = 0
    max_failures: int = 2  # worker-group restarts from the last checkpoint before giving up

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _require(self.epochs >= 1, "train.epochs", self.epochs, "train for at least 1 epoch")
        _require(self.num_workers >= 1, "train.num_workers", self.num_workers, "use at least 1 worker")
        _require(self.max_failures >= 0, "train.max_failures", self.max_failures, "use 0 or more restarts")
