"""Ray `worker_process_setup_hook` for local runs. Imports only `logging`, `os` and logger names: every Ray worker runs it.

Ray Train's placement-group cleaner watches the controller through the dashboard's state API,
which a local cluster runs without (start-up time); its warning every second says only that. Its
controller's requests to an autoscaler that a local cluster does not have warn on a busy machine.

The state API finds its cluster by address; with none given it looks for Ray processes on the
machine, and with another run's Ray there too it fails ("Found multiple active Ray instances", a
traceback in the run's log) or watches the wrong cluster. Each worker is told its own cluster.
"""

from __future__ import annotations

import logging
import os

from compat.ray import AUTOSCALING_CLIENT_LOGGER, PLACEMENT_GROUP_CLEANER_LOGGER

# The Train controller's resource request to the autoscaling coordinator times out on a busy machine and logs a
# WARNING with a traceback ("safe to ignore ... CPU being overloaded"); a local cluster never autoscales, so the
# request has no one to read it.
QUIET_LOGGERS = (PLACEMENT_GROUP_CLEANER_LOGGER, AUTOSCALING_CLIENT_LOGGER)


def quiet_local_worker_logs() -> None:
    """Drop the warnings above, keep errors."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    import ray  # already imported: this runs inside a Ray worker

    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
