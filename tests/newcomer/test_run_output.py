"""A successful run as a newcomer sees it: one real `pyflyte run` of the workflow, its terminal and its Decks.

Another Ray instance runs on the machine meanwhile (as another run's would), and the run is made in a
user's environment: Ray's token auth left to its default (no RAY_AUTH_MODE), a fresh HOME.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support import PROJECT_ROOT

PYFLYTE = str(Path(sys.executable).parent / "pyflyte")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other_ray():
    """A second local Ray instance on this machine for the whole run; it must come through untouched."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import ray, sys; ray.init(address='local', num_cpus=1, include_dashboard=False); "
            "print('up', flush=True); sys.stdin.read(); ray.shutdown()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "up"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=120)


@pytest.fixture(scope="module")
def run(tmp_path_factory, other_ray):
    from tasks.scaffold import scaffold

    root = tmp_path_factory.mktemp("run")
    scaffold(root / "target")
    tmp = Path(tempfile.mkdtemp(prefix="nc-"))  # short: Ray's socket paths live under it
    env = {**os.environ, "HOME": str(root / "home"), "TMPDIR": str(tmp)}
    env.pop("RAY_AUTH_MODE", None)
    proc = subprocess.run(
        [
            PYFLYTE,
            "run",
            str(PROJECT_ROOT / "workflows" / "tune_train.py"),
            "tune_train_wf",
            "--tune",
            '{"num_samples": 2, "max_epochs": 1, "record_trials": true, "space": {"lr": {"loguniform": [0.01, 0.1]}}}',
            "--train",
            '{"epochs": 1}',
        ],
        cwd=root / "target",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1500,
    )
    decks = "\n".join(p.read_text(errors="replace") for p in tmp.glob("**/deck.html"))
    yield proc.returncode, proc.stdout, root / "target", decks
    shutil.rmtree(tmp, ignore_errors=True)


def test_the_run_succeeds_without_ray_housekeeping_in_its_output(run, other_ray):
    code, output, _, _ = run
    assert code == 0, output[-3000:]
    assert "Token authentication" not in output
    assert "Found multiple active Ray instances" not in output
    assert "Traceback" not in output and "WARNING" not in output
    assert other_ray.poll() is None  # the other Ray instance was neither joined nor disturbed


def test_trial_lines_are_numbered_in_tunes_order(run):
    _, output, _, _ = run
    trials = re.findall(r"^trial (\d)/2 \w{5}_(\d{5}) \[", output, re.M)
    assert {n for n, _ in trials} == {"1", "2"}
    assert all(int(n) == int(index) + 1 for n, index in trials), trials


def test_the_log_says_what_the_space_fixed_and_what_record_trials_saved(run):
    _, output, _, _ = run
    assert "leaves out momentum, batch_size, which problem 'digits' searches by default" in output
    assert "fixed at the default momentum=0.9, batch_size=64" in output
    assert re.search(r"^record_trials: saved 2 trials as experiments beside it: \S+-\w+, \S+-\w+$", output, re.M)
    assert "live metrics" in output


def test_the_run_ends_short_with_the_experiment_scores_gate_and_next_steps(run):
    _, output, target, _ = run
    lines = [line for line in output.splitlines() if line.strip()]
    nxt = next(line for line in lines if line.startswith("next: "))
    assert nxt.startswith(f"next: cd {target} && dvc exp show") and "dvc pull" not in nxt  # no DVC remote here
    last = lines[-1]
    assert last.startswith("TuneTrainOutputs(experiment=ExperimentRef(") and len(last) < 600, last
    assert re.search(r"test/accuracy [\d.]+ (>=|<) [\d.]+", last), last  # the score against the gate
    assert re.search(
        r"TrainResult\(val/loss [\d.]+  val/accuracy [\d.]+  test/loss [\d.]+  test/accuracy [\d.]+; 1 epochs, model ",
        last,
    ), last
    assert "history" not in last and "'epoch'" not in last


def test_deck_input_and_output_pages_hold_no_walls_of_repr(run):
    _, _, _, decks = run
    assert decks, "no deck.html written"
    for wall in ("history=[", "sha256='", "TuneResult(best={", "TrainResult(model=", "Dataset(file="):
        assert wall not in decks, wall
    assert "<b>data</b>: digits:" in decks and "<b>training</b>: val/loss" in decks
