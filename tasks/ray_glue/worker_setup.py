"""Ray `worker_process_setup_hook` for local runs. Imports only `logging` and `os`: every Ray worker runs it.

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

QUIET_LOGGERS = (
    "ray.train.v2._internal.execution.controller.placement_group_cleaner",
    # The Train controller's resource request to the autoscaling coordinator times out on a busy machine and
    # logs a WARNING with a traceback ("safe to ignore ... CPU being overloaded"); a local cluster never
    # autoscales, so the request has no one to read it.
    "ray.train.v2._internal.execution.scaling_policy.autoscaling_coordinator_client",
)


def quiet_local_worker_logs() -> None:
    """Drop the warnings above, keep errors."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    import ray  # already imported: this runs inside a Ray worker

    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
