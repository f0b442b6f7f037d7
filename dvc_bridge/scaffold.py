"""Make a repo a target for this project's experiments: git + DVC + this project's dvc.yaml.

    python -m dvc_bridge.scaffold PATH [--remote s3://bucket/path] [--endpoint http://host:port]
"""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import asdict
from pathlib import Path

from dvc_bridge import layout


def default_params() -> dict:
    from tasks.settings import TrainSettings, TuneSettings

    return layout.params_document({"source": "", "seed": 0}, asdict(TuneSettings()), asdict(TrainSettings()))


def scaffold(path: Path, remote: str = "", endpoint: str = "", code_deps: list[str] | None = None) -> None:
    """Initialize git (if needed) and DVC in `path`, write dvc.yaml and params.yaml, and commit."""
    from dvc.repo import Repo

    path.mkdir(parents=True, exist_ok=True)
    if not (path / ".git").exists():
        subprocess.run(["git", "init", "--quiet", str(path)], check=True)
    if not (path / ".dvc").exists():
        Repo.init(str(path))
    layout.write_yaml(path / "dvc.yaml", layout.dvc_yaml(code_deps))
    if not (path / layout.PARAMS).exists():
        layout.write_yaml(path / layout.PARAMS, default_params())
    if remote:
        with Repo(str(path)) as repo, repo.config.edit("repo") as conf:
            conf["remote"]["storage"] = {"url": remote, **({"endpointurl": endpoint} if endpoint else {})}
            conf["core"]["remote"] = "storage"
    subprocess.run(["git", "add", ".dvc", "dvc.yaml", layout.PARAMS], cwd=path, check=True)
    subprocess.run(
        ["git", "-c", "user.name=flyte-ray-dvc", "-c", "user.email=bridge@flyte-ray-dvc.invalid",
         "commit", "--quiet", "-m", "Track experiments of flyte-ray-dvc"],
        cwd=path,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--remote", default="", help="default DVC remote URL, e.g. s3://bucket/dvc")
    parser.add_argument("--endpoint", default="", help="S3 endpoint URL for a non-AWS object store")
    args = parser.parse_args()
    scaffold(args.path, args.remote, args.endpoint)
    print(f"{args.path} is ready: commit experiments to it with --repo_url {args.path.resolve()}")


if __name__ == "__main__":
    main()
