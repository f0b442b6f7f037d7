"""Where each output lives in a DVC repo, and the `dvc.yaml` that declares it. No Flyte or Ray.

The same writers serve the bridge (Flyte outputs -> experiment) and the `dvc exp run` stages
(`python -m tasks.cli`), so an experiment looks the same whichever way it was made.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

PARAMS = "params.yaml"
BEST_PARAMS = "results/tune/best_params.yaml"
TRIALS_CSV = "results/tune/trials.csv"
TRIALS_PNG = "results/tune/trials.png"
MODEL = "results/train/model.pth"
LIVE_DIR = "results/dvclive"
LIVE_METRICS = "results/dvclive/metrics.json"
LIVE_PLOTS = "results/dvclive/plots/metrics"
RUN_INFO = "results/run.json"  # provenance: Flyte execution, data version; lets a retry find its experiment
MODEL_ARTIFACT = "digits-convnet"

# Code the stages depend on, in this project's own dvc.yaml (a scaffolded target repo has none).
CODE_DEPS = [
    "tasks/data.py",
    "tasks/model.py",
    "tasks/training.py",
    "tasks/ray_tune.py",
    "tasks/ray_train.py",
]

GIT_TRACKED = [PARAMS, "dvc.yaml", "dvc.lock", BEST_PARAMS, TRIALS_CSV, TRIALS_PNG, LIVE_DIR, RUN_INFO, "results/train/.gitignore"]


def dvc_yaml(code_deps: list[str] | None = None) -> dict[str, Any]:
    """The pipeline: stages tune and train, metrics, plots and the model artifact."""
    code = list(code_deps or [])
    return {
        "stages": {
            "tune": {
                "cmd": "python -m tasks.cli tune",
                "deps": code[:],
                "params": ["data", "tune"],
                "outs": [
                    {BEST_PARAMS: {"cache": False, "persist": True}},
                    {TRIALS_CSV: {"cache": False}},
                ],
                "plots": [{TRIALS_PNG: {"cache": False}}],
            },
            "train": {
                "cmd": "python -m tasks.cli train",
                "deps": [BEST_PARAMS, *code],
                "params": ["data", "train", {BEST_PARAMS: ["lr", "momentum", "batch_size"]}],
                "outs": [MODEL, {LIVE_DIR: {"cache": False}}],
            },
        },
        "metrics": [LIVE_METRICS],
        "plots": [
            {LIVE_PLOTS: {"x": "step"}},
            TRIALS_PNG,
        ],
        "artifacts": {
            MODEL_ARTIFACT: {
                "path": MODEL,
                "type": "model",
                "desc": "ConvNet for 28x28 digits (PyTorch state_dict), trained with Ray Train DDP",
                "labels": ["pytorch", "mnist", "ray"],
            }
        },
    }


def params_document(data: dict, tune: dict, train: dict) -> dict[str, Any]:
    """params.yaml: the values a run actually used (the tuned ones live in BEST_PARAMS)."""
    return {"data": dict(data), "tune": dict(tune), "train": dict(train)}


def write_yaml(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def write_params(root: Path, data: dict, tune: dict, train: dict) -> None:
    write_yaml(root / PARAMS, params_document(data, tune, train))


def write_tune_outputs(root: Path, best: dict, trials_csv: Path, trials_png: Path) -> None:
    write_yaml(root / BEST_PARAMS, best)
    _copy(trials_csv, root / TRIALS_CSV)
    _copy(trials_png, root / TRIALS_PNG)


def write_train_outputs(root: Path, model: Path, live_dir: Path) -> None:
    _copy(model, root / MODEL)
    target = root / LIVE_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(live_dir, target)


def write_run_info(root: Path, info: dict) -> None:
    path = root / RUN_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def _copy(src: Path, dst: Path) -> None:
    """A hard link where the filesystem allows (the model can be large), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
