"""Shared by the remote-path tests: the package environment, canary secrets, archive scanning.

(A module of its own: test modules importing from `conftest` would depend on which conftest
pytest imported last.)
"""

from __future__ import annotations

import os
import tarfile
import uuid
from pathlib import Path
from typing import Iterator

IMAGE = "localhost:30000/flyte-ray-dvc:golden"

# Values no package, log, output or commit may ever contain, set where the secrets would be.
# Made at run time: a literal here would itself be packaged (fast registration ships the tests too).
CANARIES = {
    var: f"canary-{var.lower().replace('_', '-')}-{uuid.uuid4().hex}"
    for var in ("GIT_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "DVC_STUDIO_TOKEN")
}

# The nightly plan's configuration, as a user would export it before `pyflyte register`.
NIGHTLY_ENV = {
    "NIGHTLY_CRON": "30 3 * * *",
    "NIGHTLY_DATASET": "dvc://data/mnist.npz?repo=https://git.example/team/data.git",
    "EXPERIMENTS_REPO_URL": "https://git.example/team/experiments.git",
}


def package_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **CANARIES, **extra}


def archive_files(path: Path) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of every file in a tar archive, descending into archives inside it."""
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            data = tar.extractfile(member).read()
            yield member.name, data
            if member.name.endswith((".tar.gz", ".tgz")):
                nested = path.parent / f"nested-{Path(member.name).name}"
                nested.write_bytes(data)
                for name, inner in archive_files(nested):
                    yield f"{member.name}!{name}", inner
