"""DVC reproduces what Flyte made, for a DVC-tracked dataset: after `dvc exp apply` of the Flyte experiment,
`dvc exp run` skips the unchanged search, retrains on the same data version with the same code, and its live
metrics reach Studio as DVC's own would (DVC's start and done, rank 0's data under results/dvclive/...)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from studio_standin import StudioStandIn
from support import PROJECT_ROOT, dvc, git
from tasks.settings import TrainSettings, TuneSettings

TOKEN = "studio-token-exp-run"


@pytest.mark.slow
def test_dvc_exp_run_after_applying_a_flyte_experiment_on_a_dvc_tracked_dataset(tmp_path, local_target, monkeypatch):
    from dvc.api import exp_show

    from workflows.tune_train import tune_train_wf

    rng = np.random.default_rng(0)
    np.savez(local_target / "digits.npz", x=rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8),
             y=np.tile(np.arange(10), 20))
    dvc("add", "digits.npz", cwd=local_target)
    git("add", "digits.npz.dvc", ".gitignore", cwd=local_target)
    git("commit", "--quiet", "-m", "data v1", cwd=local_target)
    data_rev = git("rev-parse", "HEAD", cwd=local_target)

    out = tune_train_wf(dataset=f"dvc://digits.npz?repo={local_target}", repo_url=str(local_target),
                        exp_name="flyte-dvcdata", gate=0.0,
                        tune=TuneSettings(num_samples=1, max_epochs=1, space={"batch_size": 16}),
                        train=TrainSettings(epochs=1, num_workers=1))
    assert out.experiment.ref_pushed
    dvc("exp", "apply", "flyte-dvcdata", cwd=local_target)

    studio = StudioStandIn()
    git("config", "user.name", "tester", cwd=local_target)  # DVC's own git client reads no GIT_CONFIG_GLOBAL
    git("config", "user.email", "tester@example.invalid", cwd=local_target)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
           "DVC_STUDIO_URL": studio.url, "DVC_STUDIO_TOKEN": TOKEN, "DVC_STUDIO_REPO_URL": "https://git.example.invalid/exp.git"}
    rerun = subprocess.run([str(Path(sys.executable).parent / "dvc"), "exp", "run", "-S", "train.epochs=2", "-n", "rerun"],
                           cwd=local_target, env=env, capture_output=True, text=True, timeout=600)
    studio.shutdown()
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Stage 'tune' didn't change, skipping" in rerun.stdout and "Running stage 'train'" in rerun.stdout
    assert "the version params.yaml records" in rerun.stdout, rerun.stdout[-2000:]  # same data, checked by content

    row = next(r for r in exp_show(repo=str(local_target)) if r.get("Experiment") == "rerun")
    row = {k.rsplit(":", 1)[-1]: v for k, v in row.items()}
    assert row["data.source"] == f"dvc://digits.npz?repo={local_target}&rev={data_rev}" and row["train.epochs"] == 2
    assert 0 <= row["test.accuracy"] <= 1
    commit = git("rev-parse", next(r for r in git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=local_target)
                                   .splitlines() if r.endswith("/rerun")), cwd=local_target)

    # Studio: DVC's own start and done (client dvc), rank 0's data under the experiment's paths, each point once.
    bodies = [p["body"] for p in studio.posts if p["path"] == "/api/live" and p["body"]["name"] == "rerun"]
    assert [(b["type"], b["client"]) for b in bodies if b["type"] != "data"] == [("start", "dvc"), ("done", "dvc")]
    assert bodies[-1]["experiment_rev"] == commit
    data = [b for b in bodies if b["type"] == "data"]
    assert data and {b["client"] for b in data} == {"dvclive"} and {b["step"] for b in data} == {0, 1}
    plots = {k for b in data for k in b.get("plots", {})}
    assert "results/dvclive/plots/metrics/val/accuracy.tsv" in plots
    assert all(k.startswith("results/dvclive/") for b in data for k in [*b.get("plots", {}), *b.get("metrics", {})])
    steps = [pt["step"] for b in data for pt in b.get("plots", {}).get("results/dvclive/plots/metrics/val/accuracy.tsv",
                                                                         {}).get("data", [])]
    assert steps == [0, 1]
