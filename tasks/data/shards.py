"""Data as a directory of Parquet shards: the source, its manifest, the schema check, the splits. No Flyte or Ray.

The streaming path, for data larger than a node. A source is a *directory of Parquet files*:

* a local directory, or an ``s3://`` prefix (any fsspec URI), whose ``*.parquet`` files are the shards;
* ``dvc://DIR?repo=REPO&rev=REV`` where DIR is a DVC-tracked directory: its files are listed with their
  md5 at that revision (DVC's filesystem reads the directory's manifest, the `.dir` object), and each is
  read straight from the repo's DVC remote at its content-addressed URL (``<remote>/files/md5/ab/cdef...``),
  never pulled.

`resolve` makes the `Manifest` (file URLs, row counts from the Parquet footers, the directory's DVC hash
and commit, the split rule) and checks the schema on a sample of row groups before any cluster starts.

Splits are by a hash of each row's content (`row_hash`), so they need no pass over the data and no
state: a row is in train, validation or test wherever and whenever it is read, and identical rows
fall in the same split. Stratification: not enforced; the hash is independent of the label, so each
class splits by the same fractions in expectation (on 5000 digits every class is within a few rows
of its share), which is what a stratified split guarantees exactly only for data held whole.

`iter_samples` streams one split of a manifest with pyarrow in the calling process (Tune trials use
it: no Ray Data tasks competing with trials for CPUs).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlparse

import numpy as np

from dvc_bridge.storage import fsspec_options
from tasks.data.arrays import DataError, Source, parse_source, prepare_features, prepare_targets, why
from tasks.problem import Problem

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
SAMPLE_FILES = 4  # files whose first row group is decoded and checked before a run
SAMPLE_ROWS = 1024
HASH_SEED = 0x9E3779B97F4A7C15


@dataclass
class Manifest:
    """A sharded data set at one version: what every reader reads, with no credentials in it."""

    source: str  # the source as given, pinned ("dvc://DIR?repo=...&rev=<commit>", a prefix, a path)
    problem: str
    columns: list[str]
    files: list[str]  # URLs of the Parquet files (for DVC: content-addressed URLs in its remote)
    rows: list[int]  # rows per file, from the Parquet footers
    content_ids: list[str]  # per file: its DVC md5, or its storage ETag/size/mtime
    fractions: list[float]  # validation and test fractions
    dvc_md5: str = ""  # the directory's DVC hash (the `.dir` md5), for a dvc:// source
    dvc_rev: str = ""  # the commit it was read at
    split_rule: str = ""
    sha256: str = ""  # over files, content ids, rows and the split rule: the data version

    @property
    def total_rows(self) -> int:
        return sum(self.rows)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        return cls(**json.loads(text))


# ----------------------------------------------------------------------------- which sources are shards


def is_sharded(source: str) -> bool:
    """Whether a source names a directory of Parquet files (streamed) rather than data loaded whole."""
    parsed = parse_source(source)
    if parsed.kind == "embedded":
        return False
    if parsed.kind == "dvc":
        return _dvc_isdir(parsed)
    fs, path = _fs(parsed.uri)
    try:
        return fs.isdir(path) and any(p.endswith(".parquet") for p in fs.find(path))
    except (OSError, ValueError):
        return False


def _fs(uri: str):
    import fsspec

    return fsspec.core.url_to_fs(uri, **fsspec_options(uri))


def open_file(url: str):
    """A binary file object for a shard URL, read with this node's own credentials and endpoint."""
    fs, path = _fs(url)
    return fs.open(path, "rb")


def _dvcfs(source: Source):
    from dvc.api import DVCFileSystem

    return DVCFileSystem(source.repo or None, rev=source.rev or None, subrepos=False)


def _dvc_isdir(source: Source) -> bool:
    try:
        return _dvcfs(source).isdir(source.uri)
    except Exception:  # an unreadable repo is the in-memory path's error to report, with its own message
        return False


# ----------------------------------------------------------------------------- the manifest


def resolve_to_file(source: str, problem: Problem, problem_ref: str, directory: Path) -> tuple[Manifest, Path]:
    """`resolve`, the manifest written as JSON under `directory` (what a task hands on), and its line in the log."""
    manifest = resolve(source, problem, problem_ref)
    path = directory / f"manifest-{manifest.sha256[:16]}.json"
    path.write_text(manifest.to_json())
    print(
        f"streaming {len(manifest.files)} Parquet files, {manifest.total_rows} rows"
        + (f", DVC directory {manifest.dvc_md5} at {manifest.dvc_rev[:8]}" if manifest.dvc_md5 else ""),
        flush=True,
    )
    return manifest, path


def resolve(source: str, problem: Problem, problem_ref: str = "") -> Manifest:
    """The manifest of a sharded source, its schema checked on a sample of row groups; a DataError names the fix."""
    if problem.rows is None:
        raise DataError(
            f"dataset {source!r} is a directory of Parquet shards, and problem {problem.name!r} declares no `rows` "
            "(how a row becomes a sample): give its Problem a Rows(columns, decode, encode), or give an .npz file."
        )
    parsed = parse_source(source)
    if parsed.kind == "dvc":
        files, ids, dir_md5, rev, pinned = _dvc_files(parsed)
    else:
        files, ids = _listed_files(parsed.uri)
        dir_md5, rev, pinned = "", "", parsed.uri
    if not files:
        raise DataError(f"dataset {source!r} holds no .parquet files: write shards with `python -m tasks.shards`.")
    rows = _footers(files, list(problem.rows.columns), source)
    val, test = problem.split
    rule = (
        f"row-hash: 64-bit hash of columns {list(problem.rows.columns)} (seed {HASH_SEED:#x}), "
        f"u = hash / 2^64; test if u < {test}, validation if u < {test + val}, else train"
    )
    manifest = Manifest(
        source=pinned,
        problem=problem_ref or problem.name,
        columns=list(problem.rows.columns),
        files=files,
        rows=rows,
        content_ids=ids,
        fractions=[val, test],
        dvc_md5=dir_md5,
        dvc_rev=rev,
        split_rule=rule,
    )
    manifest.sha256 = hashlib.sha256(json.dumps([files, ids, rows, rule]).encode()).hexdigest()
    check_sample(manifest, problem)
    return manifest


def _listed_files(uri: str) -> tuple[list[str], list[str]]:
    fs, path = _fs(uri)
    try:
        found = sorted(p for p in fs.find(path, detail=True).items() if p[0].endswith(".parquet"))
    except (OSError, ValueError) as e:
        raise DataError(f"dataset {uri!r}: cannot list this directory ({why(e)}).") from e
    keys = ("ETag", "etag", "size", "mtime", "LastModified")
    urls = [fs.unstrip_protocol(p) if urlparse(uri).scheme else p for p, _ in found]
    ids = [hashlib.md5(repr([str(info.get(k)) for k in keys]).encode()).hexdigest() for _, info in found]
    return urls, ids


def _dvc_files(source: Source) -> tuple[list[str], list[str], str, str, str]:
    """(URLs in the DVC remote, md5s, the directory's .dir md5, the commit, the pinned source) of a dvc:// directory."""
    from dvc.repo import Repo

    from tasks.data.arrays import dvc_commit

    rev = dvc_commit(source)
    pinned = Source("dvc", uri=source.uri, repo=source.repo, rev=rev)
    try:
        fs = _dvcfs(pinned)
        dir_md5 = fs.info(source.uri).get("md5") or ""
        listed = sorted(
            (p, i.get("md5")) for p, i in fs.find(source.uri, detail=True).items() if p.endswith(".parquet")
        )
        with Repo.open(source.repo or None, rev=rev, subrepos=False, uninitialized=False) as repo:
            odb = repo.cloud.get_remote_odb(None, hash_name="md5")
            urls = [odb.fs.unstrip_protocol(odb.oid_to_path(md5)) for _, md5 in listed]
    except Exception as e:  # dvc raises many types; all mean the same thing to the user
        raise DataError(
            f"dataset {pinned.describe()!r}: cannot list the DVC-tracked directory and its remote "
            f"({why(e)}). Check the path is a DVC-tracked directory at that revision and the repo "
            "has a default DVC remote."
        ) from e
    if any(not md5 for _, md5 in listed):
        raise DataError(f"dataset {pinned.describe()!r}: some files have no md5; is the directory DVC-tracked?")
    return urls, [md5 for _, md5 in listed], dir_md5.removesuffix(".dir"), rev, pinned.describe()


def _footers(files: list[str], columns: list[str], where: str) -> list[int]:
    """Rows per file from the Parquet footers; every file must have every column."""
    import pyarrow.parquet as pq

    def one(url: str) -> int:
        try:
            with open_file(url) as f:
                meta = pq.ParquetFile(f).metadata
                names = set(meta.schema.to_arrow_schema().names)
        except FileNotFoundError as e:
            raise DataError(
                f"dataset {where!r}: file {url} is missing (for a dvc:// directory: `dvc push` its data to the remote)."
            ) from e
        except Exception as e:
            raise DataError(f"dataset {where!r}: file {url} is not a readable Parquet file ({e}).") from e
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataError(
                f"dataset {where!r}: file {url} has no column {missing[0]!r} (it has {sorted(names)}); "
                f"the problem reads columns {columns}."
            )
        return meta.num_rows

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, files))


def check_sample(manifest: Manifest, problem: Problem) -> None:
    """Decode the first row group of a few files (spread over the set) and check it against the problem's schema."""
    import pyarrow.parquet as pq

    picks = sorted({int(i) for i in np.linspace(0, len(manifest.files) - 1, min(SAMPLE_FILES, len(manifest.files)))})
    for i in picks:
        url = manifest.files[i]
        with open_file(url) as f:
            pf = pq.ParquetFile(f)
            if pf.metadata.num_row_groups == 0:
                continue
            table = pf.read_row_group(0, columns=manifest.columns).slice(0, SAMPLE_ROWS)
        for name in manifest.columns:
            if table.column(name).null_count:
                raise DataError(f"dataset {manifest.source!r}: file {url}, column {name!r} has null values.")
        decode_checked(columns_of(table), problem, f"file {url}", manifest.columns)


def columns_of(table) -> dict[str, np.ndarray]:
    """A pyarrow table's columns as numpy (binary columns as object arrays of bytes), as Ray Data hands them."""
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def decode_checked(
    columns: dict[str, np.ndarray], problem: Problem, where: str, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """The problem's decode of a batch, then the same checks as data loaded whole; errors name where and the columns."""
    try:
        x, y = problem.rows.decode(columns)
    except (ValueError, TypeError, KeyError) as e:
        raise DataError(f"{where}: columns {names} do not decode for problem {problem.name!r}: {e}") from e
    try:
        x = prepare_features(x, problem, f"the features decoded from columns {names}")
        y = prepare_targets(y, len(x), problem, f"the target decoded from columns {names}")
    except DataError as e:
        raise DataError(f"{where}: {e}") from e
    return x, y


# ----------------------------------------------------------------------------- splits by row content


def _row_bytes(a: np.ndarray) -> np.ndarray:
    """(n, k) uint8: each row's bytes (numbers as stored; byte strings joined when of equal length)."""
    if a.dtype == object:
        lengths = {len(v) for v in a}
        if len(lengths) <= 1:
            width = lengths.pop() if lengths else 0
            return np.frombuffer(b"".join(a), dtype=np.uint8).reshape(len(a), width)
        digests = [hashlib.blake2b(bytes(v), digest_size=8).digest() for v in a]
        return np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(a), 8)
    a = np.ascontiguousarray(a.reshape(len(a), -1))
    return a.view(np.uint8).reshape(len(a), -1)


def row_hash(columns: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    """A 64-bit hash of each row's values in `names` (vectorized FNV-1a over 8-byte words, then splitmix64)."""
    n = len(columns[names[0]])
    data = np.concatenate([_row_bytes(np.asarray(columns[c])) for c in names], axis=1)
    pad = (-data.shape[1]) % 8
    if pad:
        data = np.concatenate([data, np.zeros((n, pad), np.uint8)], axis=1)
    words = np.ascontiguousarray(data).view(np.uint64)
    h = np.full(n, HASH_SEED, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * prime
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h


def split_of(hashes: np.ndarray, fractions: list[float]) -> np.ndarray:
    """0 train, 1 validation, 2 test for each row hash (its top 53 bits as a uniform number in [0, 1))."""
    val, test = fractions
    u = (hashes >> np.uint64(11)).astype(np.float64) / float(2**53)
    return np.where(u < test, 2, np.where(u < test + val, 1, 0)).astype(np.int8)


def part_of(hashes: np.ndarray, parts: int) -> np.ndarray:
    """Which of `parts` disjoint parts a row is in (the hash's low bits; independent of its split)."""
    return (hashes % np.uint64(max(parts, 1))).astype(np.int64)


def split_mask(columns: dict[str, np.ndarray], names: list[str], fractions: list[float], split: str) -> np.ndarray:
    return split_of(row_hash(columns, names), fractions) == SPLIT_CODES[split]


# ----------------------------------------------------------------------------- streaming in one process


def iter_samples(
    manifest: Manifest,
    problem: Problem,
    split: str,
    batch_size: int,
    *,
    seed: Optional[int] = None,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches (x, y) of one split, read file by file and row group by row group with pyarrow.

    `seed`: shuffle the file order and the rows within each row group (a new seed per epoch gives a
    new order); None reads in order. `part=(i, k)`: only the rows of part i of k (disjoint, exact).
    Memory: one row group and one batch at a time.
    """
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed) if seed is not None else None
    order = rng.permutation(len(manifest.files)) if rng is not None else range(len(manifest.files))
    names = manifest.columns
    buf_x: list[np.ndarray] = []
    buf_y: list[np.ndarray] = []
    held = 0
    for i in order:
        with open_file(manifest.files[i]) as f:
            pf = pq.ParquetFile(f)
            for g in range(pf.metadata.num_row_groups):
                cols = columns_of(pf.read_row_group(g, columns=names))
                h = row_hash(cols, names)
                keep = split_of(h, manifest.fractions) == SPLIT_CODES[split]
                if part[1] > 1:
                    keep &= part_of(h, part[1]) == part[0]
                if not keep.any():
                    continue
                x, y = decode_checked({k: v[keep] for k, v in cols.items()}, problem, manifest.files[i], names)
                if rng is not None:
                    p = rng.permutation(len(y))
                    x, y = x[p], y[p]
                buf_x.append(x)
                buf_y.append(y)
                held += len(y)
                while held >= batch_size:
                    xs, ys = np.concatenate(buf_x), np.concatenate(buf_y)
                    yield xs[:batch_size], ys[:batch_size]
                    buf_x, buf_y, held = [xs[batch_size:]], [ys[batch_size:]], len(ys) - batch_size
    if held:
        yield np.concatenate(buf_x), np.concatenate(buf_y)
