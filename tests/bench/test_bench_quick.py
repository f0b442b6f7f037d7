"""The benchmark harness end to end at its quick size, so it cannot rot.

Runs `python -m bench` with BENCH_QUICK=1 (every benchmark at a tiny size: the workflow through
pyflyte, the pure-compute replay, the bridge against moto's S3, the peer `dvc exp run` pipeline)
into a temp output dir, and checks the one JSON line it ends with. Figures are never asserted:
they depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from support import PROJECT_ROOT

HEADLINE = ("overhead_s", "peer_ratio", "tutorial_size_wall_s", "tutorial_size_accuracy", "train_throughput_ratio",
            "bridge_throughput_ratio", "bridge_fixed_s", "peak_pss_gib")


@pytest.mark.slow
def test_quick_bench_prints_every_headline_figure(tmp_path):
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUT": str(tmp_path / "out")}
    proc = subprocess.run([sys.executable, "-m", "bench"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    for key in HEADLINE:
        value = figures.get(key)
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value), (key, value, proc.stdout[-3000:])
    assert 0 < figures["tutorial_size_accuracy"] <= 1
    assert figures["peak_pss_gib"] > 0.1, "a workflow with a Ray cluster holds far more than 100 MB"

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["headline"] == {k: figures[k] for k in HEADLINE}
    phases = results["e2e"]["phases_s"]
    assert phases["ray_start"] > 0 and phases["tune"] > 0 and phases["train"] > 0 and phases["bridge"] > 0, phases
    assert results["peer"]["returncode"] == 0 and set(results["peer"]["stages_s"]) >= {"tune", "train"}
    assert [row["size_mb"] for row in results["bridge"]["sizes"]] == [1, 4, 16]
    # the protocol of 2026-12-01: test scored once, validation beside it, for ours, the replay and the peer
    for where in (results["e2e"]["experiment"], results["pure"]["train"], results["peer"]):
        assert 0 < where["accuracy"] <= 1 and 0 < where["val_accuracy"] <= 1, where
    assert figures["tutorial_size_accuracy"] == results["e2e"]["experiment"]["run_info"]["test"]["test/accuracy"]
    split = results["throughput"]["batch_split"]  # what splitting the global batch costs: figures, not a pass/fail
    assert split["plain_ddp_split_steady_samples_per_s"] > 0 and split["plain_ddp_full_per_worker_steady_samples_per_s"] > 0
    assert split["allreduces_per_epoch"]["split"] > split["allreduces_per_epoch"]["full_per_worker"]
