"""What passes between the workflow's tasks: typed dataclasses that flytekit serializes.

Hyper-parameters and scores are dicts because their names are the problem's; which names a
problem has, and their types, is declared once in its module (tasks/problem/).

Each contract reads in a line: `repr` is what the terminal shows (pyflyte prints the workflow's outputs
with it), `str` is what flytekit puts on a task's Deck Input and Output pages (a small HTML block);
neither holds per-epoch histories or whole dicts of everything.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Optional

from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from tasks.data.shards import Manifest
from tasks.record.history import SearchHistory  # noqa: F401  (warm start: search_history -> tune_hyperparameters)
from tasks.reporting.lines import format_params


@dataclass
class Dataset:
    """One data version of one problem: the three splits as prepared arrays (npz) and where they came from.

    Or, for a directory of Parquet shards (streamed, never held whole), its manifest in `shards`: the file
    URLs, row counts from the footers, the directory's DVC hash and commit, the split rule; then `file` is
    that manifest as JSON, `sha256` the manifest's hash, the split sizes 0 (known only once read).
    """

    file: FlyteFile  # npz with x_train, y_train, x_val, y_val, x_test, y_test (streamed: manifest.json)
    sha256: str  # content hash of the arrays: the data version
    n_train: int
    n_val: int
    n_test: int
    source: str  # the source string as resolved ("embedded:...", a URI, dvc://...)
    problem: str  # the problem's name or module:attribute
    dvc_rev: str = ""  # the commit the DVC source was read at, if any
    nbytes: int = 0  # the splits' size in memory (0: not recorded); each Ray task's driver holds them whole once
    shards: Optional[Manifest] = None  # streamed: the Parquet shards' manifest (tasks/data/shards.py)

    def version(self) -> dict[str, Any]:
        """What params.yaml records as the data version; streamed, the directory's DVC hash and the split rule too."""
        out: dict[str, Any] = {"source": self.source, "sha256": self.sha256, "dvc_rev": self.dvc_rev}
        if self.shards is not None:
            m = self.shards
            out.update(dvc_md5=m.dvc_md5, files=len(m.files), rows=m.total_rows, split=m.split_rule)
        return out

    def __repr__(self) -> str:
        rev = f" at {self.dvc_rev[:8]}" if self.dvc_rev else ""
        return (
            f"Dataset({self.problem}: {self.n_train} train / {self.n_val} validation / {self.n_test} test rows, "
            f"version {self.sha256[:12]}, from {self.source}{rev})"
        )

    def __str__(self) -> str:
        return _block("data", repr(self)[len("Dataset(") : -1])


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

    def __repr__(self) -> str:
        return f"RunTarget(experiment {self.exp_name} in {self.repo}, on {self.baseline_rev[:8]})"

    def __str__(self) -> str:
        return _block("target", repr(self)[len("RunTarget(") : -1])


@dataclass
class TuneResult:
    best: dict[str, Any]  # every hyper-parameter of the problem, as the best trial had them
    metric: str  # the selecting score, e.g. "val/accuracy" (always a validation score)
    best_score: float  # the best trial's best value of it
    space: dict[str, Any]  # the space searched, as params.yaml records it
    trials_csv: FlyteFile  # one row per trial: searched params, status, epochs, score, error
    trials_png: FlyteFile  # the validation score over epochs, one line per trial
    # record_trials: one DVCLive directory per trial (params.yaml, per-epoch plots, metrics.json), named by trial id
    trials_live: Optional[FlyteDirectory] = None

    def __repr__(self) -> str:
        return f"TuneResult(best {self.metric} {self.best_score:.4f} with {format_params(self.best)})"

    def __str__(self) -> str:
        searched = [k for k, v in self.space.items() if isinstance(v, dict)]
        return _block(
            "search",
            f"best {self.metric} {self.best_score:.4f} with {format_params(self.best)}; "
            f"searched: {', '.join(searched) or 'nothing (all fixed)'}; every trial: {_path(self.trials_csv)}",
        )


@dataclass
class TrainResult:
    model: FlyteFile  # model.pth: the model's state_dict
    dvclive: FlyteDirectory  # DVCLive directory: metrics.json and plots/metrics/{train,val}/*.tsv
    val: dict[str, float]  # validation scores after the last epoch: val/loss, val/<metric>
    test: dict[str, float]  # the final model scored once on test: test/loss, test/<metric>
    global_batch_size: int  # the batch all workers take together per step (the tuned one, up to rounding)
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    live_uri: str = ""  # where rank 0 mirrored DVCLive while training ran
    # The simple reference model scored on the same splits: baseline/val/<metric>, baseline/test/<metric>
    baseline: dict[str, float] = field(default_factory=dict)
    baseline_name: str = ""  # what it was, e.g. "ridge regression (alpha=0.01)"

    def __repr__(self) -> str:
        scores = "  ".join(f"{k} {v:.4f}" for k, v in {**self.val, **self.test}.items())
        return f"TrainResult({scores}; {len(self.history)} epochs, model {_path(self.model)})"

    def __str__(self) -> str:
        return _block(
            "training",
            repr(self)[len("TrainResult(") : -1] + (f"; live metrics: {self.live_uri}" if self.live_uri else ""),
        )


def _path(f: Any) -> str:
    """A FlyteFile's or FlyteDirectory's location, as given (no download)."""
    return str(getattr(f, "path", f))


def _block(label: str, text: str) -> str:
    return f"<p><b>{html.escape(label)}</b>: {html.escape(text)}</p>"
