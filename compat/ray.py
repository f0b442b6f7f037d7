"""Ray's private names the project uses (read from ray 2.60.0). Importing this module imports nothing of Ray:
`tasks.ray_glue.worker_setup`, which every Ray worker runs, reads a logger name from here."""

from __future__ import annotations

import importlib
import logging

from compat import Use, require

# Ray Train V2's placement-group cleaner logs a traceback when its controller is gone at shutdown (a run's
# normal end); the project's worker hook raises this logger to ERROR+ in local runs.
PLACEMENT_GROUP_CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
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
    Use(_TRAIN_CONTEXT, quiet_train_report_logs.__doc__, "ray 2.60.0", quiet_train_report_logs),
    Use(
        f"{_RUNTIME_ENV_PACKAGING}.GCS_STORAGE_MAX_SIZE",
        working_dir_cap_bytes.__doc__,
        "ray 2.60.0",
        working_dir_cap_bytes,
    ),
)
