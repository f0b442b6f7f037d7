"""The benchmark harness end to end at its quick size, so it cannot rot.

Runs `python -m bench` with BENCH_QUICK=1 (every benchmark at a tiny size: the workflow through
pyflyte, the pure-compute replay, plain DDP, the bridge against moto's S3, the rebuilt peer
`dvc exp run` pipeline, one tiny cost-curve point) into a temp output dir, and checks the one JSON
line it ends with: the headline ratio keys, each a finite number computed from the figures beside it.
Targets are never asserted: figures depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT_ROOT

RATIOS = (
    "overhead_ratio_smoke",
    "overhead_ratio_tutorial",
    "tune_task_ratio",
    "train_task_ratio",
    "ddp_throughput_ratio",
    "bridge_throughput_ratio",
    "bridge_fixed_s",
    "pss_ratio_vs_rebuilt_peer",
)
HEADLINE = (
    "overhead_s",
    "wall_ratio_vs_rebuilt_peer",
    "tutorial_size_wall_s",
    "tutorial_size_accuracy",
    "train_throughput_ratio",
    "peak_pss_gib",
)


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.slow
def test_quick_bench_prints_the_ratios_and_every_section(tmp_path):
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUT": str(tmp_path / "out")}
    proc = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert list(figures)[: len(RATIOS)] == list(RATIOS), list(
        figures
    )  # the interface a checker reads: the ratios first
    for key in RATIOS + HEADLINE:
        assert number(figures.get(key)), (key, figures.get(key), proc.stdout[-3000:])
    for key in RATIOS:
        if key != "bridge_fixed_s":
            assert figures[key] > 0, (key, figures[key])
    # each ratio is the quotient of the absolute figures printed beside it (quick: the tutorial size is the quick run)
    assert figures["overhead_ratio_smoke"] == pytest.approx(figures["smoke_wall_s"] / figures["smoke_pure_s"], abs=2e-3)
    assert figures["overhead_ratio_tutorial"] == figures["overhead_ratio_smoke"]
    assert figures["tune_task_ratio"] == pytest.approx(figures["tune_task_s"] / figures["tune_pure_s"], abs=2e-3)
    assert figures["train_task_ratio"] == pytest.approx(figures["train_task_s"] / figures["train_pure_s"], abs=2e-3)
    assert figures["ddp_throughput_ratio"] == pytest.approx(
        figures["ddp_samples_per_s"] / figures["plain_same_threads_samples_per_s"], abs=2e-3
    )
    assert figures["pss_ratio_vs_rebuilt_peer"] == pytest.approx(
        figures["peak_pss_gib_tutorial"] / figures["rebuilt_peer_peak_pss_gib"], abs=2e-3
    )
    assert 0 < figures["tutorial_size_accuracy"] <= 1
    assert figures["peak_pss_gib"] > 0.1, "a workflow with a Ray cluster holds far more than 100 MB"

    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["ratios"] == {k: figures[k] for k in RATIOS}
    assert results["headline"] == {k: figures[k] for k in HEADLINE}
    assert set(results["targets"]) == set(RATIOS) and all(
        t["met"] in (True, False) for t in results["targets"].values()
    )
    phases = results["e2e"]["phases_s"]
    assert phases["ray_start"] > 0 and phases["tune"] > 0 and phases["train"] > 0 and phases["bridge"] > 0, phases
    assert results["rebuilt_peer"]["returncode"] == 0 and set(results["rebuilt_peer"]["stages_s"]) >= {"tune", "train"}
    assert [row["size_mb"] for row in results["bridge"]["sizes"]] == [1, 4, 16]
    # the protocol of 2026-12-01: test scored once, validation beside it, for ours, the replay and the rebuilt peer
    for where in (results["e2e"]["experiment"], results["pure"]["train"], results["rebuilt_peer"]):
        assert 0 < where["accuracy"] <= 1 and 0 < where["val_accuracy"] <= 1, where
    assert figures["tutorial_size_accuracy"] == results["e2e"]["experiment"]["run_info"]["test"]["test/accuracy"]
    split = results["throughput"]["batch_split"]  # what splitting the global batch costs: figures, not a pass/fail
    assert (
        split["plain_ddp_split_steady_samples_per_s"] > 0
        and split["plain_ddp_full_per_worker_steady_samples_per_s"] > 0
    )
    assert split["allreduces_per_epoch"]["split"] > split["allreduces_per_epoch"]["full_per_worker"]

    # the train task's overhead parts (from the marks): every part found, the per-epoch checkpoints counted
    parts = results["train_overhead_parts"]["default"]
    for key in (
        "worker_group_start_s",
        "worker_imports_s",
        "ddp_init_s",
        "checkpoint_write_s_sum",
        "last_report_to_fit_end_s",
        "result_copy_out_s",
    ):
        assert number(parts[key]) and parts[key] >= 0, (key, parts)
    assert number(parts["controller_polling_s_sum"]), (
        parts
    )  # seen by the controller - last rank back: a latency, its sign not assumed
    epochs = results["e2e"]["size"]["train"]["epochs"]
    assert results["e2e"]["train_parts"]["checkpoint_reports"] == epochs + 1  # one a epoch, one with the test scores
    assert parts["worker_group_start_s"] + parts["worker_imports_s"] < results["e2e"]["train"]["fit_s"]

    # the cost curves' tiny point: every axis plotted from a point that ran tune and train on grown data
    curves = json.loads(Path(results["curves"]["curves_json"]).read_text())
    assert set(curves["curves"]) == {"trials", "data", "workers", "epochs"} and results["curves"]["failed"] == 0
    point = curves["curves"]["data"][0]
    assert point["returncode"] == 0 and sum(point["splits"].values()) == point["config"]["n"], point
    assert (
        point["tune_trials"] == point["config"]["trials"] and len(point["train_epoch_s"]) == point["config"]["epochs"]
    )
    assert point["peak_pss_gib"] > 0.1
    for png in curves["plots"]:
        assert (
            Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(tmp_path) in png
        )  # quick mode never overwrites bench/curves
