"""workflows/launch_plans.py: the nightly plan's naming and configuration (cron validation is tested elsewhere too)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from workflows.launch_plans import (
    DEFAULT_CRON,
    KICKOFF_INPUT,
    LaunchPlanConfigError,
    NightlyConfig,
    experiment_name,
    nightly_exp_name,
    scheduled_launch_plan,
    validate_nightly_dataset,
)


@pytest.mark.parametrize(
    ("kickoff", "name"),
    [
        (datetime(2026, 11, 22, 2, 0, tzinfo=UTC), "nightly-20261122-0200"),
        (datetime(2026, 11, 22, 3, 30, tzinfo=timezone(timedelta(hours=1))), "nightly-20261122-0230"),
        (datetime(2026, 1, 1, 0, 5), "nightly-20260101-0005"),  # naive: taken as UTC
    ],
)
def test_experiment_name_is_the_kickoff_time_in_utc(kickoff, name):
    assert experiment_name(kickoff) == name


def test_the_name_task_runs_locally():
    assert nightly_exp_name(kickoff_time=datetime(2026, 11, 22, 2, 0, tzinfo=UTC)) == "nightly-20261122-0200"


def test_config_defaults_and_environment():
    assert NightlyConfig.from_env({}) == NightlyConfig(cron=DEFAULT_CRON, dataset="", repo_url="")
    env = {"NIGHTLY_CRON": "15 4 * * 1", "NIGHTLY_DATASET": "s3://b/d.npz", "EXPERIMENTS_REPO_URL": "https://g/x.git"}
    assert NightlyConfig.from_env(env) == NightlyConfig("15 4 * * 1", "s3://b/d.npz", "https://g/x.git")


@pytest.mark.parametrize("dataset", ["", "s3://bucket/mnist.npz", "dvc://data/mnist.npz?repo=https://g/d.git"])
def test_nightly_dataset_without_a_pinned_revision_is_accepted(dataset):
    assert validate_nightly_dataset(dataset) == dataset


def test_nightly_dataset_pinning_a_revision_is_refused_with_the_fix():
    with pytest.raises(LaunchPlanConfigError, match=r"pins rev='v1'.*drop '&rev=\.\.\.'"):
        validate_nightly_dataset("dvc://data/mnist.npz?repo=https://g/d.git&rev=v1")


def test_scheduled_launch_plan_from_a_cron_string():
    lp = scheduled_launch_plan(
        "45 1 * * *", dataset="s3://b/d.npz", repo_url="https://g/x.git", name="test_nightly_0145"
    )
    assert lp.schedule.cron_schedule.schedule == "45 1 * * *"
    assert lp.schedule.kickoff_time_input_arg == KICKOFF_INPUT
    assert lp.saved_inputs["dataset"] == "s3://b/d.npz" and lp.saved_inputs["repo_url"] == "https://g/x.git"
    assert scheduled_launch_plan("45 1 * * *", "s3://b/d.npz", "https://g/x.git", name="test_nightly_0145") is lp


def test_malformed_cron_names_the_expression_and_a_valid_one():
    with pytest.raises(LaunchPlanConfigError, match=r"'0 2 \* \*'.*'0 2 \* \* \*'"):
        scheduled_launch_plan("0 2 * *", name="never_built")


def test_the_nightly_problem_is_checked_when_the_plan_is_built():
    from tasks.problem import ProblemError
    from workflows.launch_plans import NightlyConfig, scheduled_launch_plan

    assert NightlyConfig.from_env({"NIGHTLY_PROBLEM": "diabetes"}).problem == "diabetes"
    assert NightlyConfig.from_env({}).problem == "digits"
    plan = scheduled_launch_plan("0 3 * * *", name="nightly-diabetes-test", problem="diabetes")
    assert plan.fixed_inputs.literals["problem"].scalar.primitive.string_value == "diabetes"
    with pytest.raises(ProblemError, match="'digitz' is not a built-in problem"):
        scheduled_launch_plan("0 3 * * *", name="never-built-problem", problem="digitz")


def test_nightly_wf_takes_every_input_of_tune_train_wf_with_the_same_defaults():
    """The nightly plan is tune_train_wf named by its kickoff time: an input added to one and not the other fails."""
    from workflows.launch_plans import nightly_wf
    from workflows.tune_train import tune_train_wf

    nightly, main = nightly_wf.python_interface, tune_train_wf.python_interface
    assert set(nightly.inputs) == (set(main.inputs) - {"exp_name"}) | {"kickoff_time"}
    for name in set(main.inputs) - {"exp_name"}:
        assert nightly.inputs[name] == main.inputs[name], name
        assert nightly.default_inputs_as_kwargs.get(name) == main.default_inputs_as_kwargs.get(name), name
    assert nightly.outputs == main.outputs
