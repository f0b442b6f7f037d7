"""Runs `pyflyte run workflows/tune_train.py tune_train_wf ARGS...` for many bad inputs in one process.

The real pyflyte command (its click entry point), one invocation per case, so the imports are paid
once. After each case it records whether a Ray cluster was started in this process.

    python bad_input_batch.py CASES.json RESULTS.json     # CASES: [{"id", "args", "cwd"}]
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import psutil
from click.testing import CliRunner
from flytekit.clis.sdk_in_container.pyflyte import main

WORKFLOW = str(Path(__file__).resolve().parents[2] / "workflows" / "tune_train.py")


def ray_started() -> bool:
    ray = sys.modules.get("ray")
    children = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
    return bool((ray and ray.is_initialized()) or any("raylet" in c or "gcs_server" in c for c in children))


if __name__ == "__main__":
    cases = json.loads(Path(sys.argv[1]).read_text())
    results = {}
    for case in cases:
        os.chdir(case["cwd"])
        started = time.monotonic()
        result = CliRunner().invoke(main, ["run", WORKFLOW, "tune_train_wf", *case["args"]])
        error = "".join(traceback.format_exception(result.exception)) if result.exception else ""
        results[case["id"]] = {
            "exit_code": result.exit_code,
            "output": result.output + error,
            "seconds": round(time.monotonic() - started, 2),
            "ray_started": ray_started(),
        }
    Path(sys.argv[2]).write_text(json.dumps(results, indent=1))
