"""The fast path for large models: boto3's threaded upload to the key DVC uses, then `dvc push`."""

from __future__ import annotations

import logging
import os

import boto3
from support import assert_experiment_in_remote, make_record

from dvc_bridge import fastpush
from dvc_bridge.bridge import record_experiment, resolve_target
from tasks.record.experiment import MODEL


def test_a_large_model_goes_up_by_the_fast_path_and_reads_back_through_dvc(
    tmp_path, remote_target, bucket, s3_endpoint, monkeypatch, caplog
):
    m = make_record(tmp_path / "m", "exec-big")
    m.dvc_files[MODEL].write_bytes(os.urandom(fastpush.LARGE_BYTES + 1024))  # just over the threshold
    uploads = []
    real = fastpush._upload
    monkeypatch.setattr(fastpush, "_upload", lambda *a: uploads.append(real(*a)) or uploads[-1])
    with caplog.at_level(logging.WARNING):
        ref = record_experiment(resolve_target(remote_target), "exp-big", m, tmp_path / "w")
    assert uploads == [1], caplog.text  # the model, by boto3; DVC pushed the small files
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert any(k.startswith("dvc/files/md5/") for k in keys)
    assert ref.data_pushed and ref.ref_pushed
    assert_experiment_in_remote(remote_target, "exp-big", m.dvc_files[MODEL].read_bytes(), tmp_path)


def test_a_remote_the_fast_path_does_not_handle_is_left_to_dvc(tmp_path):
    class Repo:  # only the config is read before deciding
        config = {"remote": {"r": {"url": "s3://b/p", "profile": "team"}, "l": {"url": "/srv/dvc"}}}

    assert fastpush.preupload_large_files(Repo(), "r") == 0
    assert fastpush.preupload_large_files(Repo(), "l") == 0
