"""Inputs that work on a laptop and cannot work on a cluster, found before any cluster starts.

A pod sees its image and the network, not the machine `pyflyte run --remote` was typed on: an
empty `repo_url` (the repo the command runs in: the image is not a git repo), a local path or a
`file://` URL (of the experiments repo, the dataset, a `dvc://` data repo or the live-metrics
location) names files no pod has. `check_target` calls `remote_input_problems` when the run is
not local and refuses the run with every problem and its fix at once.

A path that *is* mounted at the same place in every pod (a shared volume in the pod template)
can be declared in `FRD_SHARED_PATHS` (`os.pathsep`-separated, e.g. `pyflyte run --remote
--env FRD_SHARED_PATHS=/mnt/shared ...`); local paths and `file://` URLs under it are accepted.

Pure logic: no Flyte, no I/O.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath
from typing import Mapping, Optional, Sequence
from urllib.parse import unquote, urlparse

from dvc_bridge.bridge import is_git_url
from dvc_bridge.errors import TargetError

SHARED_PATHS_ENV = "FRD_SHARED_PATHS"
LOCAL_SCHEMES = {"file", "local"}  # fsspec's names for this machine's filesystem


def shared_paths(env: Mapping[str, str] = os.environ) -> list[str]:
    """The paths declared mounted in every pod (FRD_SHARED_PATHS)."""
    return [p for p in env.get(SHARED_PATHS_ENV, "").split(os.pathsep) if p.strip()]


def local_path_of(location: str) -> Optional[str]:
    """The local path a location names (a plain path, `file://...`, `local://...`), or None for a URL elsewhere."""
    if "://" in location:
        parsed = urlparse(location)
        return unquote(parsed.netloc + parsed.path) or "/" if parsed.scheme in LOCAL_SCHEMES else None
    if is_git_url(location):
        return None  # git@host:path
    return location


def _under(path: str, shared: Sequence[str]) -> bool:
    if not path.startswith("/"):
        return False  # relative: relative to the pod's working directory, not to a mount
    p = PurePosixPath(os.path.normpath(path))
    return any(p == PurePosixPath(s) or PurePosixPath(s) in p.parents for s in (os.path.normpath(s) for s in shared))


def _is_local(location: str, shared: Sequence[str]) -> bool:
    path = local_path_of(location)
    return path is not None and not _under(path, shared)


def _dataset_problem(dataset: str, shared: Sequence[str]) -> Optional[str]:
    from tasks.data.arrays import parse_source  # numpy only; kept out of import time

    source = parse_source(dataset)
    if source.kind == "embedded":
        return None
    if source.kind == "dvc":
        if not source.repo:
            return (
                f"dataset {dataset!r} has no repo=, which means the git repo the command runs in: a pod's image "
                "is not one. Add repo=<the data repo's git URL> (https:// or ssh://)."
            )
        if not is_git_url(source.repo) or _is_local(source.repo, shared):
            return (
                f"dataset {dataset!r} reads from repo {source.repo!r} on this machine, which no pod can see: "
                "give the data repo's git URL (repo=https://... or repo=ssh://...)."
            )
        return None
    if _is_local(source.uri, shared):
        return (
            f"dataset {dataset!r} is a file on this machine, which no pod can see: upload it to object storage "
            "(e.g. `aws s3 cp`) and pass its URI (s3://bucket/data.npz), or a dvc://PATH?repo=<git URL>."
        )
    return None


def remote_input_problems(
    repo_url: str, dataset: str = "", live_uri: str = "", shared: Sequence[str] = ()
) -> list[str]:
    """Each input that cannot work in a pod, as a sentence with its fix; [] when all can."""
    problems = []
    if not repo_url:
        problems.append(
            "repo_url is empty, which means the git repo the command runs in: on a cluster the image is "
            "not a git repo: pass --repo_url with the experiments repo's git URL (https:// or ssh://)."
        )
    elif not is_git_url(repo_url) or _is_local(repo_url, shared):
        problems.append(
            f"repo_url {repo_url!r} is a repository on this machine, which no pod can see: pass "
            "--repo_url with the experiments repo's git URL (https:// or ssh://), after pushing it there."
        )
    dataset_problem = _dataset_problem(dataset, shared)
    if dataset_problem:
        problems.append(dataset_problem)
    if live_uri and _is_local(live_uri, shared):
        problems.append(
            f"live_uri {live_uri!r} is on this machine, where no pod can write and from where you could "
            "not watch a cluster's run: give an object-store URI (s3://bucket/live), or leave it empty "
            "for the execution's own raw-output location."
        )
    return problems


def check_remote_inputs(
    repo_url: str, dataset: str = "", live_uri: str = "", env: Mapping[str, str] = os.environ
) -> None:
    """Refuse (TargetError, not retried) a remote run whose inputs name this machine, listing every problem."""
    shared = shared_paths(env)
    problems = remote_input_problems(repo_url, dataset, live_uri, shared)
    if not problems:
        return
    hint = (
        f" (A path mounted in every pod can be declared in {SHARED_PATHS_ENV}.)"
        if any("this machine" in p for p in problems)
        else ""
    )
    raise TargetError(
        "this run executes on a cluster, where these inputs cannot work:\n"
        + "\n".join(f"  - {p}" for p in problems)
        + hint
    )
