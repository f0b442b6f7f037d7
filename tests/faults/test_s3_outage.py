"""The S3 endpoint of the DVC remote fails after the preflight passed: retried with backoff, then a clear error;
no git ref on the remote ever points at data the DVC remote lacks."""

from __future__ import annotations

import logging
import time

import pytest
from support import assert_refs_have_their_data, bare_remote, exp_refs, git, make_record

from dvc_bridge.bridge import preflight, record_experiment, resolve_target
from dvc_bridge.errors import PushError, RemoteError
from dvc_bridge.gitops import Git
from tasks.record.experiment import MODEL

RETRY_LOGGER = "dvc_bridge.gitops"


def _target(tmp_path, endpoint: str, bucket: str) -> str:
    """A bare git remote whose DVC remote is `bucket` behind `endpoint`; the preflight passes."""
    from tasks.scaffold import scaffold

    seed = tmp_path / "seed"
    scaffold(seed, remote=f"s3://{bucket}/dvc", endpoint=endpoint)
    url = bare_remote(seed, tmp_path / "remote.git")
    preflight(resolve_target(url), Git(), tmp_path / "preflight")
    return url


def _push_retries(caplog) -> list[str]:
    """The backoff of each logged retry of the DVC push, e.g. ["1 s", "2 s"]."""
    return [
        r.getMessage().rsplit("retrying in ", 1)[1]
        for r in caplog.records
        if r.name == RETRY_LOGGER and r.getMessage().startswith("dvc push")
    ]


def test_s3_down_during_push_retries_with_backoff_then_fails_clearly_without_a_ref(tmp_path, flaky_s3, bucket, caplog):
    """Endpoint refused between the preflight and the push: 4 attempts 1, 2, 4 s apart, a PushError that says
    nothing was recorded, no ref on the git remote. Back up, the retry of the same execution lands once, with its data."""
    url = _target(tmp_path, flaky_s3.url, bucket)
    materials = make_record(tmp_path / "m", "exec-outage")
    caplog.set_level(logging.WARNING, logger=RETRY_LOGGER)
    flaky_s3.down()
    started = time.monotonic()
    with pytest.raises(PushError) as info:
        record_experiment(resolve_target(url), "outage", materials, tmp_path / "w1")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert "dvc push to remote 'storage' failed after 4 attempts" in message
    assert "Could not connect to the endpoint URL" in message and flaky_s3.url in message
    assert "no git ref was pushed" in message
    assert _push_retries(caplog) == ["1 s", "2 s", "4 s"]
    assert exp_refs(url) == []
    assert git("ls-remote", url, "refs/heads/*").count("\n") == 0  # main only, no promoted branch
    print(f"refused endpoint: PushError after {elapsed:.1f} s")  # for docs/faults.md; no timing assertion

    flaky_s3.up()
    ref = record_experiment(resolve_target(url), "outage", materials, tmp_path / "w2")
    assert exp_refs(url) == [ref.git_ref]
    clones = assert_refs_have_their_data(url, tmp_path)
    assert (clones[ref.git_ref] / "results/train/model.pth").read_bytes() == materials.dvc_files[MODEL].read_bytes()


def test_s3_back_after_a_failed_push_attempt_lands_the_experiment_with_its_data(tmp_path, flaky_s3, bucket, caplog):
    """Endpoint refused for the first push attempt and back when the retry is logged: the retry pushes the
    data, then the ref; every ref on the remote has its data."""

    class UpOnRetry(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("dvc push"):
                flaky_s3.up()

    url = _target(tmp_path, flaky_s3.url, bucket)
    m = make_record(tmp_path / "m", "exec-flaky")
    handler = UpOnRetry(level=logging.WARNING)
    logging.getLogger(RETRY_LOGGER).addHandler(handler)
    caplog.set_level(logging.WARNING, logger=RETRY_LOGGER)
    flaky_s3.down()
    try:
        ref = record_experiment(resolve_target(url), "flaky", m, tmp_path / "w")
    finally:
        logging.getLogger(RETRY_LOGGER).removeHandler(handler)
    assert _push_retries(caplog) == ["1 s"], "exactly the first push attempt should have failed"
    assert ref.data_pushed and ref.ref_pushed and ref.promoted
    assert exp_refs(url) == [ref.git_ref]
    clones = assert_refs_have_their_data(url, tmp_path)
    assert set(clones) == {"refs/heads/main", ref.git_ref, f"refs/heads/{ref.branch}"}
    assert (clones[ref.git_ref] / "results/train/model.pth").read_bytes() == m.dvc_files[MODEL].read_bytes()


def test_s3_endpoint_that_never_answers_the_connect_fails_the_preflight_clearly(tmp_path, silent_endpoint):
    """A dropped connect is bounded by the bridge's S3 connect timeout (3 s, 2 attempts), not s3fs's 5 s x 5."""
    from tasks.scaffold import scaffold

    scaffold(tmp_path / "seed", remote="s3://nowhere/dvc", endpoint=silent_endpoint)
    url = bare_remote(tmp_path / "seed", tmp_path / "remote.git")
    started = time.monotonic()
    with pytest.raises(
        RemoteError, match=r"DVC remote 'storage' is unreachable: ConnectTimeoutError.*Check its URL, endpoint"
    ):
        preflight(resolve_target(url), Git(), tmp_path / "preflight")
    print(f"silent endpoint: RemoteError after {time.monotonic() - started:.1f} s")  # no timing assertion
