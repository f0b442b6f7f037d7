"""The commit part of tune_train_wf alone: check_target and commit_experiment, the real tasks, fed with
stand-in run outputs (no Ray), so tests can run several real `pyflyte run`s at once on 2 cores.

    pyflyte run tests/faults/commit_only_wf.py commit_only_wf --repo_url URL --exp_name NAME --seed N
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import NamedTuple

from flytekit import task, workflow
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from dvc_bridge.bridge import ExperimentRef
from tasks.flyte.contracts import Dataset, TrainResult, TuneResult
from tasks.flyte.tasks import check_target, commit_experiment
from tasks.problem import complete, load_problem
from tasks.training.settings import TrainSettings, TuneSettings


def stand_in_model(seed: int) -> bytes:
    """The bytes the stand-in run writes as its model: different per seed, known to the test."""
    return hashlib.sha256(f"model-{seed}".encode()).digest() * 4096


def stand_in_accuracy(seed: int) -> float:
    return 0.9 + seed / 100


class StandInRun(NamedTuple):
    data: Dataset
    tuned: TuneResult
    trained: TrainResult


@task
def stand_in_run(seed: int) -> StandInRun:
    from dvc_bridge.live import EpochLogger

    out = Path(tempfile.mkdtemp(prefix="stand-in-"))
    (out / "data.npz").write_bytes(b"not read by the bridge")
    (out / "model.pth").write_bytes(stand_in_model(seed))
    (out / "trials.csv").write_text(f"trial_id,val/accuracy\nt{seed},{stand_in_accuracy(seed)}\n")
    (out / "trials.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    live = EpochLogger(out / "dvclive", resume=False)
    live.log_epoch({"train/loss": 0.5, "val/accuracy": stand_in_accuracy(seed)})
    live.log_summary({"test/accuracy": stand_in_accuracy(seed)})
    live.close()
    score = {"test/accuracy": stand_in_accuracy(seed)}
    return StandInRun(
        data=Dataset(
            file=FlyteFile(str(out / "data.npz")),
            sha256=f"{seed:064x}",
            n_train=1,
            n_val=1,
            n_test=1,
            source=f"stand-in-{seed}",
            problem="digits",
        ),
        tuned=TuneResult(
            best=complete(load_problem("digits"), {}),
            metric="val/accuracy",
            best_score=stand_in_accuracy(seed),
            space={},
            trials_csv=FlyteFile(str(out / "trials.csv")),
            trials_png=FlyteFile(str(out / "trials.png")),
        ),
        trained=TrainResult(
            model=FlyteFile(str(out / "model.pth")),
            dvclive=FlyteDirectory(str(out / "dvclive")),
            val={"val/accuracy": stand_in_accuracy(seed)},
            test=score,
            global_batch_size=64,
        ),
    )


@workflow
def commit_only_wf(repo_url: str, exp_name: str, seed: int) -> ExperimentRef:
    run = check_target(repo_url=repo_url, exp_name=exp_name, base_rev="")
    outputs = stand_in_run(seed=seed)
    return commit_experiment(
        repo=run,
        gate=0.0,
        data=outputs.data,
        tuned=outputs.tuned,
        trained=outputs.trained,
        tune=TuneSettings(),
        train=TrainSettings(),
        seed=seed,
    )
