"""The `dvc exp run` stages: the same data, Tune and Train code as the Flyte tasks, run locally.

python -m tasks.cli tune    # reads params.yaml (problem, data, tune), writes results/tune/*
python -m tasks.cli train   # reads params.yaml (problem, data, train) and the best params, writes the model and dvclive
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dvc_bridge import layout
from dvc_bridge.live import LiveConfig, live_env
from tasks.data.arrays import load_raw, make_splits, parse_source
from tasks.problem import DEFAULT_PROBLEM, load_problem, metric_key
from tasks.record import experiment
from tasks.training.settings import TrainSettings, TuneSettings


def _known(cls, values: dict):
    """Build a settings dataclass from a params section, ignoring keys it does not have."""
    return cls(**{k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__})


def stage_live_config(environ=None) -> LiveConfig:
    """DVCLive on rank 0 as under `dvc exp run`: the experiment's paths (results/dvclive/...) for Studio, the
    experiment's name and baseline from DVC's environment, and no `start`/`done` of its own (DVC posts them)."""
    import os

    environ = os.environ if environ is None else environ
    repo_url = environ.get("DVC_STUDIO_REPO_URL", "")
    if (
        not repo_url
        and environ.get("DVC_EXP_NAME")
        and (environ.get("DVC_STUDIO_TOKEN") or environ.get("STUDIO_TOKEN"))
    ):
        from dvc_studio_client.config import get_studio_repo_url

        repo_url = get_studio_repo_url() or ""  # the git remote of the repo the stage runs in, as DVC infers it
    return LiveConfig(env=live_env("", "", repo_url, environ), repo_path=experiment.LIVE_DIR, studio_start=False)


def check_data_version(data: dict, digest: str) -> str:
    """One line: the data the stage read against the version params.yaml records (`data.sha256`)."""
    recorded = data.get("sha256", "")
    if not recorded:
        return f"data: sha256 {digest[:12]} (params.yaml records no version)"
    if recorded == digest:
        return f"data: sha256 {digest[:12]}, the version params.yaml records"
    return (
        f"data: sha256 {digest[:12]} differs from the version params.yaml records ({recorded[:12]}): "
        f"data.source {data.get('source', '')!r} now names other content"
    )


def run_stage(stage: str, root: Path) -> None:
    from tasks.ray_glue.local import init_local_ray
    from tasks.reporting.decks import trials_plot
    from tasks.training.capacity import Capacity, check_settings

    params = layout.read_yaml(root / layout.PARAMS)
    problem_ref = params.get("problem") or DEFAULT_PROBLEM
    problem = load_problem(problem_ref)
    tune, train = _known(TuneSettings, params.get("tune")), _known(TrainSettings, params.get("train"))
    data = params.get("data", {})
    raw, _ = load_raw(parse_source(data.get("source", "")), problem)
    splits = make_splits(raw, problem, seed=int(data.get("seed", 0)))
    digest = splits.content_hash()
    print(check_data_version(data, digest), flush=True)
    init_local_ray()
    import ray

    data_ref = ray.put(splits)  # the one copy trials and workers read, in the object store; the stage keeps none
    del raw, splits
    resources = ray.cluster_resources()
    here = Capacity(nodes=1, cpus=int(resources.get("CPU", 1)), gpus=int(resources.get("GPU", 0)), where="this machine")
    check_settings(problem, tune, train, here, here)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if stage == "tune":
            from tasks.ray_glue.tune import run_tune

            warm = None
            if tune.warm_start:  # the repo's own history: its experiment refs and branches, read with git
                from dvc_bridge.bridge import resolve_target
                from dvc_bridge.history import read_history
                from tasks.problem import search_space
                from tasks.record.history import HISTORY_FILES, warm_start

                revisions = read_history(resolve_target("", cwd=root), HISTORY_FILES, tmp)
                warm = warm_start(problem, problem_ref, digest, search_space(problem, tune.space), revisions)
                print("\n".join(warm.describe()), flush=True)
            outcome = run_tune(data_ref, problem_ref, tune, str(tmp / "ray"), where="this machine", warm=warm)
            outcome.trials.to_csv(tmp / "trials.csv", index=False)
            trials_plot(outcome.history, tmp / "trials.png", outcome.metric)
            layout.write_yaml(root / experiment.BEST_PARAMS, outcome.best)
            layout.place(tmp / "trials.csv", root / experiment.TRIALS_CSV)
            layout.place(tmp / "trials.png", root / experiment.TRIALS_PNG)
        else:
            from tasks.ray_glue.train import run_train

            best = layout.read_yaml(root / experiment.BEST_PARAMS)
            outcome = run_train(
                data_ref,
                problem_ref,
                best,
                train,
                tmp / "out",
                str(tmp / "ray"),
                live=stage_live_config(),
                where="this machine",
            )
            from dvc_bridge.live import add_to_summary
            from tasks.training.baselines import baseline_line, score_baseline

            baseline = score_baseline(problem, ray.get(data_ref))
            add_to_summary(outcome.live_dir, baseline.scores)  # baseline/test/<metric> beside test/<metric>
            print(f"baseline {baseline.name}: {baseline_line(problem, baseline.scores)}")
            layout.place(outcome.model_path, root / experiment.MODEL)
            layout.place(outcome.live_dir, root / experiment.LIVE_DIR)
            select = metric_key("test", problem.select)
            print(f"{select} {outcome.test[select]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["tune", "train"])
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args()
    run_stage(args.stage, args.root)


if __name__ == "__main__":
    main()
