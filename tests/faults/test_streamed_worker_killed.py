"""The streaming path under a worker kill: a Ray Train worker SIGKILLed after checkpoint 1 while it streams
Parquet shards through Ray Data; training resumes from the checkpoint, epochs once each, DVCLive steps once each."""

from __future__ import annotations

import json

import pytest
from test_train_worker_killed import EPOCHS, WorkerKiller, _tsv_steps

from tasks.data.shard_writer import write_shards
from tasks.data.shards import resolve
from tasks.problem import complete, load_problem
from tasks.ray_glue.train import run_train
from tasks.training.settings import TrainSettings

DIGITS = load_problem("digits")


@pytest.mark.slow
def test_streamed_train_worker_killed_resumes_from_checkpoint(tmp_path, ray_cluster):
    write_shards(DIGITS, tmp_path / "shards", 4)
    manifest = resolve(str(tmp_path / "shards"), DIGITS)
    storage = tmp_path / "ray"
    storage.mkdir()
    killer = WorkerKiller(storage)
    killer.start()
    settings = TrainSettings(epochs=EPOCHS, num_workers=2, max_failures=2)
    hp = complete(DIGITS, {"lr": 0.05, "momentum": 0.9, "batch_size": 64})
    outcome = run_train(manifest, "digits", hp, settings, tmp_path / "out", str(storage))
    killer.join(60)

    assert not killer.error, killer.error
    assert killer.victim is not None and killer.replacements, "no worker was killed and replaced"
    assert killer.registered_at_kill == 1
    assert [m["epoch"] for m in outcome.history] == list(range(1, EPOCHS + 1))
    assert killer.checkpoint_history and outcome.history[0] == killer.checkpoint_history[0]
    root = outcome.live_dir / "plots" / "metrics"
    for tsv in sorted(root.rglob("*.tsv")):
        assert _tsv_steps(tsv) == list(range(EPOCHS)), f"{tsv.name}:\n{tsv.read_text()}"
    summary = json.loads((outcome.live_dir / "metrics.json").read_text())
    assert summary["step"] == EPOCHS - 1 and summary["test"]["accuracy"] > 0.8
