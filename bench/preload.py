"""Does preloading torch in Ray's workers cut the train task's start-up? (issue 15, point 2: tried, not kept)

    python -m bench.preload            # run_train, 1 epoch on 2 workers, with and without preloading

Each variant is its own process and local Ray cluster (`tasks.clusters.init_local_ray`, as a local
run starts it), on the embedded digits: without preloading, and with Ray's `preload_python_modules`
setting (`RAY_preload_python_modules`) importing torch and ray.train.torch in every worker Ray
starts. Prints one JSON line per variant (ray.init, run_train and its non-epoch part).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRELOAD = "torch,ray.train.torch"


def variant() -> dict:
    import ray

    from tasks.clusters import init_local_ray
    from tasks.data import make_splits
    from tasks.problem import complete, load_problem
    from tasks.ray_train import run_train
    from tasks.settings import TrainSettings

    problem = load_problem("digits")
    data = make_splits(problem.load_default(), problem, seed=0)
    t = time.time()
    init_local_ray()
    init_s = time.time() - t
    storage = tempfile.mkdtemp(prefix="preload-")
    t = time.time()
    result = run_train(ray.put(data), "digits", complete(problem, {}), TrainSettings(epochs=1, num_workers=2),
                       Path(storage) / "model", storage)
    run_s = time.time() - t
    epochs_s = sum(h["epoch_time_s"] for h in result.history)
    ray.shutdown()
    return {"preload": os.environ.get("RAY_preload_python_modules", ""), "ray_init_s": round(init_s, 2),
            "run_train_s": round(run_s, 2), "non_epoch_s": round(run_s - epochs_s, 2)}


def main() -> None:
    if sys.argv[1:] == ["variant"]:
        print("VARIANT " + json.dumps(variant()), flush=True)
        return
    for preload in ("", PRELOAD):
        env = {**os.environ, **({"RAY_preload_python_modules": preload} if preload else {})}
        out = subprocess.run([sys.executable, "-m", "bench.preload", "variant"], env=env, capture_output=True, text=True,
                             timeout=600)
        line = next((l for l in out.stdout.splitlines() if l.startswith("VARIANT ")), None)
        print(line[len("VARIANT "):] if line else json.dumps({"preload": preload, "error": out.stderr[-2000:]}), flush=True)


if __name__ == "__main__":
    main()
