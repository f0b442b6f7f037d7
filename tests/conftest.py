"""Shared fixtures: an isolated environment, a real S3 server on loopback, real git remotes.

The environment is set at import, before flytekit or Ray read it: HOME (Flyte's local cache,
Ray's auth token), DVC's site cache and analytics all go to a temp dir of this session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="frd-tests-"))
os.environ.update(
    {
        "HOME": str(_SESSION_DIR / "home"),
        "DVC_SITE_CACHE_DIR": str(_SESSION_DIR / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "GIT_CONFIG_GLOBAL": str(_SESSION_DIR / "gitconfig"),
    }
)
(_SESSION_DIR / "home").mkdir()
(_SESSION_DIR / "gitconfig").write_text(
    "[user]\n\tname = tester\n\temail = tester@example.invalid\n[init]\n\tdefaultBranch = main\n"
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's standalone S3 server on loopback, in its own process."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh, empty bucket on the loopback S3 server."""
    import uuid

    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def dvc(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).parent / "dvc"
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture
def local_target(tmp_path):
    """A local DVC repo with this project's layout and no DVC remote."""
    from dvc_bridge.scaffold import scaffold

    path = tmp_path / "target"
    scaffold(path)
    return path


@pytest.fixture
def remote_target(tmp_path, s3_endpoint, bucket):
    """A bare git remote (file:// URL) whose repo has an S3 DVC remote on loopback."""
    from dvc_bridge.scaffold import scaffold

    seed = tmp_path / "seed"
    scaffold(seed, remote=f"s3://{bucket}/dvc", endpoint=s3_endpoint)
    bare = tmp_path / "remote.git"
    git("clone", "--quiet", "--bare", str(seed), str(bare))
    return f"file://{bare}"


def assert_experiment_in_remote(url: str, name: str, model_bytes: bytes, workdir: Path) -> dict:
    """From a fresh clone of the remote: the experiment pulls, shows, applies, restores the model, plots, is clean."""
    from dvc.api import exp_show

    clone = workdir / f"verify-{name}"
    git("clone", "--quiet", url, str(clone))
    dvc("exp", "pull", "origin", name, cwd=clone)
    exps = exp_show(repo=str(clone))
    row = next(r for r in exps if r.get("Experiment") == name)

    def col(source: str, name: str):  # exp_show prefixes a column with its file only when ambiguous
        return row.get(f"{source}:{name}", row.get(name))

    assert len(col("params.yaml", "data.sha256")) == 64, row
    assert col("results/tune/best_params.yaml", "lr") > 0, row
    assert col("results/tune/best_params.yaml", "batch_size") >= 1, row
    assert 0 <= col("results/dvclive/metrics.json", "accuracy") <= 1, row
    dvc("exp", "apply", name, cwd=clone)
    (clone / "results/train/model.pth").unlink()
    dvc("pull", cwd=clone)
    assert (clone / "results/train/model.pth").read_bytes() == model_bytes
    dvc("plots", "show", "-o", str(workdir / f"plots-{name}"), cwd=clone)
    assert (workdir / f"plots-{name}" / "index.html").exists()
    status = dvc("status", cwd=clone)
    assert "up to date" in status, status
    return row
