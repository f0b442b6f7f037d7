"""tasks/training/settings.py: every validation rule raises SettingsError naming its field; defaults are valid."""

from __future__ import annotations

import dataclasses

import pytest

from tasks.training.settings import SettingsError, TrainSettings, TuneSettings


@pytest.mark.parametrize("cls", [TuneSettings, TrainSettings])
def test_defaults_are_valid(cls):
    obj = cls()
    assert obj.validate() is None


def test_a_mutable_default_is_not_shared():
    tune = TuneSettings()
    tune.space["lr"] = 0.1
    assert TuneSettings().space == {}


# (class, keyword arguments, field the message must name)
INVALID = [
    (TuneSettings, {"num_samples": 0}, "tune.num_samples"),
    (TuneSettings, {"max_epochs": 0}, "tune.max_epochs"),
    (TuneSettings, {"grace_period": 0}, "tune.grace_period"),
    (TuneSettings, {"max_epochs": 2, "grace_period": 3}, "tune.grace_period"),
    (TuneSettings, {"max_concurrent_trials": -1}, "tune.max_concurrent_trials"),
    (TuneSettings, {"space": [1, 2]}, "tune.space"),
    (TrainSettings, {"epochs": 0}, "train.epochs"),
    (TrainSettings, {"num_workers": 0}, "train.num_workers"),
    (TrainSettings, {"max_failures": -1}, "train.max_failures"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "field_name"),
    INVALID,
    ids=[f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw, _ in INVALID],
)
def test_invalid_value_raises_settings_error_naming_the_field(cls, kwargs, field_name):
    with pytest.raises(SettingsError) as info:
        cls(**kwargs)
    message = str(info.value)
    # The message starts with "FIELD=VALUE" so the user sees which setting is wrong.
    assert message.startswith(f"{field_name}="), message
    assert "is not valid" in message


def test_message_shows_the_bad_value_and_the_bound():
    with pytest.raises(SettingsError, match=r"tune\.grace_period=5 .*tune\.max_epochs \(3\)"):
        TuneSettings(max_epochs=3, grace_period=5)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (TuneSettings, {"num_samples": 1, "max_epochs": 1, "grace_period": 1}),
        (TuneSettings, {"max_epochs": 7, "grace_period": 7}),
        (TuneSettings, {"max_concurrent_trials": 0}),
        (TrainSettings, {"epochs": 1, "num_workers": 1, "max_failures": 0}),
        (TrainSettings, {"use_gpu": True, "seed": 123}),
    ],
)
def test_boundary_values_are_valid(cls, kwargs):
    obj = cls(**kwargs)
    for k, v in kwargs.items():
        assert getattr(obj, k) == v


@pytest.mark.parametrize(
    ("cls", "bad", "field_name"),
    [
        (TuneSettings, {"grace_period": 99}, "tune.grace_period"),
        (TrainSettings, {"num_workers": 0}, "train.num_workers"),
    ],
)
def test_validate_on_instance_built_without_init(cls, bad, field_name):
    """A deserialized instance (no __init__, so no __post_init__) is checked by validate()."""
    values = {f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)}
    values.update(bad)
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    with pytest.raises(SettingsError) as info:
        obj.validate()
    assert str(info.value).startswith(f"{field_name}=")


def test_validate_catches_a_value_changed_after_construction():
    train = TrainSettings()
    train.epochs = 0
    with pytest.raises(SettingsError, match=r"^train\.epochs="):
        train.validate()


# --------------------------------------------------------------------------- settings against the problem and cluster


def _machine(cpus: int = 2, gpus: int = 0):
    from tasks.training.capacity import Capacity

    return Capacity(nodes=1, cpus=cpus, gpus=gpus, where="this machine")


def _check(
    problem: str, tune: TuneSettings, train: TrainSettings = TrainSettings(num_workers=1), cpus: int = 2, gpus: int = 0
):
    from tasks.problem import load_problem
    from tasks.training.capacity import check_settings

    check_settings(load_problem(problem), tune, train, _machine(cpus, gpus), _machine(cpus, gpus))


@pytest.mark.parametrize(
    ("problem", "space", "message"),
    [
        ("digits", {"dropout": 0.1}, "'dropout' is not one problem 'digits' knows; it accepts: lr: float"),
        ("diabetes", {"momentum": {"uniform": [0.1, 0.9]}}, "it accepts: lr: float (default 0.002, > 0); weight_decay"),
        ("digits", {"batch_size": {"choice": []}}, "an empty choice"),
        ("digits", {"lr": {"randint": [1, 3]}}, "randint is for integers"),
        ("diabetes", {"layers": {"uniform": [1.0, 3.0]}}, "uniform is for floats"),
        ("digits", {"lr": {"loguniform": ["0.001", 0.1]}}, "lr='0.001' of problem 'digits' must be of type float"),
        ("digits", {"lr": {"normal": [0, 1]}}, "is not a fixed value, or one of"),
    ],
)
def test_a_space_that_does_not_fit_the_problem_is_refused_naming_what_it_accepts(problem, space, message):
    from tasks.problem import ProblemError

    with pytest.raises(ProblemError) as info:
        _check(problem, TuneSettings(space=space))
    assert message in str(info.value)


def test_more_workers_than_the_smallest_batch_share_is_refused():
    with pytest.raises(SettingsError, match=r"train\.num_workers=3 .*batch_size 2.*use at most 2 workers"):
        _check("digits", TuneSettings(space={"batch_size": {"choice": [2, 64]}}), TrainSettings(num_workers=3), cpus=4)


def test_more_workers_than_the_cluster_holds_is_refused():
    with pytest.raises(SettingsError, match=r"train\.num_workers=3 .*holds at most 2"):
        _check("digits", TuneSettings(), TrainSettings(num_workers=3), cpus=2)


def test_a_users_own_space_passes():
    _check(
        "diabetes",
        TuneSettings(space={"lr": {"loguniform": [0.001, 0.1]}, "layers": {"randint": [1, 4]}, "hidden": 32}),
    )


def test_gpus_asked_for_where_there_are_too_few_are_refused():
    with pytest.raises(SettingsError, match=r"train\.use_gpu=True .*this machine has 1 GPU\(s\) for 2 worker\(s\)"):
        _check("digits", TuneSettings(), TrainSettings(use_gpu=True, num_workers=2), cpus=4, gpus=1)
    _check("digits", TuneSettings(), TrainSettings(use_gpu=True, num_workers=2), cpus=4, gpus=2)


def test_the_local_cpu_count_honours_the_affinity_mask():
    import os

    from tasks.training.capacity import local_cpus

    assert 1 <= local_cpus() <= len(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(before)})
        assert local_cpus() == 1
    finally:
        os.sched_setaffinity(0, before)
