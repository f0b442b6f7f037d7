"""Make a repo a target for this project's experiments: git + DVC + this project's dvc.yaml and params.yaml.

python -m tasks.scaffold PATH [--problem digits] [--remote s3://bucket/path] [--endpoint http://host:port]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from dvc_bridge.scaffold import init_repo
from tasks.problem import DEFAULT_PROBLEM, load_problem, search_space, space_document
from tasks.record import experiment
from tasks.training.settings import TrainSettings, TuneSettings


def default_params(problem_ref: str = DEFAULT_PROBLEM) -> dict:
    problem = load_problem(problem_ref)
    tune = {**asdict(TuneSettings()), "space": space_document(search_space(problem))}
    return experiment.params_document(problem_ref, {"source": "", "seed": 0}, tune, asdict(TrainSettings()))


def scaffold(
    path: Path, remote: str = "", endpoint: str = "", code_deps: list[str] | None = None, problem: str = DEFAULT_PROBLEM
) -> None:
    """Initialize git (if needed) and DVC in `path`, write this project's dvc.yaml and params.yaml, and commit."""
    init_repo(
        path,
        experiment.dvc_yaml(load_problem(problem), code_deps),
        default_params(problem),
        remote=remote,
        endpoint=endpoint,
        message="Track experiments of flyte-ray-dvc",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--problem", default=DEFAULT_PROBLEM, help="built-in name or module:attribute")
    parser.add_argument("--remote", default="", help="default DVC remote URL, e.g. s3://bucket/dvc")
    parser.add_argument("--endpoint", default="", help="S3 endpoint URL for a non-AWS object store")
    args = parser.parse_args()
    scaffold(args.path, args.remote, args.endpoint, problem=args.problem)
    print(
        f"{args.path}: git and DVC initialized, dvc.yaml and params.yaml committed. Ready: commit experiments to it "
        f"with --repo_url {args.path.resolve()}"
    )


if __name__ == "__main__":
    main()
