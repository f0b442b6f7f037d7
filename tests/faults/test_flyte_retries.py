"""Retries at the Flyte level, as a cluster runs them: the commit part of the workflow (commit_only_wf.py:
check_target, a stand-in run, commit_experiment) serialized by flytekit and run by the emulator (`emulator`),
each attempt of each task its own pod process (`pyflyte-execute`), inputs and outputs in S3 on loopback. A local
`pyflyte run` never retries; propeller retries an attempt only if its error.pb is RECOVERABLE, and so does the
emulator.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import boto3
import commit_only_wf  # tests/faults is on sys.path, as for the other tests here
import pytest
from support import assert_refs_have_their_data, bare_remote, exp_refs

from emulator.blobstore import BlobStore
from emulator.cli import secrets_from_env
from emulator.literals import python_literals, to_python
from emulator.packaging import Package
from emulator.propeller import TaskFailed
from emulator.run import Execution, NodeRun

IMAGE = "localhost:30000/flyte-ray-dvc:retries"
WORKFLOW = commit_only_wf.commit_only_wf


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Package:
    return Package.serialize(WORKFLOW, IMAGE, tmp_path_factory.mktemp("package"))


def _execution(package: Package, tmp_path: Path, s3_endpoint: str, **kwargs) -> Execution:
    blob_bucket = f"flyte-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=blob_bucket)
    return Execution(
        package,
        BlobStore(s3_endpoint, blob_bucket),
        tmp_path / "emulated",
        secrets=secrets_from_env(),
        app_files={"commit_only_wf.py": Path(commit_only_wf.__file__)},
        **kwargs,
    )


def _run(execution: Execution, package: Package, **inputs):
    (name,) = package.workflows
    literals = execution.run_workflow(name, python_literals(inputs, {k: type(v) for k, v in inputs.items()}))
    return to_python(literals, WORKFLOW.python_interface.outputs)["o0"]


def _node(execution: Execution, task: str) -> NodeRun:
    (run,) = [r for r in execution.runs if r.task.rsplit(".", 1)[-1] == task]
    return run


def test_s3_outage_longer_than_the_bridge_backoff_is_survived_by_a_flyte_retry_that_lands_once(
    tmp_path, package, s3_endpoint, flaky_s3, bucket
):
    """The DVC remote's endpoint is down for commit_experiment's whole first attempt: the bridge's own 4 push
    attempts fail, the task leaves a RECOVERABLE error.pb, propeller's rule retries it as attempt 1 (endpoint back),
    which records the experiment: exactly one, its data pullable, the first attempt having pushed no ref."""
    from tasks.scaffold import scaffold

    scaffold(tmp_path / "seed", remote=f"s3://{bucket}/dvc", endpoint=flaky_s3.url)
    url = bare_remote(tmp_path / "seed", tmp_path / "remote.git")

    def outage(run: NodeRun, attempt: int) -> None:
        if run.task.endswith(".commit_experiment") and attempt == 0:
            flaky_s3.down()  # for the whole first attempt
        elif run.task.endswith(".commit_experiment") and attempt == 1:
            assert exp_refs(url) == [], "the failed attempt must not have pushed a ref"
            flaky_s3.up()  # back for the retry

    execution = _execution(package, tmp_path, s3_endpoint, before_attempt=outage)
    started = time.monotonic()
    ref = _run(execution, package, repo_url=url, exp_name="survived", seed=3)
    elapsed = time.monotonic() - started

    commit = _node(execution, "commit_experiment")
    assert [(a.number, a.retried) for a in commit.history] == [(0, True), (1, False)]
    first, second = commit.history
    assert first.failure.recoverable and not first.failure.system and first.failure.code == "USER:Recoverable"
    assert "PushError: dvc push to remote 'storage' failed after 4 attempts" in first.failure.summary
    assert "user-error attempt 1 of 3 (retries=2)" in first.reason
    assert second.failure is None
    assert [len(_node(execution, t).history) for t in ("check_target", "stand_in_run")] == [1, 1]

    assert ref.name == "survived" and ref.data_pushed and ref.ref_pushed
    assert exp_refs(url) == [ref.git_ref]  # one experiment: the retry made it, nothing else did
    clones = assert_refs_have_their_data(url, tmp_path)
    assert (clones[ref.git_ref] / "results/train/model.pth").read_bytes() == commit_only_wf.stand_in_model(3)
    print(f"S3 outage over a whole attempt, survived by a Flyte retry: {elapsed:.1f} s")  # for docs/faults.md


def test_wrong_input_is_not_retried_by_flyte(tmp_path, package, s3_endpoint, remote_target):
    """An invalid experiment name fails check_target with a NON_RECOVERABLE error.pb: one attempt, although the task
    has retries, and nothing after it runs."""
    (check_name,) = [n for n in package.tasks if n.endswith(".check_target")]
    assert package.tasks[check_name].metadata.retries.retries >= 1, "check_target should have retries to spend"
    execution = _execution(package, tmp_path, s3_endpoint)
    started = time.monotonic()
    with pytest.raises(
        TaskFailed,
        match=r"(?s)TargetError: .*experiment name 'bad name' is not a valid git ref name"
        r".*not retried: non-recoverable",
    ):
        _run(execution, package, repo_url=remote_target, exp_name="bad name", seed=0)
    (check,) = execution.runs
    assert check.task == check_name and len(check.history) == 1
    assert not check.history[0].failure.recoverable and not check.history[0].retried
    assert exp_refs(remote_target) == []
    print(f"wrong input, not retried: {time.monotonic() - started:.1f} s")
