"""A Ray Train worker of a problem that trains itself SIGKILLed after the first checkpoint: the LightningModule resumes
`fit` from the checkpoint's Lightning state, the plain loop from `ctx.resume`; each epoch once, DVCLive steps once
each, the learning-rate schedule continued from its state."""

from __future__ import annotations

import csv
import json

import pytest
import ray
import torch
from test_train_worker_killed import WorkerKiller

from tasks.problem import complete, load_problem
from tasks.ray_glue.train import run_train
from tasks.training.loop import make_loader
from tasks.training.settings import TrainSettings

EPOCHS = 3


@pytest.mark.slow
@pytest.mark.parametrize("ref", ["examples.lightning_digits:PROBLEM", "examples.custom_loop:PROBLEM"])
def test_worker_killed_resumes_from_the_last_checkpoint(tmp_path, ray_cluster, digits, ref):
    storage = tmp_path / "ray"
    storage.mkdir()
    killer = WorkerKiller(storage)
    killer.start()
    problem = load_problem(ref)
    hp = complete(problem, {"batch_size": 64})
    outcome = run_train(
        ray.put(digits),
        ref,
        hp,
        TrainSettings(epochs=EPOCHS, num_workers=2, max_failures=2),
        tmp_path / "out",
        str(storage),
    )
    killer.join(60)

    assert not killer.error, killer.error
    assert killer.victim is not None and killer.replacements, "no worker was killed and replaced"
    assert killer.registered_at_kill == 1, "the kill must land after checkpoint 1 and before checkpoint 2"
    assert [m["epoch"] for m in outcome.history] == list(range(1, EPOCHS + 1))
    assert outcome.history[0] == killer.checkpoint_history[0], "epoch 1 comes from the checkpoint, not a re-run"
    lrs = [m["lr"] for m in outcome.history]
    assert lrs[0] > lrs[1] > lrs[2] >= 0, lrs  # the schedule continued from its state, not restarted at epoch 2
    for tsv in (outcome.live_dir / "plots" / "metrics").rglob("*.tsv"):
        with tsv.open() as f:
            assert [int(r["step"]) for r in csv.DictReader(f, delimiter="\t")] == list(range(EPOCHS)), tsv.name
    summary = json.loads((outcome.live_dir / "metrics.json").read_text())
    assert summary["test"]["accuracy"] == pytest.approx(outcome.test["test/accuracy"])

    model = problem.build_model(hp)
    model.load_state_dict(torch.load(outcome.model_path, weights_only=True))
    model.eval()
    with torch.no_grad():
        right = sum(
            int((model(x).argmax(1) == y).sum())
            for x, y in make_loader(digits.x_test, digits.y_test, 512, shuffle=False)
        )
    assert right / len(digits.y_test) == pytest.approx(outcome.test["test/accuracy"], abs=1e-6)
    assert outcome.test["test/accuracy"] > 0.8
