"""This project's experiment: where each output lives in a DVC repo, its `dvc.yaml`, and the mapping
from a run's outputs to the generic record the DVC bridge writes. No Flyte or Ray.

The same paths serve the bridge (Flyte outputs -> experiment) and the `dvc exp run` stages
(`python -m tasks.cli`), so an experiment looks the same whichever way it was made. The stages
are the same for every problem; the metrics, plots and model artifact are the problem's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from dvc_bridge.bridge import ExperimentRecord, Gate
from dvc_bridge.layout import PARAMS
from tasks.problem import Problem, metric_key

BEST_PARAMS = "results/tune/best_params.yaml"
TRIALS_CSV = "results/tune/trials.csv"
TRIALS_PNG = "results/tune/trials.png"
MODEL = "results/train/model.pth"
LIVE_DIR = "results/dvclive"
LIVE_METRICS = "results/dvclive/metrics.json"  # per-epoch train/val history and the final test scores
LIVE_PLOTS = "results/dvclive/plots/metrics"

# Code the stages depend on, in this project's own dvc.yaml (a scaffolded target repo has none).
CODE_DEPS = [
    "tasks/problem.py",
    "tasks/problems",
    "tasks/data.py",
    "tasks/training.py",
    "tasks/ray_tune.py",
    "tasks/ray_train.py",
]


def artifact_name(problem: Problem) -> str:
    return f"{problem.name}-model"


def stages(code_deps: Optional[list[str]] = None) -> dict[str, Any]:
    """Stages tune and train: the same for every problem (the problem is a param)."""
    code = list(code_deps or [])
    return {
        "tune": {
            "cmd": "python -m tasks.cli tune",
            "deps": code[:],
            "params": ["problem", "data", "tune"],
            "outs": [
                {BEST_PARAMS: {"cache": False, "persist": True}},
                {TRIALS_CSV: {"cache": False}},
            ],
            "plots": [{TRIALS_PNG: {"cache": False}}],
        },
        "train": {
            "cmd": "python -m tasks.cli train",
            "deps": [BEST_PARAMS, *code],
            "params": ["problem", "data", "train", {BEST_PARAMS: []}],
            "outs": [MODEL, {LIVE_DIR: {"cache": False}}],
        },
    }


def declarations(problem: Problem) -> dict[str, Any]:
    """The problem's part of dvc.yaml: metrics, plots and the model artifact."""
    return {
        "metrics": [LIVE_METRICS],
        "plots": [{LIVE_PLOTS: {"x": "step"}}, TRIALS_PNG],
        "artifacts": {
            artifact_name(problem): {
                "path": MODEL,
                "type": "model",
                "desc": problem.description,
                "labels": list(problem.labels),
            }
        },
    }


def dvc_yaml(problem: Problem, code_deps: Optional[list[str]] = None) -> dict[str, Any]:
    return {"stages": stages(code_deps), **declarations(problem)}


def params_document(problem_ref: str, data: dict, tune: dict, train: dict) -> dict[str, Any]:
    """params.yaml: the values a run actually used (the tuned hyper-parameters live in BEST_PARAMS)."""
    return {"problem": problem_ref, "data": dict(data), "tune": dict(tune), "train": dict(train)}


def decision_scores(problem: Problem, test: dict[str, float], val: dict[str, float]) -> str:
    """The commit message's scores: the selecting metric on validation and test."""
    scores = {**val, **test}
    keys = (metric_key("val", problem.select), metric_key("test", problem.select))
    return ", ".join(f"{k} {scores.get(k, float('nan')):.4f}" for k in keys)


def describe_run(
    problem: Problem,
    *,
    params: dict,
    best: dict,
    trials_csv: Path,
    trials_png: Path,
    model: Path,
    live_dir: Path,
    val: dict[str, float],
    test: dict[str, float],
    run_info: dict,
    gate: float,
) -> ExperimentRecord:
    """A run's outputs as the record the bridge writes: params, git-tracked results, the DVC-tracked model, the gate."""
    select = metric_key("test", problem.select)
    return ExperimentRecord(
        documents={PARAMS: params, BEST_PARAMS: best},
        git_files={TRIALS_CSV: trials_csv, TRIALS_PNG: trials_png, LIVE_DIR: live_dir},
        dvc_files={MODEL: model},
        dvc_yaml=declarations(problem),
        run_info={**run_info, "problem": params.get("problem", problem.name), "val": val, "test": test},
        message=decision_scores(problem, test, val),
        gate=Gate(metric=select, score=float(test[select]), threshold=float(gate), mode=problem.mode),
    )
