"""Transient bridge errors leave as FlyteRecoverableException (Flyte retries them), wrong input leaves as it is.

The errors are the bridge's own, raised against real failures: a refused S3 port, a git server that is not
there, a bucket that does not exist, an invalid name; S3 throttling as s3fs reports it.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from flytekit.exceptions.user import FlyteRecoverableException
from s3fs.errors import translate_boto_error
from support import bare_remote, free_port

from dvc_bridge.bridge import preflight, resolve_target, validate_exp_name
from dvc_bridge.errors import (
    BridgeError,
    ExperimentExistsError,
    PushError,
    RemoteError,
    TargetError,
    TransientError,
    is_transient,
)
from dvc_bridge.gitops import Git, GitError, retry
from tasks.flyte.recoverable import recoverable_on_transient


def _raised(action) -> BaseException:
    try:
        action()
    except Exception as e:
        return e
    raise AssertionError("expected an exception")


def _through(exc: BaseException) -> BaseException:
    """What leaves recoverable_on_transient() when `exc` is raised inside it."""

    def body():
        with recoverable_on_transient():
            raise exc

    return _raised(body)


def _repo(tmp_path, remote: str | None = None, endpoint: str | None = None) -> str:
    from tasks.scaffold import scaffold

    scaffold(tmp_path / "seed", remote=remote, endpoint=endpoint)
    return bare_remote(tmp_path / "seed", tmp_path / "remote.git")


def _preflight_error(url: str, tmp_path) -> BaseException:
    return _raised(lambda: preflight(resolve_target(url), Git(), tmp_path / "preflight"))


def _assert_recoverable(exc: BaseException) -> FlyteRecoverableException:
    assert is_transient(exc), exc
    out = _through(exc)
    assert isinstance(out, FlyteRecoverableException), out
    assert out.__cause__ is exc
    assert out.args == (f"{type(exc).__name__}: {exc}",)  # the message as it was: nothing dropped, nothing added
    return out


def _assert_not_recoverable(exc: BaseException) -> None:
    assert not is_transient(exc), exc
    assert _through(exc) is exc


def test_unreachable_s3_remote_in_the_preflight_is_recoverable(tmp_path):
    url = _repo(tmp_path, remote="s3://bucket/dvc", endpoint=f"http://127.0.0.1:{free_port()}")  # nothing listens
    error = _preflight_error(url, tmp_path)
    assert isinstance(error, RemoteError) and "unreachable" in str(error)
    _assert_recoverable(error)


def test_unreachable_git_server_is_recoverable(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/experiments.git"  # nothing listens
    error = _preflight_error(url, tmp_path)
    assert isinstance(error, TargetError) and "cannot clone" in str(error)
    _assert_recoverable(error)
    ls_remote = _raised(lambda: Git().ls_remote(url))  # as the bridge looks for an existing experiment
    assert isinstance(ls_remote, GitError) and "Failed to connect" in str(ls_remote)
    _assert_recoverable(ls_remote)
    _assert_not_recoverable(_raised(lambda: Git().ls_remote(f"file://{tmp_path}/nothing.git")))


def test_push_that_ran_out_of_retries_is_recoverable_unless_refused(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/experiments.git"
    push = _raised(lambda: retry(lambda: Git().ls_remote(url), what="git push", attempts=1, first_delay=0))
    assert isinstance(push, PushError) and isinstance(push.__cause__, GitError)
    _assert_recoverable(push)

    def refused():
        try:
            raise PermissionError("Access Denied")  # what s3fs raises for S3's AccessDenied
        except PermissionError as e:
            raise PushError(
                "dvc push to remote 'storage' failed after 4 attempts: PermissionError: Access Denied"
            ) from e

    _assert_not_recoverable(_raised(refused))


@pytest.mark.parametrize("code,status", [("SlowDown", 503), ("InternalError", 500), ("ThrottlingException", 400)])
def test_throttled_s3_is_recoverable(code, status):
    client_error = ClientError(
        {"Error": {"Code": code, "Message": "slow down"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListObjectsV2",
    )
    s3fs_error = translate_boto_error(client_error)  # what DVC's S3 filesystem raises for it

    def preflight_like():
        try:
            raise s3fs_error from client_error
        except Exception as e:
            raise RemoteError(f"DVC remote 'storage' is unreachable: {type(e).__name__}: {e}.") from e

    _assert_recoverable(_raised(preflight_like))


def test_wrong_input_is_not_recoverable(tmp_path, s3_endpoint):
    no_repo = _preflight_error(f"file://{tmp_path}/nothing.git", tmp_path / "a")
    assert isinstance(no_repo, TargetError)
    _assert_not_recoverable(no_repo)

    assert isinstance(_raised(lambda: resolve_target(str(tmp_path / "missing"))), TargetError)
    _assert_not_recoverable(_raised(lambda: resolve_target(str(tmp_path / "missing"))))
    _assert_not_recoverable(_raised(lambda: validate_exp_name("bad name")))

    no_bucket = _preflight_error(
        _repo(tmp_path / "b", remote="s3://no-such-bucket/dvc", endpoint=s3_endpoint), tmp_path / "b"
    )
    assert isinstance(no_bucket, RemoteError) and "does not exist" in str(no_bucket)
    _assert_not_recoverable(no_bucket)

    no_remote = _preflight_error(_repo(tmp_path / "c"), tmp_path / "c")
    assert isinstance(no_remote, RemoteError) and "no default DVC remote" in str(no_remote)
    _assert_not_recoverable(no_remote)

    _assert_not_recoverable(ExperimentExistsError("experiment 'x' already exists in ... from another run"))
    _assert_not_recoverable(ValueError("a bug, not the bridge"))


def test_the_error_classes_say_what_is_transient():
    assert issubclass(PushError, TransientError) and PushError.transient
    for cls in (BridgeError, TargetError, RemoteError, ExperimentExistsError):
        assert not cls.transient, cls
    already = FlyteRecoverableException("already recoverable")
    assert _through(already) is already


def test_check_target_task_turns_an_unreachable_remote_into_a_recoverable_error(tmp_path):
    """The task itself (the workflow's check_target, run locally by flytekit): transient out as
    FlyteRecoverableException, wrong input out as it is."""
    from workflows.tune_train import check_target

    url = _repo(tmp_path, remote="s3://bucket/dvc", endpoint=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(FlyteRecoverableException, match=r"RemoteError: DVC remote 'storage' is unreachable") as info:
        check_target(repo_url=url, exp_name="transient", base_rev="")
    assert isinstance(info.value.__cause__, RemoteError)
    # Wrong input is not recoverable: a local run ends it as one short line (tasks.flyte.refusals), not retried.
    with pytest.raises(Exception) as wrong:
        check_target(repo_url=str(tmp_path / "missing"), exp_name="wrong", base_rev="")
    err = wrong.value
    while err is not None and not isinstance(err, TargetError):
        assert not isinstance(err, FlyteRecoverableException), err
        err = err.__cause__ or err.__context__
    assert err is not None and "does not exist" in str(err), wrong.value
    assert check_target.metadata.retries >= 1  # a recoverable error is only worth raising where Flyte may retry
