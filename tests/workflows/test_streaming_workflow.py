"""The streaming path end to end: `pyflyte run ... --dataset 'dvc://data/digits?repo=REPO'` on Parquet shards that
live only in the repo's DVC remote (S3 on loopback), never pulled; the experiment records the directory's DVC hash."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support import PROJECT_ROOT, git, publish_shards

PYFLYTE = str(Path(sys.executable).parent / "pyflyte")
ROWS = 8000  # digits enlarged by shifted copies: enough for a test accuracy of 0.9 in two epochs


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory, s3_endpoint):
    """One shared workflow run on the streamed digits (tune 2 trials x 1 epoch, train 2 workers x 2 epochs)."""
    import uuid

    import boto3
    from support import bare_remote

    from tasks.scaffold import scaffold

    work = tmp_path_factory.mktemp("streamed")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    scaffold(work / "seed", remote=f"s3://{bucket}/dvc", endpoint=s3_endpoint)
    remote = bare_remote(work / "seed", work / "remote.git")
    md5, commit = publish_shards(remote, work / "publisher", "digits", 4, ROWS)
    run_dir = work / "run"
    git("clone", "--quiet", remote, str(run_dir))
    env = {**os.environ, "AWS_ENDPOINT_URL": s3_endpoint, "HOME": str(work / "home")}
    (work / "home").mkdir()
    proc = subprocess.run(
        [
            PYFLYTE,
            "run",
            str(PROJECT_ROOT / "workflows/tune_train.py"),
            "tune_train_wf",
            "--dataset",
            f"dvc://data/digits?repo={remote}",
            "--repo_url",
            remote,
            "--exp_name",
            "streamed",
            "--tune",
            '{"num_samples": 2, "max_epochs": 1, "space": {"lr": {"loguniform": [0.04, 0.08]}, "batch_size": 64}}',
            "--train",
            '{"epochs": 2, "num_workers": 2}',
        ],
        cwd=run_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    return proc, remote, md5, commit, work


@pytest.mark.slow
def test_dvc_directory_streams_into_an_experiment_recording_its_dvc_hash(streamed_run):
    proc, remote, md5, commit, work = streamed_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "streaming 4 Parquet files" in proc.stdout + proc.stderr
    clone = work / "verify"
    git("clone", "--quiet", remote, str(clone))
    git("fetch", "--quiet", "origin", "+refs/exps/*:refs/exps/*", cwd=clone)
    ref = next(r for r in git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=clone).splitlines())
    assert ref.endswith("/streamed")
    params = yaml.safe_load(git("show", f"{ref}:params.yaml", cwd=clone))
    data = params["data"]
    assert data["dvc_md5"] == md5, data  # the data version is the directory's DVC hash
    assert data["dvc_rev"] == commit, data  # at the commit it was read at
    assert data["rows"] == ROWS and data["files"] == 4
    assert data["split"].startswith("row-hash")
    assert data["source"] == f"dvc://data/digits?repo={remote}&rev={commit}"
    metrics = json.loads(git("show", f"{ref}:results/dvclive/metrics.json", cwd=clone))
    assert metrics["test"]["accuracy"] >= 0.9, metrics
    # The baseline of streamed data, on the same splits: the class prior, fitted on a worker from one pass of train.
    baseline = metrics["baseline"]["test"]
    assert 0.05 < baseline["accuracy"] < 0.2 and baseline["loss"] > 2.0, metrics  # 10 balanced classes: about 0.1
    assert "baseline class prior (majority class" in proc.stdout, proc.stdout[-3000:]
    # Nothing was pulled: the workspace the run started from has no DVC cache of the shards.
    cache = work / "run/.dvc/cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*")), "the shards were pulled"
