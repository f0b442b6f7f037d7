"""A Ray Train callback that marks each reported epoch; pickled by value into the controller.

Self-contained on purpose (no import of `bench`): the Ray Train controller runs in its own
process and needs nothing but this module's code and the BENCH_MARKS variable it inherits.
"""

from __future__ import annotations

import json
import os
import time

from ray.train import UserCallback


class MarkEpochs(UserCallback):
    def after_report(self, run_context, metrics, checkpoint):
        path = os.environ.get("BENCH_MARKS")
        if not path:
            return
        epoch = next((m.get("epoch") for m in metrics if isinstance(m, dict) and "epoch" in m), None)
        line = json.dumps(
            {
                "t": time.time(),
                "pid": os.getpid(),
                "ev": "train_report",
                "epoch": epoch,
                "checkpoint": checkpoint is not None,
            }
        )
        with open(path, "a") as f:
            f.write(line + "\n")
