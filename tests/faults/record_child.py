"""Records one experiment in a process of its own, as the bridge task does (a test kills it on purpose).

python record_child.py URL NAME EXECUTION_ID WORKDIR
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout, for dvc_bridge and emulator
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support

from support import make_record  # noqa: E402

from dvc_bridge.bridge import record_experiment, resolve_target  # noqa: E402

if __name__ == "__main__":
    url, name, execution_id, workdir = sys.argv[1:5]
    os.environ["FRD_TEST_BRIDGE_PID"] = str(os.getpid())  # what the test's git hook kills
    workdir = Path(workdir)
    materials = make_record(workdir / "m", execution_id)  # same execution: same files, as a Flyte retry gets
    ref = record_experiment(resolve_target(url), name, materials, workdir / "w")
    print(json.dumps(asdict(ref)))
