"""What a user sets: the tuning search, the training run, and the hyper-parameters between them.

Plain dataclasses with no Flyte or Ray imports. Each validates itself on construction, so a
bad value fails where it is typed, before any cluster starts; `validate()` can be called again
on an instance that was built without `__init__` (deserialized).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SettingsError(ValueError):
    """A setting is out of range; the message names the field and what would be valid."""


def _require(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise SettingsError(f"{name}={value!r} is not valid: {valid}.")


@dataclass
class HyperParams:
    """The hyper-parameters Tune searches and Train uses, all of them."""

    lr: float = 0.05
    momentum: float = 0.9
    batch_size: int = 64

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _require(self.lr > 0, "lr", self.lr, "the learning rate must be > 0")
        _require(0 <= self.momentum < 1, "momentum", self.momentum, "momentum must be in [0, 1)")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "batch size must be >= 1")


@dataclass
class TuneSettings:
    """The search: space bounds, how many trials, how long each may run.

    Defaults are a smoke size for 2 cores; pass e.g. `--tune '{"num_samples": 50, "max_epochs": 10}'`
    for a real search.
    """

    num_samples: int = 4
    max_epochs: int = 2
    grace_period: int = 1
    max_concurrent_trials: int = 0  # 0: as many as the cluster has CPUs
    lr_min: float = 1e-2
    lr_max: float = 2e-1
    momentum_min: float = 0.5
    momentum_max: float = 0.95
    batch_sizes: list[int] = field(default_factory=lambda: [32, 64, 128])
    seed: int = 0

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
        _require(self.lr_min > 0, "tune.lr_min", self.lr_min, "the learning rate must be > 0")
        _require(self.lr_min <= self.lr_max, "tune.lr_min", self.lr_min, f"must not exceed tune.lr_max ({self.lr_max})")
        _require(0 <= self.momentum_min < 1, "tune.momentum_min", self.momentum_min, "momentum must be in [0, 1)")
        _require(0 <= self.momentum_max < 1, "tune.momentum_max", self.momentum_max, "momentum must be in [0, 1)")
        _require(
            self.momentum_min <= self.momentum_max,
            "tune.momentum_min",
            self.momentum_min,
            f"must not exceed tune.momentum_max ({self.momentum_max})",
        )
        _require(len(self.batch_sizes) > 0, "tune.batch_sizes", self.batch_sizes, "give at least one batch size")
        _require(all(b >= 1 for b in self.batch_sizes), "tune.batch_sizes", self.batch_sizes, "every batch size must be >= 1")


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
