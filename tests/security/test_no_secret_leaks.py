"""Canary secrets planted where the real ones go; the workflow runs and is packaged; none appears anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
import pytest
from leakcheck import CANARIES, scan_bytes, scan_tree
from support import PROJECT_ROOT

PYFLYTE = str(Path(sys.executable).parent / "pyflyte")


def _git_bytes(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


@pytest.mark.slow
def test_no_secret_in_logs_outputs_decks_specs_history_or_messages(tmp_path, token_remote, studio, s3_endpoint, bucket):
    """Git token (used: the git server requires it), cloud secret key (used: signs every S3 request) and
    Studio token (used: DVCLive posts live metrics to a stand-in Studio on loopback) in the environment of
    `pyflyte run` and `pyflyte package`; none in their output, any file the run wrote (task outputs,
    Decks, Ray's logs), the package (specs and code archive), the pushed git history, the DVC remote."""
    repo_url, git_requests = token_remote
    studio_url, studio_requests = studio
    ray_tmp = tempfile.mkdtemp(prefix="frdsec", dir="/tmp")  # short: Ray's socket paths have a length limit
    dirs = {"tmp": tmp_path / "tmp", "home": tmp_path / "home", "ray": Path(ray_tmp), "cwd": tmp_path / "cwd"}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    env = {
        **os.environ,
        **CANARIES,
        "TMPDIR": str(dirs["tmp"]),
        "HOME": str(dirs["home"]),
        "RAY_TMPDIR": ray_tmp,
        "DVC_STUDIO_URL": studio_url,
        "DVC_STUDIO_REPO_URL": "https://github.com/example/experiments",  # what Studio knows the repo as
    }
    try:
        run = subprocess.run(
            [
                PYFLYTE,
                "run",
                str(PROJECT_ROOT / "workflows/tune_train.py"),
                "tune_train_wf",
                "--repo_url",
                repo_url,
                "--exp_name",
                "sealed",
                "--gate",
                "0.0",
                "--tune",
                '{"num_samples": 2, "max_epochs": 1, "space": {"batch_size": 64}}',
                "--train",
                '{"epochs": 1, "num_workers": 2}',
            ],
            cwd=dirs["cwd"],
            env=env,
            capture_output=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stderr.decode(errors="replace")[-4000:]
        package = tmp_path / "package.tgz"
        pack = subprocess.run(
            [
                PYFLYTE,
                "--pkgs",
                "workflows",
                "package",
                "--image",
                "localhost:30000/flyte-ray-dvc:t",
                "--copy",
                "all",
                "--output",
                str(package),
                "--force",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            timeout=300,
        )
        assert pack.returncode == 0, pack.stderr.decode(errors="replace")[-4000:]

        # The secrets were really in use, so their absence below means something.
        assert any(ok and "receive-pack" in path for _, path, ok in git_requests.seen), (
            "the bridge never pushed with the token"
        )
        assert any(ok for _, _, ok in studio_requests.seen), "DVCLive never posted to Studio with the token"

        found = []
        for name, proc in (("pyflyte run", run), ("pyflyte package", pack)):
            found += scan_bytes(proc.stdout, f"{name} stdout") + scan_bytes(proc.stderr, f"{name} stderr")
        files = 0
        for d in dirs.values():
            n, hits = scan_tree(d)
            files, found = files + n, found + hits
        decks = list(dirs["tmp"].rglob("deck.html"))
        assert decks, "the run wrote no Deck"
        found += scan_bytes(package.read_bytes(), "package")
        server_repo = tmp_path / "git-server" / "experiments.git"
        history = _git_bytes("log", "-p", "--all", cwd=server_repo)
        assert b"refs/exps" in _git_bytes("for-each-ref", cwd=server_repo) and b"accuracy" in history  # the message
        found += scan_bytes(history, "git log -p --all")
        found += scan_bytes(_git_bytes("cat-file", "--batch-all-objects", "--batch", cwd=server_repo), "git objects")
        s3 = boto3.client("s3", endpoint_url=s3_endpoint)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert keys, "nothing in the DVC remote"
        for key in keys:
            found += scan_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), f"s3://{bucket}/{key}")
        assert not found, "\n".join(found)
        print(f"scanned {files} files, {len(decks)} Decks, the package, {len(keys)} DVC objects and the git history")
    finally:
        subprocess.run(["rm", "-rf", ray_tmp])


@pytest.mark.parametrize("prefix", ["", "u:", "us:", "user:"])
def test_the_secret_scan_finds_a_secret_base64_or_url_encoded_inside_other_text(prefix):
    """The scan every leak test relies on sees a token however it is encoded: exactly, in an Authorization header's
    base64 at any alignment, URL-safe base64, or URL-encoded; and nothing in text that does not hold it."""
    import base64
    from urllib.parse import quote

    from leakcheck import canaries_in

    secret = {"TOKEN": "canary-tok/en+with=specials-0123456789abcdef"}
    b64 = base64.b64encode(f"{prefix}{secret['TOKEN']}".encode())
    for data in (
        b"log: Authorization: Basic " + b64 + b"\n",
        b"x" + base64.urlsafe_b64encode(f"{prefix}{secret['TOKEN']}".encode()),
        f"https://host/?token={quote(secret['TOKEN'], safe='')}&x=1".encode(),
        f"token {secret['TOKEN']} in plain text".encode(),
    ):
        assert canaries_in(data, "here", secret), data
    assert not canaries_in(b"Authorization: Basic " + base64.b64encode(b"user:another-token"), "here", secret)
