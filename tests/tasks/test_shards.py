"""Parquet shards: the writer command, the manifest (local, S3, a DVC directory read from its remote without pull),
the schema check before any cluster, the splits by row hash, streaming in one process. Real files, real S3 on
loopback, real DVC; no Ray cluster."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from support import PROJECT_ROOT, dvc, git

from tasks.data.arrays import DataError, load_raw, parse_source, prepare_features
from tasks.data.shard_writer import write_shards
from tasks.data.shards import is_sharded, iter_samples, resolve, row_hash, split_of
from tasks.problem import load_problem

DIGITS = load_problem("digits")
DIABETES = load_problem("diabetes")


def _all(manifest, problem, split, **kw):
    batches = list(iter_samples(manifest, problem, split, 500, **kw))
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_shards_command_writes_an_enlarged_digits_set(tmp_path):
    out = tmp_path / "digits"
    proc = subprocess.run(
        [sys.executable, "-m", "tasks.shards", "digits", str(out), "--shards", "3", "--rows", "7000"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 3
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 7000
    manifest = resolve(str(out), DIGITS)
    assert manifest.total_rows == 7000 and manifest.rows == [pq.ParquetFile(f).metadata.num_rows for f in files]
    # Rows 0..4999 are the embedded digits themselves (decode(encode(x)) == x, to the pixel); the rest are distinct.
    raw, _ = load_raw(parse_source(""), DIGITS)
    x0 = prepare_features(raw["x"], DIGITS, "x")
    table = pq.read_table(files[0])
    x, y = DIGITS.rows.decode({c: table.column(c).to_numpy(zero_copy_only=False) for c in ("pixels", "label")})
    n = len(y)
    np.testing.assert_allclose(x, x0[:n], atol=0.5 / 255)
    assert (y == raw["y"][:n]).all()
    all_rows = [r for f in files for r in pq.read_table(f).column("pixels").to_pylist()]
    assert len(set(all_rows)) > 6900, "shifted copies are new rows (a few blank-edged images may coincide)"
    # Deterministic: the same command writes the same bytes.
    again = tmp_path / "again"
    write_shards(DIGITS, again, 3, 7000)
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in sorted(again.glob("*.parquet"))]


def test_diabetes_has_a_parquet_form_and_refuses_growth(tmp_path):
    write_shards(DIABETES, tmp_path / "d", 2)
    manifest = resolve(str(tmp_path / "d"), DIABETES)
    assert manifest.total_rows == 442
    x, y = _all(manifest, DIABETES, "train")
    assert x.shape[1:] == (10,) and x.dtype == np.float32 and y.dtype == np.float32
    with pytest.raises(DataError, match="no enlarged form"):
        write_shards(DIABETES, tmp_path / "e", 2, rows=1000)


def test_splits_by_row_hash_are_disjoint_exact_and_deterministic(tmp_path):
    write_shards(DIGITS, tmp_path / "s", 4)
    manifest = resolve(str(tmp_path / "s"), DIGITS)
    sizes = {s: len(_all(manifest, DIGITS, s)[1]) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == 5000  # every row in exactly one split
    assert 400 <= sizes["val"] <= 600 and 400 <= sizes["test"] <= 600, sizes
    # Deterministic by content: the split of a row does not depend on where or in what order it is read.
    table = pq.read_table(sorted((tmp_path / "s").glob("*.parquet"))[1])
    cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in ("pixels", "label")}
    codes = split_of(row_hash(cols, ["pixels", "label"]), [0.1, 0.1])
    rev = {c: v[::-1] for c, v in cols.items()}
    assert (split_of(row_hash(rev, ["pixels", "label"]), [0.1, 0.1]) == codes[::-1]).all()
    # Parts are disjoint and cover the split exactly (how ranks share validation): nothing dropped or repeated.
    _, val = _all(manifest, DIGITS, "val")
    parts = [_all(manifest, DIGITS, "val", part=(i, 3))[1] for i in range(3)]
    assert sum(len(p) for p in parts) == len(val)
    assert sorted(np.concatenate(parts).tolist()) == sorted(val.tolist())
    # A seeded shuffle reorders train; the same seed, the same order; the rows are the same.
    a, b, c = (_all(manifest, DIGITS, "train", seed=s)[1] for s in (1, 1, 2))
    assert (a == b).all() and not (a == c).all() and sorted(a.tolist()) == sorted(c.tolist())
    # Stratification is not enforced, but every class keeps its share within a few points.
    _, y_all = _all(manifest, DIGITS, "train")
    share = np.bincount(val, minlength=10) / np.bincount(y_all, minlength=10)
    assert ((share > 0.07) & (share < 0.2)).all(), share


def _table_with(tmp_path, name, **columns):
    d = tmp_path / name
    d.mkdir()
    write_shards(DIGITS, d, 2)
    pq.write_table(pa.table(columns), d / "part-99999.parquet")
    return d


def test_bad_files_and_columns_are_refused_naming_them(tmp_path):
    pixels = [bytes(784)] * 10
    d = _table_with(tmp_path, "missing", pixels=pixels, digit=list(range(10)))
    with pytest.raises(DataError, match=r"part-99999\.parquet has no column 'label'"):
        resolve(str(d), DIGITS)
    d = _table_with(tmp_path, "labels", pixels=pixels, label=[12] * 10)
    with pytest.raises(DataError, match=r"part-99999\.parquet.*labels in \[12, 12\]"):
        resolve(str(d), DIGITS)
    d = _table_with(tmp_path, "short", pixels=[bytes(100)] * 10, label=[1] * 10)
    with pytest.raises(DataError, match=r"part-99999\.parquet.*'pixels' must hold 784 bytes"):
        resolve(str(d), DIGITS)
    d = _table_with(tmp_path, "nulls", pixels=pixels, label=[1, None] * 5)
    with pytest.raises(DataError, match=r"part-99999\.parquet, column 'label' has null values"):
        resolve(str(d), DIGITS)
    d = tmp_path / "junk"
    d.mkdir()
    (d / "a.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"a\.parquet is not a readable Parquet file"):
        resolve(str(d), DIGITS)


def test_sources_choose_the_path(tmp_path):
    write_shards(DIGITS, tmp_path / "s", 2)
    np.savez(tmp_path / "d.npz", x=np.zeros((200, 784)), y=np.zeros(200))
    assert is_sharded(str(tmp_path / "s"))
    assert not is_sharded("") and not is_sharded(str(tmp_path / "d.npz"))


def test_s3_prefix_and_dvc_directory_stream_from_object_storage_without_pull(
    tmp_path, s3_endpoint, bucket, monkeypatch
):
    """A DVC-tracked directory, pushed to an S3 remote and gone from every cache, is listed from the repo and
    read from the remote's content-addressed files; an s3:// prefix of shards is read as it is."""
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "--quiet", cwd=repo)
    dvc("init", "--quiet", cwd=repo)
    dvc("remote", "add", "-d", "s3", f"s3://{bucket}/dvc", cwd=repo)
    dvc("remote", "modify", "s3", "endpointurl", s3_endpoint, cwd=repo)
    write_shards(DIGITS, repo / "data/digits", 3)
    dvc("add", "data/digits", cwd=repo)
    dvc("push", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "shards", cwd=repo)
    md5 = yaml.safe_load((repo / "data/digits.dvc").read_text())["outs"][0]["md5"].removesuffix(".dir")
    commit = git("rev-parse", "HEAD", cwd=repo)
    subprocess.run(["rm", "-rf", str(repo / ".dvc/cache"), str(repo / "data/digits")], check=True)

    manifest = resolve(f"dvc://data/digits?repo={repo}", DIGITS)
    assert manifest.dvc_md5 == md5 and manifest.dvc_rev == commit
    assert manifest.source == f"dvc://data/digits?repo={repo}&rev={commit}"
    assert all(f.startswith(f"s3://{bucket}/dvc/files/md5/") for f in manifest.files), manifest.files
    assert manifest.total_rows == 5000
    assert sum(len(_all(manifest, DIGITS, s)[1]) for s in ("train", "val", "test")) == 5000
    assert not (repo / ".dvc/cache").exists() or not any(p.is_file() for p in (repo / ".dvc/cache").rglob("*"))

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    local = tmp_path / "plain"
    write_shards(DIGITS, local, 2)
    fs.put(str(local) + "/", f"{bucket}/plain/", recursive=True)
    prefix = resolve(f"s3://{bucket}/plain", DIGITS)
    assert prefix.files == [f"s3://{bucket}/plain/part-0000{i}.parquet" for i in range(2)]
    assert prefix.total_rows == 5000 and is_sharded(f"s3://{bucket}/plain")


def test_what_ray_ships_to_read_s3_holds_no_credentials(monkeypatch, s3_endpoint):
    from tasks.ray_glue.datasets import paths_and_filesystem

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "sekrit-never-pickled")
    paths, fs = paths_and_filesystem(["s3://b/dvc/files/md5/ab/cdef"])
    assert paths == ["b/dvc/files/md5/ab/cdef"]
    shipped = pickle.dumps(fs)
    assert b"sekrit-never-pickled" not in shipped and s3_endpoint.encode() in shipped
