"""pin_source: what makes a cached data preparation safe when the data behind a name changes."""

from __future__ import annotations

import os

import boto3
import numpy as np
import pytest

from tasks.data.arrays import DataError, pin_source
from tasks.problem import load_problem

DIGITS = load_problem("digits")


def test_a_local_file_gets_a_new_version_when_its_content_changes(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((20, 784), np.uint8), y=np.arange(20) % 10)
    source, v1 = pin_source(str(path), DIGITS)
    assert source == str(path) and pin_source(str(path), DIGITS)[1] == v1
    np.savez(path, x=np.ones((30, 784), np.uint8), y=np.arange(30) % 10)
    os.utime(path, (1, 1))  # even with an old mtime, the size differs
    assert pin_source(str(path), DIGITS)[1] != v1


def test_an_object_store_uri_is_versioned_by_its_etag(s3_endpoint, bucket, monkeypatch):
    monkeypatch.setenv("FLYTE_AWS_ENDPOINT", s3_endpoint)  # what a Flyte pod is given
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.put_object(Bucket=bucket, Key="d.npz", Body=b"one")
    _, v1 = pin_source(f"s3://{bucket}/d.npz", DIGITS)
    s3.put_object(Bucket=bucket, Key="d.npz", Body=b"two")
    assert pin_source(f"s3://{bucket}/d.npz", DIGITS)[1] != v1


def test_a_missing_dataset_is_refused_by_name(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        pin_source(str(tmp_path / "nope.npz"), DIGITS)


def test_the_embedded_set_is_versioned_by_its_problem_and_content():
    source, version = pin_source("", DIGITS)
    assert source == "" and version.startswith("digits:") and pin_source("", DIGITS)[1] == version
    assert pin_source("", load_problem("diabetes"))[1].startswith("diabetes:")
    assert pin_source(DIGITS.default_source, DIGITS)[1] == version  # what params.yaml records reads back


def test_another_problems_embedded_data_is_refused():
    with pytest.raises(DataError, match="not the embedded data of problem 'diabetes'"):
        pin_source(DIGITS.default_source, load_problem("diabetes"))
