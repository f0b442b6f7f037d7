"""The two example problems that train themselves, end to end into DVC experiments: a LightningModule through a
real `pyflyte run` (then `dvc exp run` of its experiment), a plain loop through the workflow in process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support import PROJECT_ROOT, assert_experiment_in_remote, dvc, git

from tasks.data.arrays import load_raw, make_splits, parse_source
from tasks.problem import load_problem
from tasks.training.loop import make_loader
from tasks.training.settings import TrainSettings, TuneSettings

BIN = Path(sys.executable).parent
EPOCHS = 2


def _tsv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _exp_row(repo: Path, name: str) -> dict:
    from dvc.api import exp_show

    row = next(r for r in exp_show(repo=str(repo)) if r.get("Experiment") == name)
    return {k.rsplit(":", 1)[-1]: v for k, v in row.items()}


def _test_accuracy(problem_ref: str, model_path: Path, hp: dict) -> float:
    """The recorded model, loaded into the problem's build_model, scored on the test split here."""
    problem = load_problem(problem_ref)
    raw, _ = load_raw(parse_source(""), problem)
    splits = make_splits(raw, problem, seed=0)
    model = problem.build_model(hp)
    model.load_state_dict(torch.load(model_path, weights_only=True))
    model.eval()
    right = 0
    with torch.no_grad():
        for x, y in make_loader(splits.x_test, splits.y_test, 512, shuffle=False):
            right += int((model(x).argmax(1) == y).sum())
    return right / len(splits.y_test)


@pytest.mark.slow
def test_lightning_example_through_pyflyte_run_and_dvc_exp_run(local_target):
    """`pyflyte run ... --problem examples.lightning_digits:PROBLEM`: the experiment, its OneCycleLR `lr` column
    epoch by epoch, the module's own val/ metrics, a model artifact that is the final model; then `dvc exp run`."""
    ref = "examples.lightning_digits:PROBLEM"
    proc = subprocess.run(
        [
            str(BIN / "pyflyte"),
            "run",
            str(PROJECT_ROOT / "workflows/tune_train.py"),
            "tune_train_wf",
            "--problem",
            ref,
            "--exp_name",
            "lit-1",
            "--tune",
            '{"num_samples": 2, "max_epochs": 1, "space": {"batch_size": 64}}',
            "--train",
            f'{{"epochs": {EPOCHS}, "num_workers": 2}}',
            "--gate",
            "0.5",
        ],
        cwd=local_target,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = _exp_row(local_target, "lit-1")
    assert row["problem"] == ref and 0.5 < row["test.accuracy"] <= 1 and 0.5 < row["test.f1_macro"] <= 1, row
    assert 0 < row["val.f1_macro"] <= 1, row

    dvc("exp", "apply", "lit-1", cwd=local_target)
    live = local_target / "results/dvclive/plots/metrics"
    lr = [float(r["lr"]) for r in _tsv(live / "lr.tsv")]
    assert len(lr) == EPOCHS and lr[0] > 10 * lr[-1] > 0, lr  # OneCycleLR: past its peak, annealing to ~0
    for name in ("val/accuracy", "val/f1_macro", "val/loss", "train/loss", "epoch_time_s"):
        assert len(_tsv(live / f"{name}.tsv")) == EPOCHS, name
    assert not (live / "test").exists(), "test is scored once, not per epoch"
    import yaml

    hp = yaml.safe_load((local_target / "results/tune/best_params.yaml").read_text())
    accuracy = _test_accuracy(ref, local_target / "results/train/model.pth", hp)
    assert accuracy == pytest.approx(row["test.accuracy"], abs=1e-6)

    # DVC reproduces it: the search is unchanged, training runs again with Lightning under Ray Train.
    git("config", "user.name", "tester", cwd=local_target)
    git("config", "user.email", "tester@example.invalid", cwd=local_target)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    rerun = subprocess.run(
        [str(BIN / "dvc"), "exp", "run", "-S", "train.epochs=3", "-n", "lit-rerun"],
        cwd=local_target,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Stage 'tune' didn't change, skipping" in rerun.stdout and "Running stage 'train'" in rerun.stdout
    again = _exp_row(local_target, "lit-rerun")
    assert again["train.epochs"] == 3 and 0.5 < again["test.accuracy"] <= 1 and again["problem"] == ref
    assert len(_tsv(live / "lr.tsv")) == 3


@pytest.mark.slow
def test_custom_loop_example_through_the_workflow_commits_an_experiment(tmp_path, remote_target, s3_endpoint):
    """The plain loop (warm-up + cosine, clipping): the experiment in the remote with its model, DVCLive files equal
    to the live mirror, the schedule in `lr`, macro-F1 (torchmetrics) beside accuracy, the Decks."""
    from flytekit import FlyteContextManager

    from workflows.tune_train import tune_train_wf

    ref = "examples.custom_loop:PROBLEM"
    started = time.time()
    out = tune_train_wf(
        repo_url=remote_target,
        exp_name="loop-1",
        problem=ref,
        gate=0.5,
        tune=TuneSettings(num_samples=2, max_epochs=1, space={"lr": {"loguniform": [0.002, 0.006]}, "batch_size": 64}),
        train=TrainSettings(epochs=EPOCHS, num_workers=2),
    )
    exp, trained = out.experiment, out.trained
    assert exp.name == "loop-1" and exp.data_pushed and exp.ref_pushed and exp.metric == "test/accuracy"
    assert set(trained.test) == {"test/loss", "test/accuracy", "test/f1_macro"}
    assert trained.test["test/accuracy"] > 0.5 and exp.promoted == (trained.test["test/accuracy"] >= 0.5)
    assert [m["epoch"] for m in trained.history] == list(range(1, EPOCHS + 1))
    assert trained.global_batch_size == 64
    lrs = [m["lr"] for m in trained.history]
    assert lrs[0] > lrs[-1] >= 0 and lrs[0] > 0, lrs  # the cosine schedule, epoch by epoch
    model = Path(trained.model.download()).read_bytes()
    row = assert_experiment_in_remote(remote_target, "loop-1", model, tmp_path)
    assert row["test.accuracy"] == pytest.approx(trained.test["test/accuracy"])

    clone = tmp_path / "verify-loop-1"
    root = clone / "results/dvclive/plots/metrics"
    assert [float(r["lr"]) for r in _tsv(root / "lr.tsv")] == pytest.approx(lrs)
    tsvs = sorted(root.rglob("*.tsv"))
    assert {str(t.relative_to(root).with_suffix("")) for t in tsvs} >= {"val/accuracy", "val/f1_macro", "train/loss"}
    for tsv in tsvs:
        assert tsv.read_text() == (Path(trained.live_uri) / "plots/metrics" / tsv.relative_to(root)).read_text()
    sandbox = Path(FlyteContextManager.current_context().file_access.local_sandbox_dir)
    decks = "".join(d.read_text() for d in sandbox.rglob("deck.html") if d.stat().st_mtime >= started)
    for expected in ("Best val/accuracy", "test/accuracy", "DVC experiment loop-1", exp.commit):
        assert expected in decks, expected
