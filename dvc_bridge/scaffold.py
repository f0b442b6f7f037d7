"""Make a directory a DVC repo that records experiments: git, DVC, a dvc.yaml and params.yaml, committed.

Generic: what dvc.yaml and params.yaml hold is the caller's (this project: `python -m tasks.scaffold`).
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from dvc_bridge import layout
from dvc_bridge.gitops import IDENTITY


def init_repo(path: Path, dvc_yaml: dict, params: dict, *, remote: str = "", endpoint: str = "", message: str) -> None:
    """Initialize git (if needed) and DVC in `path`, write dvc.yaml (and params.yaml if absent), set the remote, commit."""
    from dvc.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "--quiet", str(path)], check=True)
    if not (path / ".dvc").exists():
        # DVC's "You can now commit the changes to git." would be stale here: this function commits them.
        init_log = logging.getLogger("dvc.repo.init")
        level = init_log.level
        init_log.setLevel(logging.WARNING)
        try:
            Repo.init(str(path))
        finally:
            init_log.setLevel(level)
    layout.write_yaml(path / layout.DVC_YAML, dvc_yaml)
    if not (path / layout.PARAMS).exists():
        layout.write_yaml(path / layout.PARAMS, params)
    if remote:
        with Repo(str(path)) as repo, repo.config.edit("repo") as conf:
            conf["remote"]["storage"] = {"url": remote, **({"endpointurl": endpoint} if endpoint else {})}
            conf["core"]["remote"] = "storage"
    subprocess.run(["git", "add", ".dvc", layout.DVC_YAML, layout.PARAMS], cwd=path, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            f"user.name={IDENTITY[0]}",
            "-c",
            f"user.email={IDENTITY[1]}",
            "commit",
            "--quiet",
            "-m",
            message,
        ],
        cwd=path,
        check=True,
    )
