"""The storage filesystem a Ray driver makes keeps this node's keys for its own use, and ships none."""

from __future__ import annotations

import pickle

import boto3

from tasks.ray_glue.storage import node_pyarrow_s3
from tasks.ray_glue.tune import without_cloud_keys


def test_driver_filesystem_reads_s3_after_tune_hides_the_keys_and_pickles_without_them(
    s3_endpoint, monkeypatch, tmp_path
):
    """Tune's driver hides `AWS_*` while the search runs; the filesystem made before still signs its requests."""
    key, secret = "node-key-3f1c", "node-secret-9a7e"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="node-storage")
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(Bucket="node-storage", Key="a/b.txt", Body=b"kept")
    fs = node_pyarrow_s3(s3_endpoint)
    with without_cloud_keys():
        with fs.open_input_stream("node-storage/a/b.txt") as f:
            assert f.read() == b"kept"
    shipped = pickle.dumps(fs)
    assert key.encode() not in shipped and secret.encode() not in shipped
