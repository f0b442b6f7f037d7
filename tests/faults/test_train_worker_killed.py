"""A Ray Train worker process SIGKILLed mid-epoch: training resumes from the last checkpoint, nothing lost or doubled."""

from __future__ import annotations

import csv
import json
import signal
import threading
import time
from pathlib import Path

import pytest
import ray
import torch
from support import own_processes

from tasks.problem import complete, load_problem
from tasks.ray_glue.train import STATE_FILE, run_train
from tasks.training.loop import evaluate, make_loader
from tasks.training.settings import TrainSettings

EPOCHS = 3
DIGITS = load_problem("digits")
WORKER = "RayTrainWorker"


class WorkerKiller(threading.Thread):
    """Waits until Ray Train has registered the first checkpoint, then SIGKILLs one training worker.

    "Registered" is read from Ray Train's own checkpoint-manager snapshot in the run's storage,
    written by the controller once a reported checkpoint is persisted: that is the event. The
    workers carry on into the next epoch as soon as they have reported, so the kill lands after
    checkpoint 1 and before checkpoint 2 (the test asserts both), wherever in between it falls.
    """

    def __init__(self, storage: Path) -> None:
        super().__init__(daemon=True)
        self.storage = storage
        self.victim: int | None = None
        self.checkpoint_history: list[dict] = []  # what the registered checkpoint holds
        self.registered_at_kill = 0
        self.replacements: set[int] = set()  # worker pids seen after the kill
        self.error: str = ""

    def _snapshot(self) -> dict:
        found = list(self.storage.glob("*/checkpoint_manager_snapshot.json"))
        return json.loads(found[0].read_text()) if found else {}

    def run(self) -> None:
        try:
            deadline = time.time() + 300
            while not self._snapshot().get("checkpoint_results"):
                if time.time() > deadline:
                    self.error = "no checkpoint was registered"
                    return
                time.sleep(0.05)  # polling the file Ray Train writes (no notification exists)
            snapshot = self._snapshot()
            self.registered_at_kill = len(snapshot["checkpoint_results"])
            checkpoint = Path(snapshot["checkpoint_results"][-1]["checkpoint_dir_name"])
            run_dir = next(self.storage.glob("*/checkpoint_manager_snapshot.json")).parent
            self.checkpoint_history = json.loads((run_dir / checkpoint / STATE_FILE).read_text())["history"]
            workers = own_processes(WORKER)
            victim = min(workers, key=lambda p: p.pid)
            before = {p.pid for p in workers}
            victim.send_signal(signal.SIGKILL)
            self.victim = victim.pid
            while time.time() < deadline and not self.replacements:
                self.replacements = {p.pid for p in own_processes(WORKER)} - before
                time.sleep(0.1)
        except Exception as e:  # reported by the test
            self.error = f"{type(e).__name__}: {e}"


def _tsv_steps(path: Path) -> list[int]:
    with path.open() as f:
        return [int(row["step"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.mark.slow
def test_train_worker_killed_mid_epoch_resumes_from_checkpoint(tmp_path, ray_cluster, digits):
    """SIGKILL of a DDP worker after checkpoint 1: one restart, epochs 1..N once each, DVCLive steps 0..N-1 once each."""
    storage = tmp_path / "ray"
    storage.mkdir()
    killer = WorkerKiller(storage)
    killer.start()
    settings = TrainSettings(epochs=EPOCHS, num_workers=2, max_failures=2)
    hp = complete(DIGITS, {"lr": 0.05, "momentum": 0.9, "batch_size": 64})
    outcome = run_train(ray.put(digits), "digits", hp, settings, tmp_path / "out", str(storage))
    killer.join(60)

    assert not killer.error, killer.error
    assert killer.victim is not None, "no worker was killed"
    assert killer.registered_at_kill == 1, "the kill must land after checkpoint 1 and before checkpoint 2"
    assert killer.replacements, "Ray Train did not start a new worker group"

    # Epochs 1..N exactly once; epoch 1 comes from the checkpoint taken before the kill, not a re-run.
    assert [m["epoch"] for m in outcome.history] == list(range(1, EPOCHS + 1))
    assert killer.checkpoint_history and outcome.history[0] == killer.checkpoint_history[0]

    # DVCLive: one row per epoch in every metric's history, steps 0..N-1, and a summary at the last step.
    root = outcome.live_dir / "plots" / "metrics"
    tsvs = sorted(root.rglob("*.tsv"))
    assert {str(p.relative_to(root).with_suffix("")) for p in tsvs} >= {"val/accuracy", "val/loss", "train/loss"}
    for tsv in tsvs:
        assert _tsv_steps(tsv) == list(range(EPOCHS)), f"{tsv.name}:\n{tsv.read_text()}"
    summary = json.loads((outcome.live_dir / "metrics.json").read_text())
    assert summary["step"] == EPOCHS - 1
    assert summary["val"]["accuracy"] == pytest.approx(outcome.final["val/accuracy"])
    assert summary["test"]["accuracy"] == pytest.approx(outcome.test["test/accuracy"])

    # The model is the one after the last epoch: it scores what the last epoch reported, and the test score.
    model = DIGITS.build_model(hp)
    model.load_state_dict(torch.load(outcome.model_path, weights_only=True))
    val = evaluate(model, make_loader(digits.x_val, digits.y_val, 512, shuffle=False), DIGITS).scores(DIGITS, "val")
    test = evaluate(model, make_loader(digits.x_test, digits.y_test, 512, shuffle=False), DIGITS).scores(DIGITS, "test")
    assert val["val/accuracy"] == pytest.approx(outcome.final["val/accuracy"], abs=1e-6)
    assert test["test/accuracy"] == pytest.approx(outcome.test["test/accuracy"], abs=1e-6)
    assert test["test/accuracy"] > 0.8
