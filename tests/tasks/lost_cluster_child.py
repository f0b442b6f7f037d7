"""One attempt of the search on its own local Ray cluster, run as a process a test can lose whole.

    python lost_cluster_child.py STORAGE NUM_SAMPLES OUT_JSON

Searches problems_for_tests:COUNTED_DIGITS over the embedded digits, one trial at a time, with its
storage under STORAGE (a stored search there is resumed), and writes the trials table to OUT_JSON.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

PROBLEM = "problems_for_tests:COUNTED_DIGITS"


def main(storage: str, num_samples: int, out: str) -> None:
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="frdlost", dir="/tmp")
    import ray

    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import load_problem
    from tasks.ray_glue.local import init_local_ray
    from tasks.ray_glue.tune import run_tune
    from tasks.training.settings import TuneSettings

    problem = load_problem(PROBLEM)
    raw, _ = load_raw(parse_source(""), problem)
    init_local_ray(num_cpus=1)
    settings = TuneSettings(num_samples=num_samples, max_epochs=1, grace_period=1, seed=0)
    t0 = time.perf_counter()
    outcome = run_tune(ray.put(make_splits(raw, problem, seed=0)), PROBLEM, settings, storage, concurrency=1)
    Path(out).write_text(
        json.dumps(
            {
                "trials": outcome.trials.to_dict("records"),
                "best": outcome.best,
                "best_score": outcome.best_score,
                "seconds": time.perf_counter() - t0,
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
