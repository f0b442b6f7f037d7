"""The problem interface: what a problem module imports (`from tasks.problem import Problem, Metric, ...`).

`interface` declares a problem and checks its values, `space` is the search-space format, `registry`
finds a problem by name. torch and numpy only; nothing of Flyte, Ray or DVC.
"""

from tasks.problem.interface import (
    BATCH_SIZE,
    Baseline,
    HyperParam,
    Metric,
    Problem,
    ProblemError,
    Schema,
    TorchMetric,
    check_domain,
    check_optimizer,
    check_value,
    complete,
    default_optimizer,
    defaults,
    fixed_by_space,
    metric_key,
    parse_domain,
    search_space,
    smallest_batch,
)
from tasks.problem.registry import BUILTIN, DEFAULT_PROBLEM, load_problem
from tasks.problem.space import (
    DOMAIN_KINDS,
    SPACE_HELP,
    Choice,
    Domain,
    IntRange,
    LogUniform,
    Uniform,
    domain_spec,
    space_document,
)

__all__ = [
    "BATCH_SIZE",
    "Baseline",
    "BUILTIN",
    "DEFAULT_PROBLEM",
    "DOMAIN_KINDS",
    "SPACE_HELP",
    "Choice",
    "Domain",
    "HyperParam",
    "IntRange",
    "LogUniform",
    "Metric",
    "Problem",
    "ProblemError",
    "Schema",
    "TorchMetric",
    "Uniform",
    "check_domain",
    "check_optimizer",
    "check_value",
    "complete",
    "default_optimizer",
    "defaults",
    "domain_spec",
    "load_problem",
    "metric_key",
    "parse_domain",
    "fixed_by_space",
    "search_space",
    "smallest_batch",
    "space_document",
]
