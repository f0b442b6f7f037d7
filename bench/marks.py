"""Timestamped events from any process of a run, appended to one JSON-lines file.

The file is named by the environment variable BENCH_MARKS, which every process of a run
inherits (the workflow driver, the Ray workers it starts, the Ray Train controller). Lines are
small single writes to a file opened in append mode, so processes do not interleave them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ENV = "BENCH_MARKS"


def mark(event: str, **fields) -> None:
    """Record `event` now (wall clock), if this process belongs to a benchmarked run."""
    path = os.environ.get(ENV)
    if not path:
        return
    line = json.dumps({"t": time.time(), "pid": os.getpid(), "ev": event, **fields}, default=str)
    with open(path, "a") as f:
        f.write(line + "\n")


def read_marks(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    marks = []
    for line in path.read_text().splitlines():
        try:
            marks.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a killed process
    return sorted(marks, key=lambda m: m["t"])
