"""Memory bounded, and proven: Ray Train streams Parquet data four times the object store it is given
through two epochs, every training row each epoch, with the store's peak use under its size and nothing spilled.

Scaled down from the issue's example (a 300 MiB store and 2 GB of Parquet) to a 100 MiB store and 400 MiB
of Parquet, the same 4x ratio, so that it runs in minutes on 2 shared cores. One fresh process (its own
Ray with that store), the run and the sampling of `bench.streaming`.
"""

from __future__ import annotations

import pytest

from bench.streaming import MIB, WIDE, run_child, write_wide
from tasks.data.shards import iter_samples, resolve

STORE_MIB = 100


@pytest.mark.slow
def test_streaming_trains_on_data_four_times_the_object_store(tmp_path):
    data = tmp_path / "wide"
    rows = write_wide(data, 4 * STORE_MIB * MIB)
    manifest = resolve(str(data), WIDE, "bench.streaming:WIDE")
    train_rows = sum(len(y) for _, y in iter_samples(manifest, WIDE, "train", 4096))
    result = run_child(data, STORE_MIB, timeout=1500)
    assert result["data_mib"] >= 4 * STORE_MIB, result
    assert result["rows"] == rows
    assert result["epochs"] == 2
    assert result["train_rows_per_epoch"] == [train_rows, train_rows], result  # all of train, each epoch
    assert 0 < result["peak_store_mib"] <= STORE_MIB, result  # the store was used, and held a fraction of the data
    assert result["spilled_mib"] == 0, result  # backpressure, not spilling, bounded it
    assert result["test"]["test/accuracy"] > 0.9, result  # the label is a function of the features: learnable
