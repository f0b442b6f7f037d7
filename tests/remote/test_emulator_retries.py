"""The emulator retries a failed attempt only as flytepropeller would: a RECOVERABLE error document (flytekit
writes a user exception as NON_RECOVERABLE unless it is a FlyteRecoverableException), or an attempt that died
without one; user errors within the task's `retries`, system errors within propeller's own budget.

The error documents are real: written by flytekit's entrypoint (`dispatch_execute`, what `pyflyte-execute`
runs in a pod) for tasks that raise the bridge's own errors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flyteidl.core import identifier_pb2, literals_pb2, tasks_pb2
from flytekit import task
from flytekit.bin.entrypoint import setup_execution
from support import free_port

from compat.flytekit import dispatch_execute
from dvc_bridge.bridge import validate_exp_name
from dvc_bridge.gitops import Git, retry
from emulator.blobstore import BlobStore
from emulator.packaging import Package
from emulator.propeller import MAX_SYSTEM_RETRIES, RetryBudget, TaskFailed, read_failure
from emulator.run import Execution
from tasks.flyte.recoverable import recoverable_on_transient

UNREACHABLE_GIT = f"http://127.0.0.1:{free_port()}/experiments.git"  # nothing listens there


def _push_that_fails() -> None:
    """A real PushError: the bridge's retry() around a git call to a server that is not there."""
    retry(lambda: Git().ls_remote(UNREACHABLE_GIT), what="git push of refs/exps/...", attempts=1, first_delay=0)


@task
def push_fails_recoverably() -> int:
    with recoverable_on_transient():
        _push_that_fails()
    return 0


@task
def push_fails_plainly() -> int:
    _push_that_fails()  # what commit_experiment did before recoverable_on_transient: a plain user exception
    return 0


@task
def wrong_input() -> int:
    with recoverable_on_transient():
        validate_exp_name("bad name")
    return 0


def error_document(tmp_path: Path, task_obj, inputs: bool = True) -> bytes:
    """The error.pb flytekit's entrypoint writes for `task_obj` (no inputs.pb at all: a system error)."""
    inputs_pb = tmp_path / "inputs.pb"
    inputs_pb.write_bytes(literals_pb2.LiteralMap().SerializeToString())
    out = tmp_path / "outputs"
    out.mkdir()
    with setup_execution(str(tmp_path / "raw"), str(out)) as ctx:
        dispatch_execute(ctx, lambda: task_obj, str(inputs_pb if inputs else tmp_path / "missing.pb"), str(out))
    assert not (out / "outputs.pb").exists()
    return (out / "error.pb").read_bytes()


def _decisions(budget: RetryBudget, failure, times: int) -> list[bool]:
    return [budget.after(failure)[0] for _ in range(times)]


def test_transient_bridge_error_is_retried_within_the_task_retries(tmp_path):
    failure = read_failure(error_document(tmp_path, push_fails_recoverably))
    assert failure.recoverable and not failure.system and failure.code == "USER:Recoverable"
    assert "PushError: git push of refs/exps/... failed after 1 attempts" in failure.summary
    budget = RetryBudget(retries=2)
    assert _decisions(budget, failure, 3) == [True, True, False]  # 3 attempts in all, as propeller runs retries=2
    assert "retries exhausted" in budget.after(failure)[1]


def test_a_plain_user_exception_is_not_retried_even_with_retries(tmp_path):
    """Today's bug: a PushError that leaves the task as it is is NON_RECOVERABLE, so `retries=2` never applies."""
    failure = read_failure(error_document(tmp_path, push_fails_plainly))
    assert not failure.recoverable and not failure.system and "PushError" in failure.summary
    assert RetryBudget(retries=2).after(failure) == (False, "non-recoverable, propeller does not retry it")


def test_wrong_input_is_not_retried(tmp_path):
    failure = read_failure(error_document(tmp_path, wrong_input))
    assert (
        not failure.recoverable
        and "TargetError: experiment name 'bad name' is not a valid git ref name" in failure.summary
    )
    assert _decisions(RetryBudget(retries=2), failure, 1) == [False]


def test_flytekit_system_error_is_retried_on_the_system_budget(tmp_path):
    failure = read_failure(error_document(tmp_path, push_fails_recoverably, inputs=False))  # inputs.pb missing
    assert failure.recoverable and failure.system and failure.code == "SYSTEM"
    assert _decisions(RetryBudget(retries=0), failure, MAX_SYSTEM_RETRIES + 1) == [True] * MAX_SYSTEM_RETRIES + [False]


def test_an_attempt_that_died_without_error_pb_is_retried():
    pod, ray = read_failure(None, "python-task"), read_failure(None, "ray")
    assert pod.recoverable and not pod.system  # flytek8s DemystifyFailure: a retryable failure of kind USER
    assert ray.recoverable and ray.system  # the Ray plugin: a failed RayJob is a retryable system failure
    assert _decisions(RetryBudget(retries=1), pod, 2) == [True, False]
    assert _decisions(RetryBudget(retries=0), ray, 1) == [True]
    assert read_failure(None, "python-task", exited_ok=True).code == "OutputsNotFound"


def test_system_failures_do_not_use_up_the_task_retries():
    user, system = read_failure(None, "python-task"), read_failure(None, "ray")
    budget = RetryBudget(retries=1)
    assert [budget.after(f)[0] for f in (system, user, system, user)] == [True, True, True, False]


def test_emulated_node_retries_a_dying_pod_with_the_attempt_number_then_stops(tmp_path, s3_endpoint, bucket, capsys):
    """The executor loop itself, on a tiny container that exits 3 without error.pb: retries=1 gives 2 attempts,
    each with its own FLYTE_ATTEMPT_NUMBER, and a line saying why it was (not) retried."""
    script = "import os; print('attempt', os.environ['FLYTE_ATTEMPT_NUMBER']); raise SystemExit(3)"
    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, name="dies"),
        type="python-task",
        metadata=tasks_pb2.TaskMetadata(retries=literals_pb2.RetryStrategy(retries=1)),
        container=tasks_pb2.Container(image="emulated", args=["python", "-c", script]),
    )
    package = Package(tmp_path / "package", {"dies": template}, {}, {}, None)
    execution = Execution(package, BlobStore(s3_endpoint, bucket), tmp_path / "work")
    with pytest.raises(
        TaskFailed, match=r"failed after 2 attempt\(s\): PodFailed: .*\nnot retried: .*retries exhausted"
    ):
        execution.run_task("dies", {})
    (run,) = execution.runs
    assert [(a.number, a.retried) for a in run.history] == [(0, True), (1, False)]
    assert [a.log.read_text().strip() for a in run.history] == ["attempt 0", "attempt 1"]
    out = capsys.readouterr().out
    assert "attempt 0 (FLYTE_ATTEMPT_NUMBER=0) failed: PodFailed" in out and "retried as attempt 1" in out
    assert (
        "attempt 1 (FLYTE_ATTEMPT_NUMBER=1) failed: PodFailed" in out
        and "not retried: user-error attempt 2 of 2" in out
    )
