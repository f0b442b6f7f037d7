"""The bridge process SIGKILLed between pushing the data and pushing a git ref; a Flyte-style retry
(same execution id, same files) yields exactly one experiment, with its data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from support import assert_refs_have_their_data, exp_refs, git

CHILD = Path(__file__).with_name("record_child.py")

# A pre-push hook, put in place through git's environment (no hook in the bridge): when the bridge pushes a
# ref under $FRD_TEST_KILL_ON, the bridge process is SIGKILLed and the push refused.
PRE_PUSH = """#!/bin/sh
while read local_ref local_sha remote_ref remote_sha; do
  case "$remote_ref" in
    "$FRD_TEST_KILL_ON"*) kill -9 "$FRD_TEST_BRIDGE_PID"; exit 1;;
  esac
done
exit 0
"""


def _record(url: str, workdir: Path, kill_on: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if kill_on:
        hooks = workdir / "hooks"
        hooks.mkdir(parents=True)
        (hooks / "pre-push").write_text(PRE_PUSH)
        (hooks / "pre-push").chmod(0o755)
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="core.hooksPath",
            GIT_CONFIG_VALUE_0=str(hooks),
            FRD_TEST_KILL_ON=kill_on,
        )
    return subprocess.run(
        [sys.executable, str(CHILD), url, "killed", "exec-killed", str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "kill_on, refs_left",
    [
        ("refs/exps/", 0),  # data pushed, experiment ref not
        ("refs/heads/", 1),  # data and experiment ref pushed, promotion branch not
    ],
    ids=["before-experiment-ref", "before-promotion-branch"],
)
def test_bridge_killed_between_data_and_ref_push_then_retried_lands_once(
    tmp_path, remote_target, s3_endpoint, bucket, kill_on, refs_left
):
    first = _record(remote_target, tmp_path / "attempt1", kill_on=kill_on)
    assert first.returncode == -9, f"the bridge was not killed:\n{first.stdout}\n{first.stderr[-2000:]}"
    objects = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket, Prefix="dvc/")
    assert objects.get("KeyCount", 0) >= 1, "the kill should come after the data push"
    left = exp_refs(remote_target)
    assert len(left) == refs_left
    assert git("ls-remote", remote_target, "refs/heads/exp-killed") == ""
    assert_refs_have_their_data(remote_target, tmp_path / "after-kill")  # what did land is complete

    retry = _record(remote_target, tmp_path / "attempt2")  # Flyte's retry: same execution, same inputs, new pod
    assert retry.returncode == 0, retry.stderr[-3000:]
    ref = json.loads(retry.stdout.strip().splitlines()[-1])
    assert exp_refs(remote_target) == [ref["git_ref"]]
    if left:  # the retry found its own experiment and did not make a second one
        assert git("ls-remote", remote_target, left[0]).startswith(ref["commit"])
    assert ref["promoted"] and git("ls-remote", remote_target, "refs/heads/exp-killed").startswith(ref["commit"])
    clones = assert_refs_have_their_data(remote_target, tmp_path / "after-retry")
    model = (tmp_path / "attempt1" / "m" / "model.pth").read_bytes()
    assert (tmp_path / "attempt2" / "m" / "model.pth").read_bytes() == model
    assert (clones[ref["git_ref"]] / "results/train/model.pth").read_bytes() == model
