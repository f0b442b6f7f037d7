"""The whole workflow with real Ray, real DVC, a real bare git remote and S3 on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flytekit import workflow

from support import PROJECT_ROOT, assert_experiment_in_remote, dvc, git
from tasks.contracts import Dataset
from tasks.flyte_tasks import pin_dataset, prepare_data
from tasks.settings import TrainSettings, TuneSettings

TINY_TUNE = TuneSettings(num_samples=2, max_epochs=1, batch_sizes=[64])
TINY_TRAIN = TrainSettings(epochs=2, num_workers=2)
PYFLYTE = str(Path(sys.executable).parent / "pyflyte")


@pytest.mark.slow
def test_workflow_in_process_commits_a_real_experiment(tmp_path, remote_target, s3_endpoint):
    from flytekit import FlyteContextManager

    from workflows.tune_train import tune_train_wf

    started = time.time()
    out = tune_train_wf(repo_url=remote_target, exp_name="wf-inproc", min_accuracy=0.5, tune=TINY_TUNE, train=TINY_TRAIN)
    exp, trained = out.experiment, out.trained
    assert exp.name == "wf-inproc" and exp.data_pushed and exp.ref_pushed
    assert exp.promoted == (trained.accuracy >= 0.5)
    assert trained.accuracy > 0.5, "two epochs on 4000 digits should beat chance by far"
    assert [m.epoch for m in trained.history] == [1, 2]
    tsv = Path(trained.dvclive.download()) / "plots" / "metrics" / "accuracy.tsv"
    assert len(tsv.read_text().strip().splitlines()) == 1 + TINY_TRAIN.epochs  # header + one row per epoch
    model = Path(trained.model.download()).read_bytes()
    assert_experiment_in_remote(remote_target, "wf-inproc", model, tmp_path)

    # The experiment's DVCLive files: one row per epoch in every metric, as mirrored live.
    clone = tmp_path / "verify-wf-inproc"
    tsvs = sorted((clone / "results/dvclive/plots/metrics").glob("*.tsv"))
    assert {t.stem for t in tsvs} >= {"accuracy", "loss", "train_loss", "lr", "epoch_time_s", "samples_per_s"}
    for tsv in tsvs:
        assert tsv.read_text() == (Path(trained.live_uri) / "plots/metrics" / tsv.name).read_text()
        assert len(tsv.read_text().strip().splitlines()) == 1 + TINY_TRAIN.epochs, tsv.name

    # Decks: the trials table and plot, the training curves, the experiment summary.
    sandbox = Path(FlyteContextManager.current_context().file_access.local_sandbox_dir)
    decks = "".join(d.read_text() for d in sandbox.rglob("deck.html") if d.stat().st_mtime >= started)
    for expected in ("Best: accuracy", "trial_id", "Held-out accuracy", "loss and accuracy per epoch",
                     "DVC experiment wf-inproc", exp.commit, "dvc exp apply wf-inproc"):
        assert expected in decks, expected


def _pyflyte(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([PYFLYTE, "run", str(PROJECT_ROOT / "workflows/tune_train.py"), "tune_train_wf", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_pyflyte_run_commits_to_the_repo_it_runs_from(tmp_path, local_target):
    """`repo_url` empty: the experiment lands in the git repo the command runs from, model in its cache."""
    proc = _pyflyte("--tune", '{"num_samples": 2, "max_epochs": 1, "batch_sizes": [64]}',
                    "--train", '{"epochs": 1, "num_workers": 2}', "--seed", "1", "--min_accuracy", "0.0",
                    cwd=local_target)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    refs = git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=local_target).splitlines()
    assert len(refs) == 1
    name = refs[0].rsplit("/", 1)[1]
    dvc("exp", "apply", name, cwd=local_target)
    assert (local_target / "results/train/model.pth").stat().st_size > 10_000
    assert "up to date" in dvc("status", cwd=local_target)


def test_dvc_tracked_dataset_is_read_at_its_revision_and_the_cache_follows_new_revisions(tmp_path, local_target):
    """A pinned rev reads that rev; no rev reads HEAD as it is now, even though data preparation is cached."""
    @workflow
    def prepare_wf(source: str) -> Dataset:
        pinned = pin_dataset(source=source)
        return prepare_data(source=pinned.source, version=pinned.version, seed=0)

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8)
    y = np.tile(np.arange(10), 20)

    def commit_data(n: int, message: str) -> str:
        np.savez(local_target / "digits.npz", x=x[:n], y=y[:n])
        dvc("add", "digits.npz", cwd=local_target)
        git("add", "digits.npz.dvc", ".gitignore", cwd=local_target)
        git("commit", "--quiet", "-m", message, cwd=local_target)
        return git("rev-parse", "HEAD", cwd=local_target)

    v1 = commit_data(200, "data v1")
    newest = f"dvc://digits.npz?repo={local_target}"
    first = prepare_wf(source=newest)
    v2 = commit_data(150, "data v2")
    old = prepare_wf(source=f"dvc://digits.npz?repo={local_target}&rev={v1}")
    new = prepare_wf(source=newest)  # same source string as `first`: the cache must not answer
    assert first.dvc_rev == old.dvc_rev == v1 and old.n_train + old.n_test == 200
    assert new.dvc_rev == v2 and new.n_train + new.n_test == 150
    assert old.sha256 == first.sha256 != new.sha256
