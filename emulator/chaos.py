"""Losing a whole Ray cluster mid-task, as a spot reclaim or a drained node does on Kubernetes.

`--lose-cluster TASK:N` kills every process of the first attempt's RayJob (head, workers, the job driver on the
head) once the task has made N units of progress, read from what its Ray storage holds in the blob store:

* `train_model:N`: Ray Train's controller has registered the checkpoint of epoch N (the `latest_checkpoint_result`
  of `checkpoint_manager_snapshot.json`, written once a reported checkpoint is persisted);
* `tune_hyperparameters:N`: Tune's experiment state lists N finished trials (`TERMINATED`).

The attempt then fails as a lost RayJob fails on Flyte (no `error.pb`: a system error, retried within propeller's
system-retry budget) and the next attempt gets this one's checkpoint prefix as `--prev-checkpoint`.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from dataclasses import dataclass, field

import psutil

from emulator.blobstore import BlobStore

UNITS = {"train_model": "epoch", "tune_hyperparameters": "finished trials"}


@dataclass(frozen=True)
class ClusterLoss:
    task: str  # the task's short name: train_model or tune_hyperparameters
    after: int  # epochs or finished trials

    @classmethod
    def parse(cls, text: str) -> ClusterLoss:
        task, _, after = text.partition(":")
        if task not in UNITS or not after.isdigit() or int(after) < 1:
            raise ValueError(
                f"--lose-cluster {text!r}: use TASK:N with TASK one of {', '.join(UNITS)} and N >= 1 "
                "(train_model:2 loses the training's cluster after epoch 2's checkpoint)"
            )
        return cls(task, int(after))

    def matches(self, task_name: str) -> bool:
        return task_name.rsplit(".", 1)[-1] == self.task

    def progress(self, store: BlobStore, prefix: str) -> int:
        """Epochs checkpointed (training) or trials finished (search) in the Ray storage under `prefix`."""
        if self.task == "train_model":
            done = 0
            for uri in store.keys(prefix):
                if uri.endswith("/checkpoint_manager_snapshot.json"):
                    latest = json.loads(store.get(uri)).get("latest_checkpoint_result") or {}
                    done = max(done, int(latest.get("metrics", {}).get("epoch", 0)))
            return done
        finished = set()
        for uri in store.keys(prefix):
            if uri.rsplit("/", 1)[-1].startswith("experiment_state") and uri.endswith(".json"):
                for state, _ in json.loads(store.get(uri)).get("trial_data", []):
                    trial = json.loads(state)
                    if trial.get("status") == "TERMINATED":
                        finished.add(trial.get("trial_id"))
        return len(finished)


@dataclass
class Watch:
    """Polls a task's storage while its first attempt runs; kills the cluster's processes once progress is reached."""

    loss: ClusterLoss
    store: BlobStore
    prefix: str  # where the task's attempts keep their data (every attempt's raw-output prefix starts with it)
    processes: callable  # the cluster's processes now (LocalRayCluster.processes)
    interval: float = 0.5
    lost_at: int | None = None  # progress seen when the cluster was killed
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Watch:
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"lose-{self.loss.task}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):  # polling the store: S3 has no notifications here
            with contextlib.suppress(Exception):  # a file being written; read again next time
                done = self.loss.progress(self.store, self.prefix)
                if done >= self.loss.after:
                    self.lost_at = done
                    for p in self.processes():
                        with contextlib.suppress(psutil.Error):
                            p.send_signal(signal.SIGKILL)
                    print(
                        f"  lost the cluster of {self.loss.task} after {done} {UNITS[self.loss.task]}: every Ray "
                        "process of the attempt killed",
                        flush=True,
                    )
                    return
