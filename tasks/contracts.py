"""What passes between the workflow's tasks: typed dataclasses that flytekit serializes."""

from __future__ import annotations

from dataclasses import dataclass, field

from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from tasks.settings import HyperParams


@dataclass
class Dataset:
    """One data version: the split, normalized arrays (npz) and where they came from."""

    file: FlyteFile  # npz with x_train, y_train, x_test, y_test
    sha256: str  # content hash of the arrays: the data version
    n_train: int
    n_test: int
    source: str  # the source string as resolved ("embedded:...", a URI, dvc://...)
    dvc_rev: str = ""  # the commit the DVC source was read at, if any


@dataclass
class RunTarget:
    """Where the run will be recorded, fixed before any cluster starts. Never holds credentials.

    Live metrics (DVC Studio) and the bridge both use this identity, so the live view and the
    saved experiment are the same experiment.
    """

    repo: str  # the DVC repo the bridge commits to: a git URL or a local path
    exp_name: str  # the experiment's name
    baseline_rev: str  # the commit the experiment is based on
    run_id: str = ""  # the Flyte execution id; local runs get a unique one (their execution id is "local")


@dataclass
class TuneResult:
    best: HyperParams
    best_accuracy: float
    trials_csv: FlyteFile  # one row per trial: params, status, epochs, accuracy, error
    trials_png: FlyteFile  # held-out accuracy over epochs, one line per trial


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    loss: float
    accuracy: float
    lr: float
    epoch_time_s: float
    samples_per_s: float


@dataclass
class TrainResult:
    model: FlyteFile  # model.pth: the ConvNet's state_dict
    dvclive: FlyteDirectory  # DVCLive directory: metrics.json and plots/metrics/*.tsv
    accuracy: float  # held-out accuracy after the last epoch
    loss: float
    history: list[EpochMetrics] = field(default_factory=list)
    live_uri: str = ""  # where rank 0 mirrored DVCLive while training ran
