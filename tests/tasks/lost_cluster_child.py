"""One attempt of the search on its own local Ray cluster, run as a process a test can lose whole.

    python lost_cluster_child.py STORAGE NUM_SAMPLES OUT_JSON
    python lost_cluster_child.py train STORAGE EPOCHS OUT_JSON

Searches problems_for_tests:COUNTED_DIGITS over the embedded digits, one trial at a time, with its
storage under STORAGE (a stored search there is resumed), and writes the trials table to OUT_JSON and
each trial's DVCLive directory (record_trials) under OUT_JSON.trials/.
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
    data = ray.put(make_splits(raw, problem, seed=0))
    outcome = run_tune(data, PROBLEM, settings, storage, concurrency=1, trials_live_dir=Path(f"{out}.trials"))
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


def train(storage: str, epochs: int, out: str) -> None:
    """Training of problems_for_tests:COUNTED_DIGITS, run name "train" in STORAGE (a stored run there resumes)."""
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="frdlost", dir="/tmp")
    import ray

    from dvc_bridge.live import LiveConfig
    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import complete, load_problem
    from tasks.ray_glue.local import init_local_ray
    from tasks.ray_glue.train import run_train
    from tasks.training.settings import TrainSettings

    problem = load_problem(PROBLEM)
    raw, _ = load_raw(parse_source(""), problem)
    init_local_ray(num_cpus=2)
    hp = complete(problem, {"lr": 0.05, "momentum": 0.9, "batch_size": 64})
    settings = TrainSettings(epochs=epochs, num_workers=2, max_failures=0)
    live = LiveConfig(mirror_uri=Path(f"{out}.mirror").absolute().as_uri())
    t0 = time.perf_counter()
    data = ray.put(make_splits(raw, problem, seed=0))
    outcome = run_train(data, PROBLEM, hp, settings, Path(f"{out}.d"), storage, live=live, run_name="train")
    Path(out).write_text(
        json.dumps(
            {
                "history": outcome.history,
                "test": outcome.test,
                "live_dir": str(outcome.live_dir),
                "seconds": time.perf_counter() - t0,
            }
        )
    )


if __name__ == "__main__":
    if sys.argv[1] == "train":
        train(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
