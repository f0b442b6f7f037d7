"""Loading, checking, splitting and hashing a problem's data. No Flyte or Ray imports.

What the arrays must look like is the problem's (`tasks.problem.Schema`); this module only knows
where data comes from and how a run splits it. A data source is one string:

* ``""`` or ``embedded:...`` - the problem's embedded default data.
* a local path or any fsspec URI (``s3://bucket/data.npz``, ``file:///...``) to an ``.npz`` with
  keys ``x`` and ``y`` (split here into train / validation / test), or pre-split ``x_train``,
  ``y_train``, ``x_test``, ``y_test`` (optionally ``x_val``, ``y_val``; else validation is carved
  from train); or a directory, if the problem reads directories (digits: MNIST IDX files).
* ``dvc://PATH?repo=REPO&rev=REV`` - a DVC-tracked ``.npz`` in a git repo (URL or local path) at
  a revision; ``repo`` defaults to the current directory's repo, ``rev`` to its HEAD.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from dvc_bridge.storage import fsspec_options
from tasks.problem import Problem

SPLITS = ("train", "val", "test")
ARRAYS = tuple(f"{a}_{s}" for s in SPLITS for a in ("x", "y"))
PRESPLIT = {"x_train", "y_train", "x_test", "y_test"}


class DataError(ValueError):
    """The data cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Source:
    """A parsed data source string."""

    kind: str  # "embedded" | "uri" | "dvc"
    uri: str = ""  # for "embedded": the name recorded ("" or "embedded:...")
    repo: str = ""
    rev: str = ""

    def describe(self, problem: Problem | None = None) -> str:
        if self.kind == "embedded":
            return (problem.default_source if problem else "") or self.uri or "embedded"
        if self.kind == "dvc":
            return f"dvc://{self.uri}?repo={self.repo}&rev={self.rev}"
        return self.uri


@dataclass
class Splits:
    """Prepared float32 features and targets (int64 classes or float32 values), in three seeded splits.

    Tune selects on validation, training reports validation each epoch, test is scored once.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def save(self, path: str | Path) -> None:
        np.savez(path, **{name: getattr(self, name) for name in ARRAYS})

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        with np.load(path) as f:
            return cls(**{name: f[name] for name in ARRAYS})

    def sizes(self) -> dict[str, int]:
        return {s: len(getattr(self, f"y_{s}")) for s in SPLITS}

    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in ARRAYS)

    def content_hash(self) -> str:
        """sha256 over the arrays' bytes, shapes and dtypes: the data version."""
        h = hashlib.sha256()
        for name in ARRAYS:
            a = np.ascontiguousarray(getattr(self, name))
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()


def parse_source(source: str) -> Source:
    source = source.strip()
    if not source or source.startswith("embedded:"):
        return Source("embedded", uri=source)
    if source.startswith("dvc://"):
        parsed = urlparse(source)
        path = (parsed.netloc + parsed.path).strip("/")
        if not path:
            raise DataError(f"dataset {source!r} names no file: use dvc://PATH?repo=REPO&rev=REV.")
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        unknown = set(query) - {"repo", "rev"}
        if unknown:
            raise DataError(f"dataset {source!r} has unknown options {sorted(unknown)}: only repo= and rev= are read.")
        return Source("dvc", uri=path, repo=query.get("repo", ""), rev=query.get("rev", ""))
    return Source("uri", uri=source)


def _check_embedded(source: Source, problem: Problem) -> None:
    if source.uri and source.uri != problem.default_source:
        raise DataError(
            f"dataset {source.uri!r} is not the embedded data of problem {problem.name!r} "
            f"({problem.default_source or 'embedded'}): leave --dataset empty for it, or give a file."
        )


def load_raw(source: Source, problem: Problem) -> tuple[dict[str, np.ndarray], str]:
    """Read and check the arrays a source names; returns them and the resolved DVC revision (if any)."""
    if source.kind == "embedded":
        _check_embedded(source, problem)
        arrays, rev = problem.load_default(), ""
    elif source.kind == "dvc":
        arrays, rev = _load_dvc(source)
    else:
        arrays, rev = _load_uri(source.uri, problem), ""
    check_arrays(arrays, problem, source.describe(problem))
    return arrays, rev


def check_arrays(arrays: dict[str, np.ndarray], problem: Problem, where: str) -> None:
    """Features and targets of the problem's schema; the error names the dataset and the array."""
    try:
        for split in _given_splits(arrays):
            x = prepare_features(arrays[f"x{split}"], problem, f"x{split}")
            prepare_targets(arrays[f"y{split}"], len(x), problem, f"y{split}")
    except DataError as e:
        raise DataError(f"dataset {where!r}: {e}") from e


def _given_splits(arrays: dict[str, np.ndarray]) -> list[str]:
    """The suffixes of the x/y pairs present: [""] for unsplit data, else "_train", ["_val"], "_test"."""
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError("only one of 'x_val' and 'y_val' is given: give both or neither.")
    if "x_train" in arrays:
        return [s for s in ("_train", "_val", "_test") if f"x{s}" in arrays]
    if "x_val" in arrays:
        raise DataError(
            "'x_val' and 'y_val' come with pre-split data only: give 'x_train', 'y_train', 'x_test', 'y_test' too."
        )
    return [""]


def prepare_features(x: np.ndarray, problem: Problem, name: str) -> np.ndarray:
    """float32 features of the schema's per-sample shape, finite; the problem's own preparation applied."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{name} has dtype {x.dtype}: features must be real numbers.")
    if x.ndim == 0:
        raise DataError(f"{name} is a scalar: features must be an array with one row per sample.")
    if not np.isfinite(x).all():
        raise DataError(f"{name} contains NaN or infinite values: clean the data first.")
    shape = tuple(problem.schema.feature_shape)
    try:
        if problem.prepare_features is not None:
            x = problem.prepare_features(x, name)
        elif x.shape[1:] != shape:
            raise ValueError(
                f"{name} has shape {x.shape}: problem {problem.name!r} takes (N, {', '.join(map(str, shape))})."
            )
    except DataError:
        raise
    except ValueError as e:
        raise DataError(str(e)) from e
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != shape:
        raise DataError(
            f"{name} prepares to shape {x.shape}: problem {problem.name!r} expects (N, {', '.join(map(str, shape))})."
        )
    return x


def prepare_targets(y: np.ndarray, n: int, problem: Problem, name: str) -> np.ndarray:
    """int64 class labels 0..classes-1, or finite float32 values; one per sample."""
    y = np.asarray(y)
    schema = problem.schema
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{name} has shape {y.shape}: targets must be one value per sample, shape ({n},).")
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DataError(f"{name} has dtype {y.dtype}: targets must be numbers.")
    if not np.isfinite(y).all():
        raise DataError(f"{name} contains NaN or infinite values: clean the data first.")
    if schema.target == "real":
        return y.astype(np.float32)
    if np.issubdtype(y.dtype, np.floating) and not np.all(y == np.round(y)):
        raise DataError(f"{name} has non-integer values: class labels must be integers 0-{schema.classes - 1}.")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= schema.classes):
        raise DataError(f"{name} has labels in [{y.min()}, {y.max()}]: labels must be in 0-{schema.classes - 1}.")
    return y


def open_location(uri: str):
    """(fs, path) of an existing file or directory at `uri`, or a DataError that says what is wrong."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri, **fsspec_options(uri))
        exists = fs.exists(path)
    except (ImportError, ValueError, OSError) as e:
        raise DataError(f"dataset {uri!r}: cannot open this location ({why(e)}).") from e
    if not exists:
        raise DataError(
            f"dataset {uri!r} does not exist: give an existing .npz file (or a directory the problem reads)."
        )
    return fs, path


def _load_uri(uri: str, problem: Problem) -> dict[str, np.ndarray]:
    fs, path = open_location(uri)
    if fs.isdir(path):
        if problem.read_directory is None:
            raise DataError(
                f"dataset {uri!r} is a directory, and problem {problem.name!r} reads .npz files only: give the file."
            )
        try:
            return problem.read_directory(fs, path, uri)
        except ValueError as e:
            raise DataError(str(e)) from e
    with fs.open(path, "rb") as f:
        return _read_npz(f.read(), uri)


def why(e: BaseException) -> str:
    """`Type: message` of an error and of the error under it, when a library wraps the cause (DVC wraps a missing
    credential in 'failed to load directory'): the line a user needs to fix it."""
    said = f"{type(e).__name__}: {e}"
    cause = e.__cause__ or e.__context__
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    return said if cause is None else f"{said}; under it {type(cause).__name__}: {cause}"


def dvc_commit(source: Source) -> str:
    """The commit a DVC source's `rev` (default: its repo's HEAD) names now; a full sha is taken as is."""
    if re.fullmatch(r"[0-9a-f]{40}", source.rev):
        return source.rev
    from dvc.repo import Repo

    try:
        with Repo.open(source.repo or None, rev=source.rev or None, subrepos=False, uninitialized=False) as r:
            return r.get_rev()  # the opened revision (scm.get_rev() would be the HEAD of a local repo)
    except Exception as e:  # dvc raises many types; all mean the same thing to the user
        raise DataError(
            f"dataset {source.describe()!r}: cannot open the repo at that revision ({why(e)}). "
            "Check repo= (a git URL or path) and rev= (a branch, tag or commit)."
        ) from e


def _load_dvc(source: Source) -> tuple[dict[str, np.ndarray], str]:
    import dvc.api

    resolved = dvc_commit(source)
    try:
        data = dvc.api.read(source.uri, repo=source.repo or None, rev=resolved, mode="rb")
    except Exception as e:  # dvc raises many types; all mean the same thing to the user
        raise DataError(
            f"dataset {source.describe()!r} cannot be read through DVC: {why(e)}. "
            "Check the path is DVC-tracked at that revision and its data is in the repo's DVC remote."
        ) from e
    return _read_npz(data, source.describe()), resolved


def _read_npz(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"dataset {where!r} is not a readable .npz file ({e}).") from e
    if {"x", "y"} <= arrays.keys() or PRESPLIT <= arrays.keys():
        try:
            _given_splits(arrays)
        except DataError as e:
            raise DataError(f"dataset {where!r}: {e}") from e
        return arrays
    raise DataError(
        f"dataset {where!r} has keys {sorted(arrays)}: expected 'x' and 'y', "
        "or 'x_train', 'y_train', 'x_test' and 'y_test' (and optionally 'x_val', 'y_val')."
    )


def make_splits(arrays: dict[str, np.ndarray], problem: Problem, seed: int = 0) -> Splits:
    """Check and prepare the arrays, then split them into train / validation / test (seeded; stratified for classes).

    Unsplit data is split by the problem's fractions; pre-split data keeps its test split, and its
    validation split if it has one, else validation is carved from train at the same fraction.
    """
    val_fraction, test_fraction = problem.split
    parts = {}
    for split in _given_splits(arrays):
        x = prepare_features(arrays[f"x{split}"], problem, f"x{split}")
        parts[split] = (x, prepare_targets(arrays[f"y{split}"], len(x), problem, f"y{split}"))
    stratify = problem.schema.stratified
    if "" in parts:
        x, y = parts.pop("")
        rest, test = split_indices(y, test_fraction, seed, stratify)
        parts["_test"] = (x[test], y[test])
        parts["_train"] = (x[rest], y[rest])
    if "_val" not in parts:
        x, y = parts["_train"]
        total = len(y) + len(parts["_test"][1])
        train, val = split_indices(y, min(0.5, val_fraction * total / max(len(y), 1)), seed + 1, stratify)
        parts["_train"], parts["_val"] = (x[train], y[train]), (x[val], y[val])
    splits = Splits(*(a for s in ("_train", "_val", "_test") for a in parts[s]))
    sizes = splits.sizes()
    if sum(sizes.values()) < problem.schema.min_samples or min(sizes.values()) == 0:
        raise DataError(
            f"the dataset splits into {sizes['train']} train, {sizes['val']} validation and {sizes['test']} test samples: "
            f"problem {problem.name!r} needs at least {problem.schema.min_samples} in all and none empty."
        )
    return splits


def split_indices(y: np.ndarray, fraction: float, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, part) of a seeded split with `fraction` of the samples in `part`; per class when stratified."""
    if not 0 < fraction < 1:
        raise DataError(f"split fraction {fraction} must be between 0 and 1.")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == label) for label in np.unique(y)] if stratify else [np.arange(len(y))]
    rest, part = [], []
    for idx in groups:
        idx = rng.permutation(idx)
        n_part = int(round(len(idx) * fraction))
        part.append(idx[:n_part])
        rest.append(idx[n_part:])
    return rng.permutation(np.concatenate(rest)), rng.permutation(np.concatenate(part))


def pin_source(source: str, problem: Problem) -> tuple[str, str]:
    """(source, version): the source pinned to what it names now, and a version of that content.

    Run uncached before the cached data preparation, so a cache hit means the same data: a DVC
    source without `rev` is pinned to the commit its repo's HEAD is at now (a nightly run trains
    on the newest revision), a file or object-store URI is versioned by its storage metadata
    (ETag, size, mtime), the embedded data by the problem and the content it loads.
    """
    parsed = parse_source(source)
    if parsed.kind == "embedded":
        _check_embedded(parsed, problem)
        h = hashlib.sha256(problem.name.encode())
        for name, a in sorted(problem.load_default().items()):
            h.update(f"{name}:{np.asarray(a).dtype.str}:{np.shape(a)}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return source, f"{problem.name}:{h.hexdigest()}"
    if parsed.kind == "dvc":
        rev = dvc_commit(parsed)
        return Source("dvc", uri=parsed.uri, repo=parsed.repo, rev=rev).describe(), rev
    fs, path = open_location(parsed.uri)
    files = sorted(fs.find(path)) if fs.isdir(path) else [path]
    infos = [
        {k: str(v) for k, v in fs.info(f).items() if k in ("size", "ETag", "etag", "mtime", "LastModified", "md5_hash")}
        for f in files
    ]
    return source, hashlib.sha256(repr(list(zip(files, infos))).encode()).hexdigest()
