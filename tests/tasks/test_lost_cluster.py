"""A lost Ray cluster costs the epoch in flight, or the unfinished trials: retries resume from the storage home.

The Flyte side (a retry reads the home the previous attempt wrote into its Flyte checkpoint) runs
through flytekit's own `SyncCheckpoint`, as `pyflyte-execute --checkpoint-path ... --prev-checkpoint ...`
builds it; the Ray side on real local Ray clusters, a search's cluster killed whole (every process).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import flytekit
import psutil
import pytest
import ray
from flytekit.core.checkpointer import SyncCheckpoint
from flytekit.exceptions.user import FlyteRecoverableException
from ray.exceptions import ActorDiedError, NodeDiedError, ObjectLostError
from ray.train import WorkerGroupError
from support import PROJECT_ROOT, ray_cluster  # noqa: F401  (shared fixtures)

from dvc_bridge.live import LiveConfig
from tasks.flyte.home import HomeError, StorageHome, storage_home
from tasks.flyte.recoverable import recoverable_on_lost_cluster
from tasks.problem import complete, load_problem
from tasks.ray_glue.resume import stored_trials
from tasks.ray_glue.storage import ray_storage
from tasks.ray_glue.train import run_train
from tasks.training.settings import SettingsError, TrainSettings

CHILD = Path(__file__).parent / "lost_cluster_child.py"


# --------------------------------------------------------------------------- the home, across Flyte attempts


def _prefix(root: Path, n: int) -> str:
    return str(root / f"attempt-{n}" / "_flytecheckpoints")


def _attempt(root: Path, n: int, prev: int | None) -> SyncCheckpoint:
    """Attempt n's checkpoint as flytekit's entrypoint makes it: its own prefix, the previous attempt's as source."""
    return SyncCheckpoint(
        checkpoint_dest=_prefix(root, n), checkpoint_src=_prefix(root, prev) if prev is not None else None
    )


def test_lost_cluster_every_attempt_finds_the_first_attempts_home_through_flyte_checkpoints(tmp_path):
    home = storage_home(str(tmp_path / "attempt-0" / "raw"), _attempt(tmp_path, 0, None))
    assert home == StorageHome(uri=str(tmp_path / "attempt-0" / "raw"), resumed=False)
    for n in (1, 2):  # attempt 2 finds it through attempt 1's checkpoint, not attempt 0's
        cp = _attempt(tmp_path, n, n - 1)
        assert storage_home(str(tmp_path / f"attempt-{n}" / "raw"), cp) == StorageHome(uri=home.uri, resumed=True)
    # Recovery mode: attempt 0 of a new execution gets the failed execution's last checkpoint.
    recovered = SyncCheckpoint(str(tmp_path / "recovered" / "_flytecheckpoints"), _prefix(tmp_path, 2))
    assert storage_home(str(tmp_path / "recovered" / "raw"), recovered).uri == home.uri


def test_lost_cluster_before_the_home_was_written_starts_a_new_home(tmp_path):
    # The previous attempt died before it wrote its checkpoint: it had started no Ray work either.
    cp = SyncCheckpoint(str(tmp_path / "a1" / "_flytecheckpoints"), str(tmp_path / "a0" / "_flytecheckpoints"))
    assert storage_home(str(tmp_path / "a1" / "raw"), cp) == StorageHome(
        uri=str(tmp_path / "a1" / "raw"), resumed=False
    )


def test_lost_cluster_checkpoint_holding_something_else_is_refused(tmp_path):
    other = SyncCheckpoint(str(tmp_path / "a0" / "_flytecheckpoints"))
    other.write(b"a model's own bytes")
    cp = SyncCheckpoint(str(tmp_path / "a1" / "_flytecheckpoints"), str(tmp_path / "a0" / "_flytecheckpoints"))
    with pytest.raises(HomeError, match="not a storage home"):
        storage_home(str(tmp_path / "a1" / "raw"), cp)


@flytekit.task
def _home_of_a_local_task() -> str:
    home = storage_home(task="local")
    assert not home.resumed
    return home.uri


def test_lost_cluster_local_runs_each_start_from_a_new_home():
    # Local runs share one raw-output prefix among all tasks and runs of a process: each still gets its own home.
    first, second = _home_of_a_local_task(), _home_of_a_local_task()
    assert first != second and Path(first).parent == Path(second).parent


# --------------------------------------------------------------------------- what Flyte retries


@pytest.mark.parametrize(
    "error",
    [
        NodeDiedError("node 10.0.0.3 died"),
        ObjectLostError("abc", "owner", "call site"),
        WorkerGroupError("rank 1 died", {1: ActorDiedError()}),
        RuntimeError("the driver lost its cluster"),  # only through its cause, below
    ],
    ids=["node", "object", "train-workers", "caused-by"],
)
def test_lost_cluster_errors_in_the_driver_are_recoverable(error):
    with pytest.raises(FlyteRecoverableException, match="Ray cluster was lost"):
        with recoverable_on_lost_cluster():
            if isinstance(error, RuntimeError):
                raise error from NodeDiedError("node died")
            raise error


@pytest.mark.parametrize(
    "error",
    [SettingsError("num_workers=0 is not valid"), ValueError("bad"), WorkerGroupError("oops", {0: ValueError("x")})],
)
def test_lost_cluster_a_wrong_input_still_fails_at_once(error):
    with pytest.raises(type(error)):
        with recoverable_on_lost_cluster():
            raise error


# --------------------------------------------------------------------------- training resumes


def _steps(tsv: Path) -> list[int]:
    with tsv.open() as f:
        return [int(row["step"]) for row in csv.DictReader(f, delimiter="\t")]


@pytest.mark.slow
def test_training_lost_cluster_after_epoch_2_of_4_retry_trains_epochs_3_and_4_only(
    tmp_path,
    ray_cluster,  # noqa: F811
    diabetes_splits,
):
    """A retry on a new cluster (same home, same run name) resumes after the last checkpoint: what the run
    stored after epoch 2 of 4 is what a lost cluster leaves; the retry trains epochs 3-4 only. Diabetes: its
    least-squares start (init_from_data) is not applied again on the retry, or the resumed model would leave the
    uninterrupted one (no dropout here, whose random draws a retry does not replay)."""
    problem = load_problem("diabetes")
    hp = complete(problem, {"dropout": 0.0})
    home, _ = ray_storage(str(tmp_path / "home"), "ray")
    mirror = tmp_path / "mirror"
    live = LiveConfig(mirror_uri=mirror.as_uri())
    data = ray.put(diabetes_splits)

    def attempt(epochs: int, out: str):
        settings = TrainSettings(epochs=epochs, num_workers=2, max_failures=0)
        return run_train(data, "diabetes", hp, settings, tmp_path / out, home, live=live, run_name="train")

    first = attempt(2, "a0")
    second = attempt(4, "a1")
    whole = run_train(
        data,
        "diabetes",
        hp,
        TrainSettings(epochs=4, num_workers=2, max_failures=0),
        tmp_path / "u",
        str(tmp_path / "u"),
    )
    assert [m["epoch"] for m in second.history] == [1, 2, 3, 4]
    # Epochs 1-2 come from the checkpoint as they were measured (timings included): not trained again.
    assert second.history[:2] == first.history
    for root in (second.live_dir / "plots" / "metrics", mirror / "plots" / "metrics"):
        tsvs = sorted(root.rglob("*.tsv"))
        assert {str(p.relative_to(root).with_suffix("")) for p in tsvs} >= {"val/rmse", "train/loss"}
        for tsv in tsvs:
            assert _steps(tsv) == [0, 1, 2, 3], f"{tsv}:\n{tsv.read_text()}"
    summary = json.loads((second.live_dir / "metrics.json").read_text())
    assert summary["step"] == 3 and summary["test"]["rmse"] == pytest.approx(second.test["test/rmse"])
    assert second.test["test/rmse"] < 60  # the target's std is 77; the linear fit about 54
    # The same model as an uninterrupted run: same scores each epoch (model, optimizer and data order resumed).
    timing = {"epoch_time_s", "samples_per_s"}
    for resumed, uninterrupted in zip(second.history, whole.history, strict=True):
        assert {k: v for k, v in resumed.items() if k not in timing} == pytest.approx(
            {k: v for k, v in uninterrupted.items() if k not in timing}, abs=1e-5
        )
    assert second.test == pytest.approx(whole.test, abs=1e-5)


@pytest.mark.slow
def test_training_lost_cluster_killed_whole_in_epoch_3_of_4_retry_trains_epochs_3_and_4_only(tmp_path):
    """Every process of the training's Ray cluster (driver, GCS, raylet, workers) SIGKILLed in epoch 3, after
    checkpoint 2 was registered; the retry on a new cluster trains epochs 3 and 4 only."""
    home = tmp_path / "home"
    first = _child(["train", str(home), "4", str(tmp_path / "a0.json")], {"LOST_CLUSTER_HANG_AT_EPOCH": "3"})
    deadline = time.time() + 600
    while not _registered_checkpoints(home) >= 2:
        assert child_alive(first), first.communicate()[0][-3000:]
        assert time.time() < deadline, "checkpoint 2 was never registered"
        time.sleep(0.5)
    _lose_cluster(first)
    retry = _child(["train", str(home), "4", str(tmp_path / "a1.json")], {})
    log = retry.communicate(timeout=900)[0]
    assert retry.returncode == 0, log[-3000:]
    trained = [line.split("epoch ")[1].split(":")[0] for line in log.splitlines() if "epoch " in line and "/4:" in line]
    assert trained == ["3/4", "4/4"], log[-3000:]
    result = json.loads((tmp_path / "a1.json").read_text())
    assert [m["epoch"] for m in result["history"]] == [1, 2, 3, 4]
    for root in (Path(result["live_dir"]) / "plots" / "metrics", tmp_path / "a1.json.mirror" / "plots" / "metrics"):
        tsvs = sorted(root.rglob("*.tsv"))
        assert {str(p.relative_to(root).with_suffix("")) for p in tsvs} >= {"val/accuracy", "train/loss"}
        for tsv in tsvs:
            assert _steps(tsv) == [0, 1, 2, 3], f"{tsv}:\n{tsv.read_text()}"


def child_alive(child: subprocess.Popen) -> bool:
    return child.poll() is None


def _registered_checkpoints(home: Path) -> int:
    """Checkpoints Ray Train's controller has registered in the run's snapshot (written once one is persisted)."""
    found = list(home.glob("train/checkpoint_manager_snapshot.json"))
    try:
        return len(json.loads(found[0].read_text())["checkpoint_results"]) if found else 0
    except (ValueError, KeyError):  # being written
        return 0


# --------------------------------------------------------------------------- the search resumes


def _run_child(storage: Path, n: int, out: Path, markers: Path, hang_after: int) -> subprocess.Popen:
    env = {"LOST_CLUSTER_MARKERS": str(markers), "LOST_CLUSTER_HANG_AFTER": str(hang_after)}
    return _child([str(storage), str(n), str(out)], env)


def _child(args: list[str], extra_env: dict[str, str]) -> subprocess.Popen:
    """An attempt: its own process with its own local Ray cluster (a new session: the test can lose it whole)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(PROJECT_ROOT), str(PROJECT_ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
        ),
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _lose_cluster(child: subprocess.Popen) -> None:
    """SIGKILL the attempt's driver and every process of its Ray cluster (each one this test started)."""
    procs = [psutil.Process(child.pid), *psutil.Process(child.pid).children(recursive=True)]
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)
    child.communicate()


def _wait_for_finished(path: Path, count: int, child: subprocess.Popen, timeout: float = 300) -> dict[str, str]:
    """Poll Tune's stored experiment state until `count` trials are recorded finished."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert child.poll() is None, f"the attempt ended early:\n{child.communicate()[0][-3000:]}"
        try:
            states = stored_trials(str(path))
        except Exception:  # not written yet, or being written
            states = {}
        if sum(s == "TERMINATED" for s in states.values()) >= count:
            return states
        time.sleep(0.5)
    raise AssertionError(f"{count} finished trials never reached {path}")


@pytest.mark.slow
def test_search_lost_cluster_after_2_of_4_trials_retry_runs_only_the_unfinished(tmp_path):
    n, k = 4, 2
    storage = tmp_path / "home" / "ray"
    first = _run_child(storage, n, tmp_path / "a0.json", tmp_path / "built-0", hang_after=k)
    states = _wait_for_finished(storage / "tune", k, first)
    _lose_cluster(first)
    finished = {t for t, s in states.items() if s == "TERMINATED"}
    assert len(finished) == k

    # A stored state Tune cannot load is an error, not a new search that would redo every trial. Here the search
    # algorithm's state is broken: Tune's controller logs "Failed to restore the run state" and, with
    # fail_fast=False, would start a new search; RestoreGuard stops it at its first step.
    broken = tmp_path / "broken"
    shutil.copytree(storage, broken)
    for state in (broken / "tune").glob("basic-variant-state*.json"):
        state.write_text("{not json")
    bad = _run_child(broken, n, tmp_path / "bad.json", tmp_path / "built-bad", hang_after=-1)
    log = bad.communicate(timeout=600)[0]
    assert bad.returncode != 0 and "ResumeError: Tune did not restore the stored search" in log, log[-3000:]
    assert not list((tmp_path / "built-bad").glob("*")), "a trial was trained by a search that should not start"

    retry = _run_child(storage, n, tmp_path / "a1.json", tmp_path / "built-1", hang_after=-1)
    log = retry.communicate(timeout=600)[0]
    assert retry.returncode == 0, log[-3000:]
    assert "resuming the search" in log
    # Only the unfinished trials were trained again: the one in flight and the one never started.
    assert len(list((tmp_path / "built-1").iterdir())) == n - k
    result = json.loads((tmp_path / "a1.json").read_text())
    trials = result["trials"]
    assert len(trials) == n and {t["status"] for t in trials} <= {"completed", "stopped_early"}
    # record_trials: every trial's directory, those finished before the loss written again from their stored results.
    recorded = {d.name: d for d in (tmp_path / "a1.json.trials").iterdir()}
    assert finished <= set(recorded) and len(recorded) == n
    for d in recorded.values():
        assert _steps(d / "plots" / "metrics" / "val" / "accuracy.tsv") == [0], d
    after = stored_trials(str(storage / "tune"))
    assert len(after) == n and finished <= set(after) and set(after.values()) == {"TERMINATED"}
    metric = "val/accuracy"
    assert result["best_score"] == max(t[metric] for t in trials)


# --------------------------------------------------------------------------- what Flyte is given


def test_lost_cluster_retries_and_spot_capacity_reach_the_ray_tasks_mocked_flyte_backend():
    """The dynamic steps compiled as their pods would (no Flyte backend here): each Ray task carries its retries,
    a run's `interruptible` reaches only the cluster that asked for it, and each attempt keeps its timeout."""
    from tasks.flyte.sizing import ray_tasks
    from tasks.flyte.tasks import RAY_TASK_RETRIES
    from tasks.training.capacity import train_timeout_s, tune_timeout_s
    from tasks.training.settings import TrainCluster, TuneCluster, TuneSettings

    tune, train = TuneSettings(), TrainSettings()
    specs = ray_tasks(tune, train, TuneCluster(interruptible=True), TrainCluster())
    assert specs["tune_hyperparameters"]["retries"] == specs["train_model"]["retries"] == RAY_TASK_RETRIES >= 1
    assert specs["tune_hyperparameters"]["interruptible"] is True
    assert specs["train_model"]["interruptible"] is False
    assert specs["tune_hyperparameters"]["timeout_s"] == tune_timeout_s(tune, TuneCluster())
    assert specs["train_model"]["timeout_s"] == train_timeout_s(train, TrainCluster())
