"""The `dvc exp run` stages: the same data, Tune and Train code as the Flyte tasks, run locally.

    python -m tasks.cli tune    # reads params.yaml (data, tune), writes results/tune/*
    python -m tasks.cli train   # reads params.yaml (data, train) and the best params, writes the model and dvclive
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from dvc_bridge import layout
from tasks.data import load_raw, make_splits, parse_source
from tasks.settings import HyperParams, TrainSettings, TuneSettings


def _splits(params: dict):
    data = params.get("data", {})
    raw, _ = load_raw(parse_source(data.get("source", "")))
    return make_splits(raw, seed=int(data.get("seed", 0)))


def _known(cls, values: dict):
    """Build a settings dataclass from a params section, ignoring keys it does not have."""
    return cls(**{k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__})


def run_stage(stage: str, root: Path) -> None:
    from tasks.clusters import init_local_ray
    from tasks.report import trials_plot

    params = layout.read_yaml(root / layout.PARAMS)
    splits = _splits(params)
    init_local_ray()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if stage == "tune":
            from tasks.ray_tune import run_tune

            outcome = run_tune(splits, _known(TuneSettings, params.get("tune")), str(tmp / "ray"))
            outcome.trials.to_csv(tmp / "trials.csv", index=False)
            trials_plot(outcome.history, tmp / "trials.png")
            layout.write_tune_outputs(root, vars(outcome.best), tmp / "trials.csv", tmp / "trials.png")
        else:
            from tasks.ray_train import run_train

            hp = _known(HyperParams, layout.read_yaml(root / layout.BEST_PARAMS))
            outcome = run_train(splits, hp, _known(TrainSettings, params.get("train")), tmp / "out", str(tmp / "ray"))
            layout.write_train_outputs(root, outcome.model_path, outcome.live_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["tune", "train"])
    parser.add_argument("--root", type=Path, default=Path("."))
    args = parser.parse_args()
    run_stage(args.stage, args.root)


if __name__ == "__main__":
    main()
