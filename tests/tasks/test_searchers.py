"""The searchers: random, grid and Optuna (Bayesian), each a real small Ray Tune run on the diabetes table,
and the pure rules that refuse a search before any cluster starts."""

from __future__ import annotations

import math

import pytest
import ray
from support import ray_cluster  # noqa: F401  (shared fixture)

from compat.ray import optuna_study
from tasks.data.arrays import load_raw, make_splits, parse_source
from tasks.problem import load_problem, search_space
from tasks.ray_glue.searchers import make_search, optuna_space
from tasks.record.history import SearchHistory
from tasks.training.capacity import Capacity, check_settings
from tasks.training.search import SearchError, grid_axes, grid_points
from tasks.training.settings import SettingsError, TrainSettings, TuneSettings

DIABETES = load_problem("diabetes")
SMALL = {"batch_size": 32, "hidden": 32}


@pytest.fixture(scope="module")
def diabetes_ref(ray_cluster):  # noqa: F811
    raw, _ = load_raw(parse_source(""), DIABETES)
    return ray.put(make_splits(raw, DIABETES, seed=0))


def _run(tmp_path, ref, **tune):
    from tasks.ray_glue.tune import run_tune

    settings = TuneSettings(max_epochs=1, grace_period=1, **tune)
    return run_tune(ref, "diabetes", settings, str(tmp_path / "ray"), concurrency=2)


# ----------------------------------------------------------------------------- settings and pure rules


def test_an_unknown_searcher_is_refused_naming_the_choices():
    with pytest.raises(SettingsError, match=r"tune.search='bayes'.*'random', 'grid', 'optuna'"):
        TuneSettings(search="bayes")


def test_a_warm_start_without_optuna_is_refused_saying_why():
    with pytest.raises(SettingsError, match=r"tune.warm_start.*learns from scores.*\"search\": \"optuna\""):
        TuneSettings(warm_start=True)
    assert TuneSettings(search="optuna", warm_start=True).warm_start


def test_grid_refuses_a_continuous_domain_saying_what_to_give_instead():
    space = search_space(DIABETES)  # lr is loguniform
    with pytest.raises(SearchError, match=r"cannot search lr over \{'loguniform'.*choice.*optuna"):
        grid_axes(space)
    here = Capacity(nodes=1, cpus=2, gpus=0, where="this machine")
    with pytest.raises(SettingsError, match="cannot search lr"):
        check_settings(DIABETES, TuneSettings(search="grid"), TrainSettings(), here, here)


def test_grid_larger_than_num_samples_is_refused_with_its_size():
    space = {"hidden": {"choice": [16, 32, 64]}, "layers": {"randint": [1, 3]}, "lr": 0.01, "dropout": 0.0}
    here = Capacity(nodes=1, cpus=2, gpus=0, where="this machine")
    with pytest.raises(SettingsError, match=r"has 9 combinations, more than tune.num_samples=4.*\"num_samples\": 9"):
        check_settings(DIABETES, TuneSettings(search="grid", num_samples=4, space=space), TrainSettings(), here, here)
    check_settings(DIABETES, TuneSettings(search="grid", num_samples=9, space=space), TrainSettings(), here, here)
    points = grid_points(search_space(DIABETES, space))
    assert len(points) == 9 and {(p["hidden"], p["layers"]) for p in points} == {
        (h, n) for h in (16, 32, 64) for n in (1, 2, 3)
    }


def test_optuna_space_maps_each_typed_domain_faithfully():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dims = optuna_space(search_space(DIABETES))
    assert dims["lr"] == FloatDistribution(0.001, 0.005, log=True)
    assert dims["dropout"] == FloatDistribution(0.1, 0.3, log=False)
    assert dims["layers"] == IntDistribution(1, 2)  # both ends included, as randint here
    assert isinstance(dims["hidden"], CategoricalDistribution) and dims["hidden"].choices == (16, 32)
    assert set(dims) == {"lr", "weight_decay", "hidden", "layers", "dropout", "batch_size"}


def test_optuna_warm_start_adds_the_earlier_points_with_their_scores():
    """The earlier trials become completed trials of the Optuna study (read through the searcher's study,
    a private attribute of Ray's OptunaSearch: there is no public view of it)."""
    space = search_space(DIABETES)
    warm = SearchHistory(
        points=[
            {"lr": 0.001, "weight_decay": 1e-2, "hidden": 16, "layers": 2, "dropout": 0.1, "batch_size": 32},
            {"lr": 0.004, "weight_decay": 5e-3, "hidden": 32, "layers": 1, "dropout": 0.2, "batch_size": 16},
        ],
        scores=[60.5, 55.25],
    )
    plan = make_search(TuneSettings(search="optuna", warm_start=True), space, "val/rmse", "min", 2, warm)
    study = optuna_study(plan.search_alg)
    done = study.get_trials(deepcopy=False)
    assert [t.value for t in done] == [60.5, 55.25]
    assert done[1].params == warm.points[1]
    assert study.best_value == 55.25  # "min": the lower RMSE is the study's best


# ----------------------------------------------------------------------------- real Tune runs


@pytest.mark.slow
def test_random_search_samples_the_space_seeded(tmp_path, diabetes_ref):
    space = {**SMALL, "layers": {"randint": [1, 3]}, "lr": {"loguniform": [0.005, 0.05]}}
    outcome = _run(tmp_path, diabetes_ref, num_samples=3, space=space, seed=3)
    trials = outcome.trials
    assert len(trials) == 3 and (trials["status"] == "completed").all(), trials.to_string()
    assert trials["layers"].between(1, 3).all() and trials["lr"].between(0.005, 0.05).all()
    assert outcome.best_score == trials["val/rmse"].min() and math.isfinite(outcome.best_score)


@pytest.mark.slow
def test_grid_search_runs_every_combination_once(tmp_path, diabetes_ref):
    space = {
        **SMALL,
        "lr": 0.02,
        "dropout": 0.0,
        "layers": {"randint": [1, 2]},
        "weight_decay": {"choice": [0.0, 0.01]},
    }
    outcome = _run(tmp_path, diabetes_ref, search="grid", num_samples=4, space=space)
    trials = outcome.trials
    assert sorted(zip(trials["layers"], trials["weight_decay"])) == [(1, 0.0), (1, 0.01), (2, 0.0), (2, 0.01)]
    assert (trials["status"] == "completed").all(), trials.to_string()
    assert outcome.best["lr"] == 0.02 and outcome.best["layers"] in (1, 2)


@pytest.mark.slow
def test_optuna_search_draws_typed_values_inside_the_space_and_is_seeded(tmp_path, diabetes_ref):
    space = {**SMALL, "layers": {"randint": [1, 3]}, "lr": {"loguniform": [0.005, 0.05]}, "dropout": 0.0}
    first = _run(tmp_path / "a", diabetes_ref, search="optuna", num_samples=4, space=space, seed=7)
    trials = first.trials
    assert len(trials) == 4 and (trials["status"] == "completed").all(), trials.to_string()
    assert all(isinstance(v, int) for v in trials["layers"].tolist()) and trials["layers"].between(1, 3).all()
    assert trials["lr"].between(0.005, 0.05).all() and trials["lr"].nunique() == 4
    assert first.best_score == trials["val/rmse"].min()
    # The first draws of a seeded TPE sampler (its random start-up) repeat: the same points, whatever order they ran.
    again = _run(tmp_path / "b", diabetes_ref, search="optuna", num_samples=4, space=space, seed=7)
    assert sorted(again.trials["lr"].round(10)) == sorted(trials["lr"].round(10))
