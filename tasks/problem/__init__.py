"""The problem interface: what a problem module imports (`from tasks.problem import Problem, Metric, ...`).

`interface` declares a problem and checks its values, `space` is the search-space format, `registry`
finds a problem by name. torch and numpy only; nothing of Flyte, Ray or DVC.
"""

from tasks.problem.interface import (
    BATCH_SIZE,
    HyperParam,
    Metric,
    Problem,
    ProblemError,
    Rows,
    Schema,
    check_domain,
    check_value,
    complete,
    defaults,
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
    "Rows",
    "Schema",
    "Uniform",
    "check_domain",
    "check_value",
    "complete",
    "defaults",
    "domain_spec",
    "load_problem",
    "metric_key",
    "parse_domain",
    "search_space",
    "smallest_batch",
    "space_document",
]
