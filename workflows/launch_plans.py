"""Launch plans: the default one for `tune_train_wf`, a nightly retrain and a nightly scoring on schedules.

    pyflyte register workflows --image <image>              # registers the plans
    pyflyte launchplan --activate nightly_retrain           # switch a schedule on
    pyflyte launchplan --activate nightly_predict

The nightly plan is configured when it is registered, from these environment variables
(docs/remote.md):

| variable | default | meaning |
|---|---|---|
| `NIGHTLY_CRON` | `0 2 * * *` | when to run (5-field cron, UTC, or an alias like `@daily`) |
| `NIGHTLY_PROBLEM` | `digits` | the training problem: a built-in name or `module:attribute` (checked at registration) |
| `NIGHTLY_DATASET` | `""` (the problem's embedded data) | data source; `dvc://PATH?repo=REPO` without `rev=` reads the newest revision each night |
| `EXPERIMENTS_REPO_URL` | `""` | the DVC repo (git URL) both plans commit to; the nightly plan needs one |
| `PREDICT_CRON` | `0 4 * * *` | when the nightly scoring runs |
| `PREDICT_MODEL` | `<problem>-model#prod` | the registered model it scores with (`<artifact>#<stage>` or `<artifact>@<version>`) |
| `PREDICT_DATASET` | `NIGHTLY_DATASET` | the data it scores; without `rev=` a `dvc://` source is read at its newest revision each night |

Each nightly run names its experiment from the scheduled kickoff time (`nightly-20261122-0200`),
so a retry of the same night finds its own experiment instead of making a second one.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Optional

import croniter
from flytekit import CronSchedule, LaunchPlan, task, workflow

from dvc_bridge.errors import RegistryError
from dvc_bridge.registry import parse_model
from tasks.data.arrays import parse_source
from tasks.problem import DEFAULT_PROBLEM, load_problem
from tasks.record.experiment import artifact_name
from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings
from workflows.predict import predict_wf
from workflows.tune_train import TuneTrainOutputs, tune_train_wf

DEFAULT_CRON = "0 2 * * *"
PREDICT_CRON = "0 4 * * *"  # after the nightly retrain
NIGHTLY_NAME = "nightly_retrain"
PREDICT_NAME = "nightly_predict"
PROD_STAGE = "prod"
DEFAULT_NAME = "tune_train"
KICKOFF_INPUT = "kickoff_time"
# What Flyte's native scheduler (robfig/cron ParseStandard) and flytekit both accept: 5 fields of
# numbers, '*', '?', ranges, steps, lists and month/day names, or one of these descriptors.
CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})
_CRON_NAMES = "JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT"
_CRON_FIELD = re.compile(rf"(?:\d+|\*|\?|{_CRON_NAMES})(?:[-/,](?:\d+|\*|{_CRON_NAMES}))*", re.IGNORECASE)


class LaunchPlanConfigError(ValueError):
    """A launch plan setting is invalid; the message names it and shows a valid one."""


def validate_cron(cron: str) -> str:
    """The cron expression, stripped, if Flyte's native scheduler can run it; else a clear error."""
    expr = " ".join(cron.split())
    if expr.lower() in CRON_ALIASES:
        return expr
    fields = expr.split(" ")
    if len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields) or not croniter.croniter.is_valid(expr):
        raise LaunchPlanConfigError(
            f"cron expression {cron!r} is not valid: use 5 fields 'minute hour day-of-month month day-of-week' "
            f"(UTC), for example {DEFAULT_CRON!r} for every night at 02:00, or an alias like '@daily'."
        )
    return expr


def validate_nightly_dataset(dataset: str) -> str:
    """A nightly retrain must read the newest data: a DVC source may not pin `rev=`."""
    source = parse_source(dataset)
    if source.kind == "dvc" and source.rev:
        raise LaunchPlanConfigError(
            f"nightly dataset {dataset!r} pins rev={source.rev!r}, so every night would train on the same data: "
            "drop '&rev=...' (for example dvc://data/mnist.npz?repo=https://git.example/team/data.git) to read "
            "the newest revision at each run."
        )
    return dataset


def validate_nightly_problem(problem: str) -> str:
    """The problem must resolve where the plan is registered, not first at 2 a.m. (raises ProblemError)."""
    load_problem(problem)
    return problem


def experiment_name(kickoff_time: datetime) -> str:
    """nightly-YYYYMMDD-HHMM of the scheduled kickoff, in UTC (a naive time is taken as UTC)."""
    if kickoff_time.tzinfo is not None:
        kickoff_time = kickoff_time.astimezone(UTC)
    return f"nightly-{kickoff_time:%Y%m%d-%H%M}"


@dataclass(frozen=True)
class NightlyConfig:
    cron: str = DEFAULT_CRON
    dataset: str = ""
    repo_url: str = ""
    problem: str = DEFAULT_PROBLEM

    @classmethod
    def from_env(cls, env: os._Environ | dict = os.environ) -> NightlyConfig:
        return cls(
            cron=env.get("NIGHTLY_CRON") or DEFAULT_CRON,
            dataset=env.get("NIGHTLY_DATASET", ""),
            repo_url=env.get("EXPERIMENTS_REPO_URL", ""),
            problem=env.get("NIGHTLY_PROBLEM") or DEFAULT_PROBLEM,
        )


@task
def nightly_exp_name(kickoff_time: datetime) -> str:
    return experiment_name(kickoff_time)


@workflow
def nightly_wf(
    kickoff_time: datetime,
    dataset: str = "",
    repo_url: str = "",
    base_rev: str = "",
    problem: str = DEFAULT_PROBLEM,
    gate: Optional[float] = None,
    tune: TuneSettings = TuneSettings(),
    train: TrainSettings = TrainSettings(),
    seed: int = 0,
    live_uri: str = "",
    tune_cluster: TuneCluster = TuneCluster(),
    train_cluster: TrainCluster = TrainCluster(),
    stage: str = "staging",
    champion: str = "",
    margin: float = 0.0,
    beat_baseline: Optional[bool] = None,
) -> TuneTrainOutputs:
    """tune_train_wf with the experiment named after the scheduled kickoff time (every other input the same)."""
    name = nightly_exp_name(kickoff_time=kickoff_time)
    return tune_train_wf(
        dataset=dataset,
        repo_url=repo_url,
        base_rev=base_rev,
        exp_name=name,
        problem=problem,
        gate=gate,
        tune=tune,
        train=train,
        seed=seed,
        live_uri=live_uri,
        tune_cluster=tune_cluster,
        train_cluster=train_cluster,
        stage=stage,
        champion=champion,
        margin=margin,
        beat_baseline=beat_baseline,
    )


def scheduled_launch_plan(
    cron: str, dataset: str = "", repo_url: str = "", name: str = NIGHTLY_NAME, problem: str = DEFAULT_PROBLEM
) -> LaunchPlan:
    """The nightly retrain: `nightly_wf` on `cron` with the kickoff time as input, data and repo fixed.

    Settings are checked before anything is built. Within one process a name stands for one
    plan: asking again for `name` with other settings raises flytekit's error; pass another name.
    """
    schedule = CronSchedule(schedule=validate_cron(cron), kickoff_time_input_arg=KICKOFF_INPUT)
    return LaunchPlan.get_or_create(
        workflow=nightly_wf,
        name=name,
        schedule=schedule,
        fixed_inputs={
            "dataset": validate_nightly_dataset(dataset),
            "repo_url": repo_url,
            "problem": validate_nightly_problem(problem),
        },
    )


def validate_model(model: str) -> str:
    """`<artifact>#<stage>` or `<artifact>@<version>`, checked where the plan is registered."""
    try:
        parse_model(model)
    except RegistryError as e:
        raise LaunchPlanConfigError(str(e)) from e
    return model


def predict_launch_plan(
    cron: str, model: str, dataset: str = "", repo_url: str = "", name: str = PREDICT_NAME
) -> LaunchPlan:
    """The nightly scoring: `predict_wf` with the `prod` model (or `model`) on the newest data, on `cron`."""
    return LaunchPlan.get_or_create(
        workflow=predict_wf,
        name=name,
        schedule=CronSchedule(schedule=validate_cron(cron)),
        fixed_inputs={
            "model": validate_model(model),
            "dataset": validate_nightly_dataset(dataset),
            "repo_url": repo_url,
        },
    )


def default_launch_plan(repo_url: str = "") -> LaunchPlan:
    """tune_train_wf with the workflow's defaults, committing to `repo_url` unless a launch says otherwise."""
    return LaunchPlan.get_or_create(workflow=tune_train_wf, name=DEFAULT_NAME, default_inputs={"repo_url": repo_url})


CONFIG = NightlyConfig.from_env()
tune_train_lp = default_launch_plan(CONFIG.repo_url)
nightly_retrain_lp = scheduled_launch_plan(CONFIG.cron, CONFIG.dataset, CONFIG.repo_url, problem=CONFIG.problem)
nightly_predict_lp = predict_launch_plan(
    os.environ.get("PREDICT_CRON") or PREDICT_CRON,
    os.environ.get("PREDICT_MODEL") or f"{artifact_name(load_problem(CONFIG.problem))}#{PROD_STAGE}",
    os.environ.get("PREDICT_DATASET", CONFIG.dataset),
    CONFIG.repo_url,
)
