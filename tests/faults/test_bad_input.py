"""Bad input, refused before any Ray cluster starts, with an error that names the input and what would be valid.

Most cases go through the real `pyflyte run` entry point in one batch process (bad_input_batch.py);
one through a `pyflyte run` process of its own, one bad schedule through `pyflyte package`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import PROJECT_ROOT, git

PYFLYTE = str(Path(sys.executable).parent / "pyflyte")
BATCH = Path(__file__).with_name("bad_input_batch.py")
TOO_MANY_WORKERS = (os.cpu_count() or 1) + 1
# Lines only a started Ray cluster, Tune search or Train worker group prints.
RAY_MARKERS = ("Started a local Ray instance", "Configuration for experiment", "trial_on_worker", "RayTrainWorker")

# id -> (pyflyte arguments, texts the error must contain: the input named, what would be valid)
CASES = {
    "problem-unknown": (
        ["--problem", "digitz"],
        ["problem 'digitz' is not a built-in problem (diabetes, digits)", "module:attribute"],
    ),
    "problem-unimportable": (
        ["--problem", "no_such_module:PROBLEM"],
        ["cannot import module 'no_such_module'", "Put it on PYTHONPATH"],
    ),
    "space-unknown-param": (
        ["--tune", '{"space": {"dropout": {"uniform": [0, 0.5]}}}'],
        [
            "hyper-parameter 'dropout' is not one problem 'digits' knows",
            "it accepts: lr: float (default 0.05, > 0); momentum",
        ],
    ),
    "space-wrong-bound-type": (
        ["--problem", "diabetes", "--tune", '{"space": {"layers": {"uniform": [1, 3]}}}'],
        ["search space of 'layers'", "uniform is for floats", "use randint or choice"],
    ),
    "space-empty-choice": (
        ["--tune", '{"space": {"batch_size": {"choice": []}}}'],
        ["search space of 'batch_size'", "an empty choice"],
    ),
    "space-invalid-value": (
        ["--tune", '{"space": {"momentum": 1.5}}'],
        ["hyper-parameter momentum=1.5 of problem 'digits' must be in [0, 1)"],
    ),
    "zero-trials": (["--tune", '{"num_samples": 0}'], ["tune.num_samples=0 is not valid", "run at least 1 trial"]),
    "zero-tune-epochs": (["--tune", '{"max_epochs": 0}'], ["tune.max_epochs=0 is not valid", "at least 1 epoch"]),
    "zero-epochs": (["--train", '{"epochs": 0}'], ["train.epochs=0 is not valid", "train for at least 1 epoch"]),
    "zero-workers": (["--train", '{"num_workers": 0}'], ["train.num_workers=0 is not valid", "use at least 1 worker"]),
    "more-workers-than-cluster": (
        ["--train", json.dumps({"num_workers": TOO_MANY_WORKERS})],
        [f"train.num_workers={TOO_MANY_WORKERS} is not valid", "holds at most"],
    ),
    "gpu-without-gpus": (
        ["--train", '{"use_gpu": true}'],
        ["train.use_gpu=True is not valid", "this machine has 0 GPU(s) for 2 worker(s)", "set train.use_gpu to false"],
    ),
    "trial-gpu-without-gpus": (
        ["--tune", '{"gpus_per_trial": 0.5}'],
        ["tune.gpus_per_trial=0.5 is not valid", "this machine has no GPU", "set it to 0"],
    ),
    "trial-larger-than-a-node": (
        ["--tune", '{"cpus_per_trial": 512}'],
        ["tune.cpus_per_trial=512", "a trial must fit on one node", "ask for less per trial"],
    ),
    "cluster-bad-memory": (
        ["--train_cluster", '{"memory_per_worker": "4GB"}'],
        ["train_cluster.memory_per_worker='4GB' is not valid", 'use a Kubernetes quantity such as "4Gi"'],
    ),
    "cluster-autoscaling-half-set": (
        ["--tune_cluster", '{"max_workers": 4}'],
        ["tune_cluster.min_workers/max_workers=(None, 4) is not valid", "set both min_workers and max_workers"],
    ),
    "gate-not-finite": (
        ["--gate", "nan"],
        ["gate=nan is not valid", "give the test accuracy at which a run is promoted"],
    ),
    "dataset-missing": (
        ["--dataset", "/nonexistent/digits.npz"],
        ["dataset '/nonexistent/digits.npz' does not exist", "give an existing .npz file"],
    ),
    "dataset-wrong-shape": (
        ["--dataset", "{data}/wrong-shape.npz"],
        ["wrong-shape.npz': x has shape (200, 27, 27)", "images must be (N, 28, 28), (N, 784) or (N, 1, 28, 28)"],
    ),
    "dataset-wrong-labels": (
        ["--dataset", "{data}/wrong-labels.npz"],
        ["wrong-labels.npz': y has labels in [0, 11]", "labels must be in 0-9"],
    ),
    "dataset-dvc-uri-without-path": (
        ["--dataset", "dvc://?rev=main"],
        ["names no file", "use dvc://PATH?repo=REPO&rev=REV"],
    ),
    "repo-missing": (
        ["--repo_url", "/nonexistent/repo"],
        ["repo_url '/nonexistent/repo' does not exist", "give an existing local repo path or a git URL"],
    ),
    "repo-not-git": (["--repo_url", "{data}"], ["is not a git repository", "python -m tasks.scaffold"]),
    "repo-not-dvc": (["--repo_url", "{plain}"], ["is not a DVC repo (no .dvc/ directory)", "python -m tasks.scaffold"]),
    "exp-name-space": (
        ["--exp_name", "bad name"],
        ["experiment name 'bad name' is not a valid git ref name", "use letters, digits"],
    ),
    "exp-name-dots": (
        ["--exp_name", "a..b"],
        ["experiment name 'a..b' is not a valid git ref name", "no '/', spaces, '..'"],
    ),
    "base-rev-missing": (
        ["--base_rev", "no-such-rev"],
        ["revision 'no-such-rev' is not in", "give an existing branch, tag or commit"],
    ),
}


def _flat(text: str) -> str:
    """The output with its line wrapping undone (rich wraps the message at the terminal width, a bad option's
    error in a box)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A DVC repo to run in (repo_url "" means this one), a plain git repo, bad data files."""
    from tasks.scaffold import scaffold

    root = tmp_path_factory.mktemp("bad-input")
    scaffold(root / "target")
    git("init", "--quiet", str(root / "plain"))
    git("commit", "--quiet", "--allow-empty", "-m", "init", cwd=root / "plain")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8), np.arange(200) % 10
    np.savez(data / "wrong-shape.npz", x=x[:, :27, :27], y=y)
    np.savez(data / "wrong-labels.npz", x=x, y=y + 2 * (y >= 8))
    return {"target": root / "target", "plain": root / "plain", "data": data, "root": root}


@pytest.fixture(scope="module")
def batch(inputs):
    """Every case of CASES through the `pyflyte run` entry point, in one process."""
    cases = [
        {
            "id": case_id,
            "cwd": str(inputs["target"]),
            "args": [a.replace("{data}", str(inputs["data"])).replace("{plain}", str(inputs["plain"])) for a in args],
        }
        for case_id, (args, _) in CASES.items()
    ]
    (inputs["root"] / "cases.json").write_text(json.dumps(cases))
    proc = subprocess.run(
        [sys.executable, str(BATCH), str(inputs["root"] / "cases.json"), str(inputs["root"] / "results.json")],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((inputs["root"] / "results.json").read_text())


@pytest.mark.parametrize("case_id", CASES)
def test_bad_input_is_refused_before_any_ray_cluster_starts(batch, case_id):
    result = batch[case_id]
    output = _flat(result["output"])
    assert result["exit_code"] != 0, output[-2000:]
    for text in CASES[case_id][1]:
        assert text in output, f"{text!r} not in:\n{output[-2000:]}"
    assert not result["ray_started"], "a Ray cluster was started"
    assert not any(marker in output for marker in RAY_MARKERS)
    print(f"{case_id}: refused in {result['seconds']} s")  # for docs/faults.md; no timing assertion


def test_bad_dataset_is_refused_by_a_real_pyflyte_run_process(inputs):
    """The same path as a user at a shell: a process of its own, the message at the end of its output."""
    proc = subprocess.run(
        [
            PYFLYTE,
            "run",
            str(PROJECT_ROOT / "workflows/tune_train.py"),
            "tune_train_wf",
            "--dataset",
            str(inputs["data"] / "wrong-labels.npz"),
        ],
        cwd=inputs["target"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    tail = _flat(proc.stdout + proc.stderr)[-600:]
    assert "y has labels in [0, 11]: labels must be in 0-9" in tail, tail
    assert not any(marker in proc.stdout + proc.stderr for marker in RAY_MARKERS)


@pytest.mark.parametrize("cron", ["0 2 * *", "61 * * * *", "0 2 * * * *", "every night", "@nightly"])
def test_malformed_cron_schedule_is_refused_naming_it_and_a_valid_one(cron):
    from workflows.launch_plans import LaunchPlanConfigError, scheduled_launch_plan

    with pytest.raises(LaunchPlanConfigError) as info:
        scheduled_launch_plan(cron=cron, name=f"never-built-{abs(hash(cron))}")
    message = str(info.value)
    assert repr(cron) in message and "'0 2 * * *'" in message and "5 fields" in message


def test_malformed_cron_schedule_fails_pyflyte_package(tmp_path):
    """The schedule is set when the plans are serialized (NIGHTLY_CRON): `pyflyte package` refuses a bad one."""
    env = {
        **os.environ,
        "NIGHTLY_CRON": "61 * * * *",
        "EXPERIMENTS_REPO_URL": "https://git.example/team/experiments.git",
    }
    proc = subprocess.run(
        [PYFLYTE, "--pkgs", "workflows", "package", "--image", "img:t", "--output", str(tmp_path / "p.tgz"), "--force"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    output = _flat(proc.stdout + proc.stderr)
    assert "cron expression '61 * * * *' is not valid" in output, output[-2000:]
    assert not (tmp_path / "p.tgz").exists()
