"""Lever `light_setup_hook` (bench/launch.py): the project's Ray worker setup hook without its imports.

tasks.clusters.quiet_local_worker_logs only raises some loggers to ERROR, but as a function of
tasks.clusters every Ray worker process must import that module, hence flytekit and its plugins.
This stand-in does the same from a module that imports nothing but logging; the logger names
come from BENCH_QUIET_LOGGERS, which the driver sets before Ray starts (workers inherit it).
"""

import logging
import os


def quiet_local_worker_logs() -> None:
    for name in filter(None, os.environ.get("BENCH_QUIET_LOGGERS", "").split(",")):
        logging.getLogger(name).setLevel(logging.ERROR)
