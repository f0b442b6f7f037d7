"""The local Ray cluster a local run's Ray tasks share, started once per process like the remote one.

Without the dashboard, with the environment the workers need (this project importable, the
driver's non-secret settings) and a setup hook that quiets their logs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from compat.ray import TOKEN_AUTH_NOTICE_LOGGER

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Environment variables handed to local Ray workers when set in the driver (never secrets).
FORWARDED_ENV = ("DVC_SITE_CACHE_DIR", "DVC_NO_ANALYTICS", "AWS_ENDPOINT_URL", "FLYTE_AWS_ENDPOINT")

# Local only. Ray Train's preemption watcher watches for Kubernetes node loss through the
# dashboard's state API, which a local cluster runs without (start-up time): it would only log
# errors. Its controller checks on the workers every 2 s, which adds up to 2 s after the last epoch.

LOCAL_RAY_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}


def local_worker_env() -> dict[str, str]:
    """What local Ray workers need: this project importable, and the driver's non-secret settings."""
    env = dict(LOCAL_RAY_ENV)
    env.update({name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)})
    paths = [str(PROJECT_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def init_local_ray(num_cpus: Optional[int] = None) -> None:
    """Start (once per process) the local Ray cluster that local Ray tasks share."""
    import ray

    if ray.is_initialized():
        return
    # Ray 2.60 turns on token auth for a new local cluster and says so in a WARNING at every start (set
    # RAY_AUTH_MODE to choose); the setting is kept, the notice is dropped from the run's output.
    notice = logging.getLogger(TOKEN_AUTH_NOTICE_LOGGER)
    level = notice.level
    notice.setLevel(logging.ERROR)
    try:
        _start(ray, num_cpus)
    finally:
        notice.setLevel(level)


def _start(ray, num_cpus: Optional[int]) -> None:
    ray.init(
        # "local": always a new cluster of this process's own. Without an address Ray would join a
        # cluster that `ray start` left on the machine (another run's, a test's) instead.
        address="local",
        num_cpus=num_cpus,
        include_dashboard=False,
        # The hook is named by module path, so a worker imports only that small module (not flytekit).
        runtime_env={
            "env_vars": local_worker_env(),
            "worker_process_setup_hook": "tasks.ray_glue.worker_setup.quiet_local_worker_logs",
        },
        logging_level="WARNING",
        log_to_driver=True,
    )
