"""Fixtures for the remote-path checks: real `pyflyte package` archives of the project."""

from __future__ import annotations

from pathlib import Path

import pytest
from remote_env import IMAGE, NIGHTLY_ENV, package_env

from emulator.packaging import Package, build_package


@pytest.fixture(scope="module")
def golden(tmp_path_factory) -> Package:
    """`pyflyte package --copy none` of the project, with canary secrets and a nightly config in its environment."""
    out = tmp_path_factory.mktemp("golden")
    archive = build_package(out / "package.tgz", IMAGE, env=package_env(**NIGHTLY_ENV), copy="none")
    return Package.load(archive, out / "unpacked")


@pytest.fixture(scope="module")
def fast_archive(tmp_path_factory) -> Path:
    """`pyflyte package --copy all` (fast registration: the code archive inside), same environment."""
    out = tmp_path_factory.mktemp("fast")
    return build_package(out / "package.tgz", IMAGE, env=package_env(**NIGHTLY_ENV), copy="all")
