"""Ray `worker_process_setup_hook` for local runs. Imports only `logging` and a logger name: every Ray worker runs it.

Ray Train's placement-group cleaner watches the controller through the dashboard's state API,
which a local cluster runs without (start-up time); its warning every second says only that.
"""

from __future__ import annotations

import logging

from compat.ray import PLACEMENT_GROUP_CLEANER_LOGGER

QUIET_LOGGERS = (PLACEMENT_GROUP_CLEANER_LOGGER,)


def quiet_local_worker_logs() -> None:
    """Drop the warnings above, keep errors."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
