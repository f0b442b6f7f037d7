"""A data set to score with a model: every sample of a source, prepared as training prepares it. No Flyte or Ray.

The sources are tune_train_wf's `--dataset` (the problem's embedded data when empty, a path or fsspec URI
of an .npz or of a directory the problem reads, dvc://PATH?repo=REPO&rev=REV). All the samples are scored:
an unsplit set's `x`, or a pre-split set's train, validation and test in that order. An .npz with `x` and
no `y` has no targets (predictions only, no metrics).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from tasks.data.arrays import (
    DataError,
    check_arrays,
    load_raw,
    open_location,
    parse_source,
    prepare_features,
    prepare_targets,
)
from tasks.problem import Problem

ORDER = ("", "_train", "_val", "_test")


@dataclass
class Batch:
    x: np.ndarray  # prepared features, float32, (N, *feature_shape)
    y: Optional[np.ndarray]  # prepared targets, or None
    source: str  # the source as resolved
    rev: str  # the DVC revision read, if any

    def content_hash(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.x).tobytes())
        if self.y is not None:
            h.update(np.ascontiguousarray(self.y).tobytes())
        return h.hexdigest()


def _features_only(uri: str) -> Optional[dict[str, np.ndarray]]:
    """An .npz file that holds `x` and no `y`: its arrays; None for anything else."""
    import io

    if not uri.endswith(".npz"):
        return None
    fs, path = open_location(uri)
    with fs.open(path, "rb") as f:
        try:
            with np.load(io.BytesIO(f.read()), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as e:
            raise DataError(f"dataset {uri!r} is not a readable .npz file ({e}).") from e
    return arrays if "x" in arrays and "y" not in arrays else None


def load_batch(source: str, problem: Problem) -> Batch:
    """Every sample of `source`, checked against the problem's schema (the error names the array and the fix)."""
    parsed = parse_source(source)
    where = parsed.describe(problem)
    only_x = _features_only(parsed.uri) if parsed.kind == "uri" else None
    if only_x is not None:
        try:
            x = prepare_features(only_x["x"], problem, "x")
        except DataError as e:
            raise DataError(f"dataset {where!r}: {e}") from e
        return Batch(x=x, y=None, source=where, rev="")
    arrays, rev = load_raw(parsed, problem)
    check_arrays(arrays, problem, where)
    parts = [s for s in ORDER if f"x{s}" in arrays]
    x = np.concatenate([prepare_features(arrays[f"x{s}"], problem, f"x{s}") for s in parts])
    y = np.concatenate([prepare_targets(arrays[f"y{s}"], len(arrays[f"y{s}"]), problem, f"y{s}") for s in parts])
    return Batch(x=x, y=y, source=where, rev=rev)
