"""tasks/settings.py: every validation rule raises SettingsError naming its field; defaults are valid."""

from __future__ import annotations

import dataclasses

import pytest

from tasks.settings import HyperParams, SettingsError, TrainSettings, TuneSettings


def test_settings_error_is_a_value_error():
    assert issubclass(SettingsError, ValueError)


@pytest.mark.parametrize("cls", [HyperParams, TuneSettings, TrainSettings])
def test_defaults_are_valid(cls):
    obj = cls()
    assert obj.validate() is None


def test_default_values():
    tune = TuneSettings()
    assert 1 <= tune.grace_period <= tune.max_epochs
    assert tune.lr_min <= tune.lr_max
    assert tune.batch_sizes == [32, 64, 128]
    # A mutable default must not be shared between instances.
    tune.batch_sizes.append(256)
    assert TuneSettings().batch_sizes == [32, 64, 128]


# (class, keyword arguments, field the message must name)
INVALID = [
    (HyperParams, {"lr": 0.0}, "lr"),
    (HyperParams, {"lr": -0.1}, "lr"),
    (HyperParams, {"momentum": 1.0}, "momentum"),
    (HyperParams, {"momentum": -0.01}, "momentum"),
    (HyperParams, {"batch_size": 0}, "batch_size"),
    (HyperParams, {"batch_size": -8}, "batch_size"),
    (TuneSettings, {"num_samples": 0}, "tune.num_samples"),
    (TuneSettings, {"max_epochs": 0}, "tune.max_epochs"),
    (TuneSettings, {"grace_period": 0}, "tune.grace_period"),
    (TuneSettings, {"max_epochs": 2, "grace_period": 3}, "tune.grace_period"),
    (TuneSettings, {"max_concurrent_trials": -1}, "tune.max_concurrent_trials"),
    (TuneSettings, {"lr_min": 0.0}, "tune.lr_min"),
    (TuneSettings, {"lr_min": -1e-3}, "tune.lr_min"),
    (TuneSettings, {"lr_min": 0.5, "lr_max": 0.1}, "tune.lr_min"),
    (TuneSettings, {"momentum_min": -0.1}, "tune.momentum_min"),
    (TuneSettings, {"momentum_min": 1.0, "momentum_max": 0.95}, "tune.momentum_min"),
    (TuneSettings, {"momentum_max": 1.0}, "tune.momentum_max"),
    (TuneSettings, {"momentum_min": 0.5, "momentum_max": -0.1}, "tune.momentum_max"),
    (TuneSettings, {"momentum_min": 0.9, "momentum_max": 0.8}, "tune.momentum_min"),
    (TuneSettings, {"batch_sizes": []}, "tune.batch_sizes"),
    (TuneSettings, {"batch_sizes": [32, 0]}, "tune.batch_sizes"),
    (TuneSettings, {"batch_sizes": [-1]}, "tune.batch_sizes"),
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
    with pytest.raises(SettingsError, match=r"tune\.lr_min=0\.5 .*tune\.lr_max \(0\.1\)"):
        TuneSettings(lr_min=0.5, lr_max=0.1)
    with pytest.raises(SettingsError, match=r"tune\.grace_period=5 .*tune\.max_epochs \(3\)"):
        TuneSettings(max_epochs=3, grace_period=5)
    with pytest.raises(SettingsError, match=r"tune\.momentum_min=0\.9 .*tune\.momentum_max \(0\.8\)"):
        TuneSettings(momentum_min=0.9, momentum_max=0.8)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (HyperParams, {"momentum": 0.0}),
        (HyperParams, {"batch_size": 1, "lr": 1e-9}),
        (TuneSettings, {"num_samples": 1, "max_epochs": 1, "grace_period": 1}),
        (TuneSettings, {"max_epochs": 7, "grace_period": 7}),
        (TuneSettings, {"max_concurrent_trials": 0}),
        (TuneSettings, {"lr_min": 0.1, "lr_max": 0.1}),
        (TuneSettings, {"momentum_min": 0.0, "momentum_max": 0.0}),
        (TuneSettings, {"momentum_min": 0.99, "momentum_max": 0.99}),
        (TuneSettings, {"batch_sizes": [1]}),
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
        (HyperParams, {"lr": 0.0}, "lr"),
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
