"""Ray's private names the project uses (read from ray 2.60.0). Importing this module imports nothing of Ray:
`tasks.ray_glue.worker_setup`, which every Ray worker runs, reads a logger name from here."""

from __future__ import annotations

import importlib
import logging

from compat import Use, require

# Ray Train V2's placement-group cleaner logs a traceback when its controller is gone at shutdown (a run's
# normal end); the project's worker hook raises this logger to ERROR+ in local runs.
PLACEMENT_GROUP_CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
# The Train controller's resource request to the autoscaling coordinator times out on a busy machine and logs a
# WARNING with a traceback; a local cluster never autoscales. Quieted in local runs too.
AUTOSCALING_CLIENT_LOGGER = "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client"
# Where Ray 2.60 logs "Token authentication is enabled for this Ray cluster" at every local start.
TOKEN_AUTH_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"
_TRAIN_CONTEXT = "ray.train.v2._internal.execution.context"
_RUNTIME_ENV_PACKAGING = "ray._private.runtime_env.packaging"


def quiet_train_report_logs() -> None:
    """Drop Ray Train's INFO line per `report()` (pages of dicts); rank 0 prints one line per epoch.

    Ray 2.60 logs it through a logger named after the module's file path, which escapes
    `RunConfig(logging_config=...)`; only that logger is raised to WARNING.
    """
    context = importlib.import_module(_TRAIN_CONTEXT)
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def working_dir_cap_bytes() -> int:
    """The largest `working_dir` Ray uploads (its GCS message cap): what a remote run's code archive must stay under."""
    packaging = importlib.import_module(_RUNTIME_ENV_PACKAGING)
    require(hasattr(packaging, "GCS_STORAGE_MAX_SIZE"), "packaging.GCS_STORAGE_MAX_SIZE", "ray")
    return int(packaging.GCS_STORAGE_MAX_SIZE)


def optuna_study(search_alg):
    """The Optuna study behind Ray Tune's `OptunaSearch` (its `_ot_study`): tests read the trials it was seeded with
    and the points it drew. No public accessor exists in Ray 2.60."""
    searcher = getattr(search_alg, "searcher", search_alg)  # through a ConcurrencyLimiter
    require(hasattr(searcher, "_ot_study"), "OptunaSearch._ot_study", "ray")
    return searcher._ot_study


def _check_optuna_study() -> None:
    import importlib

    optuna_search = importlib.import_module("ray.tune.search.optuna").OptunaSearch
    import optuna

    search = optuna_search(space={"x": optuna.distributions.FloatDistribution(0, 1)}, metric="m", mode="max")
    require(optuna_study(search) is not None, "OptunaSearch._ot_study", "ray")


def memory_summary(address: str) -> str:
    """The object store's use and spilled bytes as `ray memory --stats-only` prints them: the benchmark's one way to
    read them (`ray._private.internal_api.memory_summary`; the state API has no store figures)."""
    internal = importlib.import_module("ray._private.internal_api")
    require(hasattr(internal, "memory_summary"), "ray._private.internal_api.memory_summary", "ray")
    return internal.memory_summary(address=address, stats_only=True)


def _check_memory_summary() -> None:
    internal = importlib.import_module("ray._private.internal_api")
    require(callable(getattr(internal, "memory_summary", None)), "internal_api.memory_summary", "ray")


def _check_module(name: str):
    def check() -> None:
        importlib.import_module(name)

    return check


USES = (
    Use(
        PLACEMENT_GROUP_CLEANER_LOGGER,
        "the logger of a shutdown-time traceback, quieted in local runs",
        "ray 2.60.0",
        _check_module(PLACEMENT_GROUP_CLEANER_LOGGER),
    ),
    Use(
        AUTOSCALING_CLIENT_LOGGER,
        "a busy machine's autoscaling-request traceback, quieted in local runs",
        "ray 2.60.0",
        _check_module(AUTOSCALING_CLIENT_LOGGER),
    ),
    Use(
        TOKEN_AUTH_NOTICE_LOGGER,
        "the token-auth notice at every local start, quieted (the setting is kept)",
        "ray 2.60.0",
        _check_module(TOKEN_AUTH_NOTICE_LOGGER),
    ),
    Use("ray.tune.search.optuna.OptunaSearch._ot_study", optuna_study.__doc__, "ray 2.60.0", _check_optuna_study),
    Use(_TRAIN_CONTEXT, quiet_train_report_logs.__doc__, "ray 2.60.0", quiet_train_report_logs),
    Use("ray._private.internal_api.memory_summary", memory_summary.__doc__, "ray 2.60.0", _check_memory_summary),
    Use(
        f"{_RUNTIME_ENV_PACKAGING}.GCS_STORAGE_MAX_SIZE",
        working_dir_cap_bytes.__doc__,
        "ray 2.60.0",
        working_dir_cap_bytes,
    ),
)
