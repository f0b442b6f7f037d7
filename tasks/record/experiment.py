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
from dvc_bridge.registry import DEFAULT_STAGE, Registration
from tasks.problem import Problem, complete, metric_key

BEST_PARAMS = "results/tune/best_params.yaml"
TRIALS_CSV = "results/tune/trials.csv"
TRIALS_PNG = "results/tune/trials.png"
MODEL = "results/train/model.pth"
LIVE_DIR = "results/dvclive"
LIVE_METRICS = "results/dvclive/metrics.json"  # per-epoch train/val history and the final test scores
LIVE_PLOTS = "results/dvclive/plots/metrics"

# Code the stages depend on, in this project's own dvc.yaml (a scaffolded target repo has none).
CODE_DEPS = ["tasks/problem", "tasks/problems", "tasks/data", "tasks/training", "tasks/ray_glue"]


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


def default_searched(problem: Problem) -> list[str]:
    """The hyper-parameters the problem's own space searches (the others are fixed)."""
    return [name for name, hp in problem.hyperparams.items() if hp.search is not None]


def searched_in(problem: Problem, trials_csv: Path) -> list[str]:
    """The problem's hyper-parameters that are columns of a trials table (the ones that search varied)."""
    header = Path(trials_csv).read_text().splitlines()[:1]
    columns = header[0].split(",") if header else []
    return [c for c in columns if c in problem.hyperparams]


def trial_plot_id(name: str) -> str:
    return f"tune-{name}"


def trials_plots(problem: Problem, searched: list[str]) -> list[dict[str, Any]]:
    """One scatter per searched hyper-parameter of trials.csv: the selecting validation metric against it,
    one point per trial, so `dvc plots diff A B` sets two searches side by side."""
    metric = metric_key("val", problem.select)
    return [
        {
            trial_plot_id(name): {
                "template": "scatter",
                "x": name,
                "y": {TRIALS_CSV: metric},
                "title": f"Tune: {metric} against {name}, one point per trial",
                "x_label": name,
                "y_label": metric,
            }
        }
        for name in searched
    ]


def declarations(problem: Problem, searched: Optional[list[str]] = None) -> dict[str, Any]:
    """The problem's part of dvc.yaml: metrics, plots (the per-epoch history, and the search as one scatter
    per searched hyper-parameter; default: the problem's own space) and the model artifact."""
    searched = default_searched(problem) if searched is None else searched
    return {
        "metrics": [LIVE_METRICS],
        "plots": [{LIVE_PLOTS: {"x": "step"}}, TRIALS_PNG, *trials_plots(problem, searched)],
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


def describe_trials(
    problem: Problem, exp_name: str, *, params: dict, trials_live: Path, run_info: dict, searched: list[str]
) -> dict[str, ExperimentRecord]:
    """record_trials: each Tune trial (a DVCLive directory of `tasks.ray_glue.tune_dvclive.DVCLiveTrials`) as its own
    experiment `<exp_name>-<trial id>` beside the run's: the run's params.yaml, the trial's hyper-parameters
    where the run keeps the tuned ones (results/tune/best_params.yaml, so `dvc exp show` sets them in the same
    columns), its per-epoch history and last metrics in results/dvclive/."""
    from dvc_bridge.layout import read_yaml

    metric = metric_key("val", problem.select)
    # What the space fixed (e.g. {"batch_size": 16}) holds for every trial; the trial's params.yaml has the rest.
    space = (params.get("tune") or {}).get("space") or {}
    fixed = {k: v for k, v in space.items() if not isinstance(v, dict)}
    trials = {}
    for d in sorted(p for p in Path(trials_live).iterdir() if p.is_dir()):
        hp = complete(problem, {**fixed, **(read_yaml(d / "params.yaml") if (d / "params.yaml").exists() else {})})
        name = f"{exp_name}-{d.name}"
        trials[name] = ExperimentRecord(
            documents={PARAMS: params, BEST_PARAMS: hp},
            git_files={LIVE_DIR: d},
            dvc_files={},
            dvc_yaml=declarations(problem, searched),
            run_info={**run_info, "trial_id": d.name, "trial_of": exp_name},
            message=f"tune trial {d.name} of {exp_name} ({metric})",
        )
    return trials


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
    trials_live: Optional[Path] = None,
    exp_name: str = "",
    stage: str = DEFAULT_STAGE,
    champion: str = "",
    margin: float = 0.0,
) -> ExperimentRecord:
    """A run's outputs as the record the bridge writes: params, git-tracked results, the DVC-tracked model, the gate;
    with `trials_live` (record_trials) each trial also as its own experiment beside the run's.

    A promoted run's model becomes a GTO version of `<problem>-model` in `stage` ("" none); with `champion`
    (a stage) the gate also compares the test score with that stage's version, on the same data version."""
    select = metric_key("test", problem.select)
    searched = searched_in(problem, trials_csv)
    siblings = (
        describe_trials(problem, exp_name, params=params, trials_live=trials_live, run_info=run_info, searched=searched)
        if trials_live is not None and exp_name
        else {}
    )
    return ExperimentRecord(
        documents={PARAMS: params, BEST_PARAMS: best},
        git_files={TRIALS_CSV: trials_csv, TRIALS_PNG: trials_png, LIVE_DIR: live_dir},
        dvc_files={MODEL: model},
        dvc_yaml=declarations(problem, searched),
        run_info={**run_info, "problem": params.get("problem", problem.name), "val": val, "test": test},
        message=decision_scores(problem, test, val),
        gate=Gate(metric=select, score=float(test[select]), threshold=float(gate), mode=problem.mode),
        registration=Registration(
            artifact=artifact_name(problem),
            stage=stage,
            champion_stage=champion,
            margin=float(margin),
            data_version=str((params.get("data") or {}).get("sha256", "")),
            data_param="data.sha256",
            metrics_file=LIVE_METRICS,
        ),
        siblings=siblings,
    )
