"""Shared fixtures: an isolated environment, a real S3 server on loopback, real git remotes.

The environment is set at import, before flytekit or Ray read it: HOME (Flyte's local cache,
Ray's auth token), DVC's site cache and analytics all go to a temp dir of this session.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from support import bare_remote, moto_server

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
# Test-only problems (tests/problems_for_tests.py) importable in Ray workers and pyflyte subprocesses.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")) if p
)
(_SESSION_DIR / "home").mkdir()
(_SESSION_DIR / "gitconfig").write_text(
    "[user]\n\tname = tester\n\temail = tester@example.invalid\n[init]\n\tdefaultBranch = main\n"
)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's standalone S3 server on loopback, in its own process."""
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint):
    """A fresh, empty bucket on the loopback S3 server."""
    import uuid

    import boto3

    name = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def local_target(tmp_path):
    """A local DVC repo with this project's layout and no DVC remote."""
    from tasks.scaffold import scaffold

    path = tmp_path / "target"
    scaffold(path)
    return path


@pytest.fixture
def remote_target(tmp_path, s3_endpoint, bucket):
    """A bare git remote (file:// URL) whose repo has an S3 DVC remote on loopback."""
    from tasks.scaffold import scaffold

    seed = tmp_path / "seed"
    scaffold(seed, remote=f"s3://{bucket}/dvc", endpoint=s3_endpoint)
    return bare_remote(seed, tmp_path / "remote.git")
