"""Ray Train streams Parquet data four times the object store it is given through two epochs, every training
row each epoch; the store's peak use and the bytes spilled are measured (not yet bounded: see below).

Scaled down from the issue's example (a 300 MiB store and 2 GB of Parquet) to a 100 MiB store and 400 MiB
of Parquet, the same 4x ratio, so that it runs in minutes on 2 shared cores. One fresh process (its own
Ray with that store), the run and the sampling of `bench.streaming`, shared by the tests of this module.

Measured 2026-12-07: rows, epochs and accuracy hold; the store does NOT stay under its size at 4x: peak
105 MiB of 100, 138 MiB spilled (at 1x: peak 88 MiB, nothing spilled). No test claims the bound until it holds;
the figures are `python -m bench.streaming`'s (bench/README.md "Streaming").
"""

from __future__ import annotations

import json

import pytest

from bench.streaming import MIB, WIDE, run_child, write_wide
from tasks.data.shards import iter_samples, resolve

STORE_MIB = 100
WORKERS = 2


@pytest.fixture(scope="module")
def four_x(tmp_path_factory):
    data = tmp_path_factory.mktemp("wide") / "wide"
    rows = write_wide(data, 4 * STORE_MIB * MIB)
    manifest = resolve(str(data), WIDE, "bench.streaming:WIDE")
    train_rows = sum(len(y) for _, y in iter_samples(manifest, WIDE, "train", 4096))
    result = run_child(data, STORE_MIB, timeout=1500)
    print(json.dumps(result))  # the figures, with -s
    return rows, train_rows, result


@pytest.mark.slow
def test_streaming_trains_on_data_four_times_the_object_store(four_x):
    rows, train_rows, result = four_x
    assert result["data_mib"] >= 4 * STORE_MIB, result
    assert result["rows"] == rows
    assert result["epochs"] == 2
    # All of train each epoch, less the remainder Ray Train's equal split over the workers drops (< WORKERS rows).
    assert result["train_rows_per_epoch"] == [train_rows - train_rows % WORKERS] * 2, (train_rows, result)
    assert result["peak_store_mib"] > 0, result
    assert result["test"]["test/accuracy"] > 0.9, result  # the label is a function of the features: learnable
