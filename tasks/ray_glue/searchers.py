"""The search algorithm a Tune run uses, built from the settings and the problem's typed space with Ray Tune's
own integrations: random (BasicVariantGenerator), grid (tune.grid_search) and Optuna (OptunaSearch with an
explicit Optuna space and a seeded TPE sampler), each bounded to the run's concurrency. ASHA stops trials
early with any of them (tasks/ray_glue/tune.py). What each searcher means: tasks/training/search.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ray import tune
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.basic_variant import BasicVariantGenerator

from tasks.problem import Choice, IntRange, LogUniform, Uniform
from tasks.record.history import SearchHistory
from tasks.training.search import grid_axes, searched
from tasks.training.settings import TuneSettings


@dataclass
class SearchPlan:
    """What tune.Tuner takes from the searcher: the search algorithm, the param_space and num_samples."""

    search_alg: Any
    param_space: dict
    num_samples: int  # what Tune is given (a grid runs once through all its combinations)
    trials: int  # how many trials the search will run


def tune_domain(d: Any) -> Any:
    """One domain in Ray Tune's terms (randint's high is exclusive in Tune, inclusive here)."""
    if isinstance(d, LogUniform):
        return tune.loguniform(d.low, d.high) if d.low < d.high else d.low
    if isinstance(d, Uniform):
        return tune.uniform(d.low, d.high) if d.low < d.high else d.low
    if isinstance(d, IntRange):
        return tune.randint(d.low, d.high + 1)
    if isinstance(d, Choice):
        return tune.choice(list(d.options))
    return d


def optuna_space(space: dict) -> dict:
    """The searched hyper-parameters as Optuna distributions: loguniform -> a log float, uniform -> a float,
    randint -> an int (both ends included, as here), choice -> a categorical."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    def one(d):
        if isinstance(d, LogUniform):
            return FloatDistribution(d.low, d.high, log=True)
        if isinstance(d, Uniform):
            return FloatDistribution(d.low, d.high)
        if isinstance(d, IntRange):
            return IntDistribution(d.low, d.high)
        return CategoricalDistribution(list(d.options))

    return {name: one(d) for name, d in searched(space).items()}


def fixed_values(space: dict) -> dict:
    """The space's hyper-parameters that are not searched, at their values (Tune adds them to every config)."""
    varied = searched(space)
    return {name: tune_domain(d) for name, d in space.items() if name not in varied}


def make_search(
    settings: TuneSettings, space: dict, metric: str, mode: str, concurrency: int, warm: Optional[SearchHistory] = None
) -> SearchPlan:
    """The searcher for `settings.search` over the problem's typed `space`, at most `concurrency` trials at once.

    The bound lives on the searcher: Tune ignores TuneConfig.max_concurrent_trials when given a searcher.
    """
    if settings.search == "grid":
        axes = grid_axes(space)  # refuses continuous domains
        param_space = {**fixed_values(space), **{name: tune.grid_search(v) for name, v in axes.items()}}
        trials = 1
        for values in axes.values():
            trials *= len(values)
        return SearchPlan(
            BasicVariantGenerator(random_state=settings.seed, max_concurrent=concurrency), param_space, 1, trials
        )
    if settings.search == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        warm = warm or SearchHistory()
        dims = optuna_space(space)
        searcher: Searcher = OptunaSearch(
            space=dims,
            metric=metric,
            mode=mode,
            sampler=optuna.samplers.TPESampler(seed=settings.seed),
            # A warm start: the earlier trials enter the study as completed trials with their scores.
            points_to_evaluate=[{k: p[k] for k in dims} for p in warm.points] or None,
            evaluated_rewards=list(warm.scores) or None,
        )
        return SearchPlan(
            ConcurrencyLimiter(searcher, max_concurrent=max(1, concurrency)),
            fixed_values(space),
            settings.num_samples,
            settings.num_samples,
        )
    return SearchPlan(
        BasicVariantGenerator(random_state=settings.seed, max_concurrent=concurrency),
        {name: tune_domain(d) for name, d in space.items()},
        settings.num_samples,
        settings.num_samples,
    )
