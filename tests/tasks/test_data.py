"""tasks/data.py: source strings, loading (npz, IDX, embedded), checking, splitting and hashing."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from tasks.data import (
    EMBEDDED_SOURCE,
    IDX_FILES,
    MIN_SAMPLES,
    DataError,
    Source,
    Splits,
    load_raw,
    make_splits,
    parse_idx,
    parse_source,
    stratified_split,
)


# --------------------------------------------------------------------------- parse_source


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_parse_source_empty_is_embedded(text):
    src = parse_source(text)
    assert src.kind == "embedded"
    assert src.describe() == EMBEDDED_SOURCE


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


def test_load_raw_npz_with_x_and_y(synthetic, write_npz):
    x, y = synthetic()
    path = write_npz(x=x, y=y)
    arrays, rev = load_raw(parse_source(str(path)))
    assert rev == ""
    np.testing.assert_array_equal(arrays["x"], x)
    np.testing.assert_array_equal(arrays["y"], y)


def test_load_raw_npz_through_file_uri(synthetic, write_npz):
    x, y = synthetic()
    path = write_npz(x=x, y=y)
    arrays, _ = load_raw(parse_source(path.as_uri()))
    np.testing.assert_array_equal(arrays["x"], x)


def test_load_raw_missing_file(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError, match="does not exist") as info:
        load_raw(parse_source(str(missing)))
    assert str(missing) in str(info.value)


def test_load_raw_not_an_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_raw(parse_source(str(path)))


@pytest.mark.parametrize(
    "keys",
    [
        ("images", "labels"),
        ("x",),
        ("x_train", "y_train", "x_test"),  # pre-split but incomplete
    ],
)
def test_load_raw_wrong_keys(synthetic, write_npz, keys):
    x, y = synthetic()
    arrays = {k: (y if k.startswith("y") or k == "labels" else x) for k in keys}
    path = write_npz(**arrays)
    with pytest.raises(DataError) as info:
        load_raw(parse_source(str(path)))
    message = str(info.value)
    assert "'x' and 'y'" in message and "'x_train'" in message
    for k in keys:
        assert repr(k) in message  # the keys found are listed


# --------------------------------------------------------------------------- make_splits


@pytest.mark.parametrize("shape", [(784,), (28, 28), (1, 28, 28)])
def test_make_splits_accepts_each_image_shape(synthetic, shape):
    x, y = synthetic(200)
    s = make_splits({"x": x.reshape((len(x), *shape)), "y": y}, test_fraction=0.2, seed=0)
    assert s.x_train.shape == (160, 1, 28, 28)
    assert s.x_test.shape == (40, 1, 28, 28)
    assert s.y_train.shape == (160,) and s.y_test.shape == (40,)
    assert s.x_train.dtype == np.float32 and s.x_test.dtype == np.float32
    assert s.y_train.dtype == np.int64 and s.y_test.dtype == np.int64


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float64])
def test_make_splits_normalizes_pixels_to_unit_range(synthetic, dtype):
    x, y = synthetic(200)
    x = x.astype(dtype)
    x[5, 10] = 255
    x[6, 10] = 0
    s = make_splits({"x": x, "y": y}, seed=0)
    both = np.concatenate([s.x_train, s.x_test])
    assert both.dtype == np.float32
    assert both.min() == 0.0 and both.max() == 1.0
    # Every row is the source row divided by 255, and its label travels with it.
    for xs, ys in ((s.x_train, s.y_train), (s.x_test, s.y_test)):
        idx = np.rint(xs[:, 0, 0, 0] * 255).astype(int)
        np.testing.assert_allclose(xs.reshape(len(xs), -1), x[idx].astype(np.float32) / 255, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(ys, y[idx])


def test_make_splits_train_and_test_partition_the_samples(synthetic):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, seed=3)
    train_ids = np.rint(s.x_train[:, 0, 0, 0] * 255).astype(int)
    test_ids = np.rint(s.x_test[:, 0, 0, 0] * 255).astype(int)
    assert len(set(train_ids) & set(test_ids)) == 0
    assert sorted(np.concatenate([train_ids, test_ids]).tolist()) == list(range(200))


def test_make_splits_is_deterministic_for_a_seed(synthetic):
    x, y = synthetic(200)
    a = make_splits({"x": x, "y": y}, seed=7)
    b = make_splits({"x": x, "y": y}, seed=7)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.content_hash() == b.content_hash()


def test_make_splits_differs_for_another_seed(synthetic):
    x, y = synthetic(200)
    a = make_splits({"x": x, "y": y}, seed=0)
    b = make_splits({"x": x, "y": y}, seed=1)
    a_test = set(np.rint(a.x_test[:, 0, 0, 0] * 255).astype(int).tolist())
    b_test = set(np.rint(b.x_test[:, 0, 0, 0] * 255).astype(int).tolist())
    assert a_test != b_test
    assert a.content_hash() != b.content_hash()


def test_make_splits_is_stratified(synthetic):
    counts = [40, 30, 20, 20, 20, 20, 15, 15, 10, 10]
    x, y = synthetic(counts=counts)
    s = make_splits({"x": x, "y": y}, test_fraction=0.2, seed=0)
    expected_test = np.array([round(c * 0.2) for c in counts])
    np.testing.assert_array_equal(np.bincount(s.y_test, minlength=10), expected_test)
    np.testing.assert_array_equal(np.bincount(s.y_train, minlength=10), np.array(counts) - expected_test)
    # Class shares are the same in both parts as in the whole.
    shares = np.array(counts) / sum(counts)
    np.testing.assert_allclose(np.bincount(s.y_train, minlength=10) / len(s.y_train), shares, atol=0.01)
    np.testing.assert_allclose(np.bincount(s.y_test, minlength=10) / len(s.y_test), shares, atol=0.01)


def test_make_splits_shuffles_within_each_part(synthetic):
    x, y = synthetic(200)  # labels cycle 0..9 in source order
    s = make_splits({"x": x, "y": y}, seed=0)
    # Not grouped by class: a class-ordered concatenation would be sorted.
    assert not np.all(np.diff(s.y_train) >= 0)
    assert not np.all(np.diff(s.y_test) >= 0)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_make_splits_rejects_bad_test_fraction(synthetic, fraction):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="test_fraction"):
        make_splits({"x": x, "y": y}, test_fraction=fraction)


def test_stratified_split_indices_partition():
    y = np.repeat(np.arange(10), 20)
    train, test = stratified_split(y, 0.25, seed=0)
    assert len(test) == 50 and len(train) == 150
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(200))


def test_pre_split_npz_is_kept_as_given(synthetic, write_npz):
    x, y = synthetic(200)
    x_tr, y_tr, x_te, y_te = x[:150].reshape(150, 28, 28), y[:150], x[150:].reshape(50, 28, 28), y[150:]
    path = write_npz(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    arrays, _ = load_raw(parse_source(str(path)))
    s = make_splits(arrays, test_fraction=0.5, seed=99)  # fraction and seed do not apply
    np.testing.assert_allclose(s.x_train[:, 0], x_tr.astype(np.float32) / 255, atol=1e-6)
    np.testing.assert_allclose(s.x_test[:, 0], x_te.astype(np.float32) / 255, atol=1e-6)
    np.testing.assert_array_equal(s.y_train, y_tr)
    np.testing.assert_array_equal(s.y_test, y_te)
    assert s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64


# --------------------------------------------------------------------------- content_hash


def test_content_hash_is_stable(synthetic, tmp_path):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, seed=0)
    h = s.content_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    assert s.content_hash() == h
    s.save(tmp_path / "splits.npz")
    loaded = Splits.load(tmp_path / "splits.npz")
    assert loaded.content_hash() == h
    # Equal arrays in new objects (not views of the same memory) hash the same.
    copy = Splits(*(getattr(s, n).copy() for n in ("x_train", "y_train", "x_test", "y_test")))
    assert copy.content_hash() == h


def test_content_hash_changes_when_one_pixel_changes(synthetic):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, seed=0)
    h = s.content_hash()
    x2 = x.copy()
    x2[123, 400] = (int(x2[123, 400]) + 1) % 256
    s2 = make_splits({"x": x2, "y": y}, seed=0)
    assert s2.content_hash() != h
    s.x_test[0, 0, 5, 5] += 1e-3
    assert s.content_hash() != h


def test_content_hash_changes_with_labels_shape_and_dtype(synthetic):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y}, seed=0)
    h = s.content_hash()
    relabeled = Splits(s.x_train, s.y_train.copy(), s.x_test, s.y_test)
    relabeled.y_train[0] = (relabeled.y_train[0] + 1) % 10
    assert relabeled.content_hash() != h
    assert Splits(s.x_train, s.y_train.astype(np.int32), s.x_test, s.y_test).content_hash() != h
    assert Splits(s.x_train.reshape(len(s.x_train), 784), s.y_train, s.x_test, s.y_test).content_hash() != h


# --------------------------------------------------------------------------- bad data


def test_wrong_image_shape(synthetic):
    x, y = synthetic(200)
    with pytest.raises(DataError, match=r"x has shape \(200, 27, 27\).*\(N, 28, 28\)"):
        make_splits({"x": x[:, :729].reshape(200, 27, 27), "y": y})


@pytest.mark.parametrize("shape", [(200, 783), (200, 3, 28, 28), (200,), (200, 28, 28, 1)])
def test_other_wrong_image_shapes(synthetic, shape):
    _, y = synthetic(200)
    with pytest.raises(DataError, match="images must be"):
        make_splits({"x": np.zeros(shape, dtype=np.uint8), "y": y})


def test_scalar_images_are_a_data_error():
    with pytest.raises(DataError):
        make_splits({"x": np.array(3), "y": np.zeros(200, dtype=np.int64)})


def test_label_count_mismatch(synthetic):
    x, y = synthetic(200)
    with pytest.raises(DataError, match=r"y has shape \(199,\).*one integer per image, shape \(200,\)"):
        make_splits({"x": x, "y": y[:199]})


def test_two_dimensional_labels(synthetic):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="one integer per image"):
        make_splits({"x": x, "y": np.eye(10, dtype=np.int64)[y]})  # one-hot


@pytest.mark.parametrize("bad", [10, -1, 255])
def test_labels_out_of_range(synthetic, bad):
    x, y = synthetic(200)
    y = y.copy()
    y[17] = bad
    with pytest.raises(DataError, match=r"labels must be in 0-9"):
        make_splits({"x": x, "y": y})


@pytest.mark.parametrize(
    "dtype, value, message", [(np.float32, np.nan, "NaN"), (np.float64, np.inf, "infinite")]
)
def test_non_finite_pixels(synthetic, dtype, value, message):
    x, y = synthetic(200)
    x = x.astype(dtype)
    x[3, 100] = value
    with pytest.raises(DataError, match=message):
        make_splits({"x": x, "y": y})


@pytest.mark.parametrize("value", [256.0, -1.0])
def test_pixels_out_of_range(synthetic, value):
    x, y = synthetic(200)
    x = x.astype(np.float32)
    x[0, 0] = value
    with pytest.raises(DataError, match="pixels must be in 0-255"):
        make_splits({"x": x, "y": y})


def test_non_numeric_images(synthetic):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="numeric"):
        make_splits({"x": x.astype(str), "y": y})


def test_float_labels_with_fractions(synthetic):
    x, y = synthetic(200)
    y = y.astype(np.float64)
    y[8] = 2.5
    with pytest.raises(DataError, match="non-integer"):
        make_splits({"x": x, "y": y})


def test_float_labels_nan(synthetic):
    x, y = synthetic(200)
    y = y.astype(np.float32)
    y[8] = np.nan
    with pytest.raises(DataError, match="non-integer"):
        make_splits({"x": x, "y": y})


def test_integral_float_labels_are_accepted(synthetic):
    x, y = synthetic(200)
    s = make_splits({"x": x, "y": y.astype(np.float32)}, seed=0)
    assert s.y_train.dtype == np.int64
    ref = make_splits({"x": x, "y": y}, seed=0)
    np.testing.assert_array_equal(s.y_train, ref.y_train)


def test_string_labels(synthetic):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="labels must be integers"):
        make_splits({"x": x, "y": y.astype(str)})


def test_too_few_samples(synthetic):
    x, y = synthetic(MIN_SAMPLES - 1)
    with pytest.raises(DataError, match=rf"has {MIN_SAMPLES - 1} samples: at least {MIN_SAMPLES}"):
        make_splits({"x": x, "y": y})


def test_exactly_min_samples_is_enough(synthetic):
    x, y = synthetic(MIN_SAMPLES)
    s = make_splits({"x": x, "y": y})
    assert len(s.y_train) + len(s.y_test) == MIN_SAMPLES


def test_too_few_samples_pre_split(synthetic):
    x, y = synthetic(90)
    with pytest.raises(DataError, match=r"at least 100 in all"):
        make_splits({"x_train": x[:60], "y_train": y[:60], "x_test": x[60:], "y_test": y[60:]})


def test_empty_test_split_pre_split(synthetic):
    x, y = synthetic(200)
    with pytest.raises(DataError, match="non-empty test split"):
        make_splits({"x_train": x, "y_train": y, "x_test": x[:0], "y_test": y[:0]})


def test_empty_test_split_after_splitting(synthetic):
    x, y = synthetic(200)  # 20 per class: round(20 * 0.01) == 0 test samples
    with pytest.raises(DataError, match="non-empty test split"):
        make_splits({"x": x, "y": y}, test_fraction=0.01)


def test_bad_data_through_a_file(synthetic, write_npz):
    """The same checks apply to arrays loaded from a file, at load time, and the error names the file."""
    x, y = synthetic(200)
    x = x.astype(np.float32)
    x[0, 0] = np.nan
    path = write_npz(x=x, y=y)
    with pytest.raises(DataError, match=rf"^dataset '{path}': x contains NaN"):
        load_raw(parse_source(str(path)))


@pytest.mark.parametrize(
    "broken, message",
    [
        ({"x": "27x27"}, r"x has shape \(200, 27, 27\): images must be \(N, 28, 28\)"),
        ({"y": "labels 0-11"}, r"y has labels in \[0, 11\]: labels must be in 0-9"),
        ({"y_test": "one short"}, r"y_test has shape \(49,\): labels must be one integer per image, shape \(50,\)"),
    ],
)
def test_wrong_shape_or_labels_are_refused_at_load_naming_the_dataset(synthetic, write_npz, broken, message):
    x, y = synthetic(200)
    x = x.reshape(200, 28, 28)
    if "x" in broken:
        x = x[:, :27, :27]
    if "y" in broken:
        y = y + 2 * (y >= 8)  # 8, 9 -> 10, 11
    if "y_test" in broken:
        path = write_npz(x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[151:])
    else:
        path = write_npz(x=x, y=y)
    with pytest.raises(DataError, match=rf"^dataset '{path}': {message}"):
        load_raw(parse_source(str(path)))


# --------------------------------------------------------------------------- IDX


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
    return {"x_train": x[:150], "y_train": y[:150].astype(np.uint8), "x_test": x[150:], "y_test": y[150:].astype(np.uint8)}


@pytest.mark.parametrize(
    "gz",
    [set(), set(IDX_FILES), {"x_train", "y_test"}],
    ids=["plain", "gzip", "mixed"],
)
def test_load_idx_directory(tmp_path, idx_arrays, gz):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays, gz)
    arrays, rev = load_raw(parse_source(str(directory)))
    assert rev == ""
    assert set(arrays) == set(IDX_FILES)
    for key, expected in idx_arrays.items():
        assert arrays[key].shape == expected.shape
        np.testing.assert_array_equal(arrays[key], expected)
    s = make_splits(arrays)
    assert s.x_train.shape == (150, 1, 28, 28) and s.x_test.shape == (50, 1, 28, 28)
    np.testing.assert_array_equal(s.y_test, idx_arrays["y_test"].astype(np.int64))
    np.testing.assert_allclose(s.x_train[:, 0], idx_arrays["x_train"] / 255.0, atol=1e-6)


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


def test_truncated_idx_file_in_directory(tmp_path, idx_arrays):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays)
    path = directory / IDX_FILES["x_train"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load_raw(parse_source(str(directory)))
    assert IDX_FILES["x_train"] in str(info.value)


def test_truncated_gzipped_idx_file(tmp_path, idx_arrays):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays, gz=set(IDX_FILES))
    path = directory / (IDX_FILES["y_test"] + ".gz")
    raw = idx_bytes(idx_arrays["y_test"])[:-5]
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="truncated"):
        load_raw(parse_source(str(directory)))


def test_idx_with_trailing_bytes_is_rejected():
    raw = idx_bytes(np.zeros((2, 4), dtype=np.uint8)) + b"\x00"
    with pytest.raises(DataError, match="header says"):
        parse_idx(raw)


@pytest.mark.parametrize("raw", [b"", b"\x00\x00", b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", b"\x01\x00\x08\x01\x00\x00\x00\x00"])
def test_not_an_idx_file(raw):
    with pytest.raises(DataError, match="not an IDX file"):
        parse_idx(raw, "labels.idx")


def test_idx_directory_missing_a_file(tmp_path, idx_arrays):
    directory = tmp_path / "mnist"
    write_idx_dir(directory, idx_arrays)
    (directory / IDX_FILES["y_test"]).unlink()
    with pytest.raises(DataError, match=IDX_FILES["y_test"]) as info:
        load_raw(parse_source(str(directory)))
    assert "four MNIST IDX files" in str(info.value)


# --------------------------------------------------------------------------- embedded


def test_embedded_source_has_5000_balanced_digits(embedded_arrays):
    x, y = embedded_arrays["x"], embedded_arrays["y"]
    assert len(x) == 5000 and len(y) == 5000
    np.testing.assert_array_equal(np.bincount(y.astype(int), minlength=10), np.full(10, 500))


def test_embedded_source_splits(embedded_splits):
    s = embedded_splits
    assert s.x_train.shape == (4000, 1, 28, 28) and s.x_test.shape == (1000, 1, 28, 28)
    assert s.x_train.dtype == np.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(s.y_train, minlength=10), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(s.y_test, minlength=10), np.full(10, 100))
