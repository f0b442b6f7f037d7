"""Writing a problem's data as Parquet shards (`python -m tasks.shards`). numpy and pyarrow; no Flyte or Ray.

Any built-in problem's embedded data can be written as shards through its `rows.encode`. For digits,
`rows` beyond the 5000 embedded images gives a deterministic enlarged set: copy c of image i is the
image shifted by one of the 25 offsets in [-2, 2]^2 (copy 0 unshifted) and, past 25 copies, dimmed by
5% steps, so every row is distinct. Shards are written one at a time: memory holds one shard.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks.data.arrays import DataError, load_raw, make_splits, parse_source, prepare_features, prepare_targets
from tasks.problem import Problem

SHIFTS = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
SHIFTS.remove((0, 0))
SHIFTS.insert(0, (0, 0))
ROW_GROUP_ROWS = 2048


def base_samples(problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The problem's embedded data, prepared (all rows, unsplit: the shards are split by row hash when read)."""
    raw, _ = load_raw(parse_source(""), problem)
    if "x" not in raw:
        splits = make_splits(raw, problem)
        return (
            np.concatenate([splits.x_train, splits.x_val, splits.x_test]),
            np.concatenate([splits.y_train, splits.y_val, splits.y_test]),
        )
    x = prepare_features(raw["x"], problem, "x")
    return x, prepare_targets(raw["y"], len(x), problem, "y")


def enlarged(x: np.ndarray, y: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows start..stop of the enlarged set of images x (N, 1, H, W): row k is copy k // N of image k % N."""
    k = np.arange(start, stop)
    i, c = k % len(x), k // len(x)
    out = np.empty((len(k), *x.shape[1:]), dtype=x.dtype)
    for copy in np.unique(c):
        sel = c == copy
        dy, dx = SHIFTS[copy % len(SHIFTS)]
        img = np.roll(x[i[sel]], (dy, dx), axis=(-2, -1))
        if dy > 0:
            img[..., :dy, :] = 0
        elif dy < 0:
            img[..., dy:, :] = 0
        if dx > 0:
            img[..., :, :dx] = 0
        elif dx < 0:
            img[..., :, dx:] = 0
        out[sel] = img * (1.0 - 0.05 * ((copy // len(SHIFTS)) % 10))
    return out, y[i]


def write_shards(problem: Problem, out_dir: str | Path, shards: int, rows: int = 0) -> list[Path]:
    """`shards` Parquet files under out_dir holding `rows` rows (0: the embedded data as it is)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if problem.rows is None:
        raise DataError(
            f"problem {problem.name!r} declares no `rows` (how a row becomes a sample): it has no Parquet form."
        )
    if shards < 1:
        raise DataError(f"--shards {shards}: give at least 1.")
    x, y = base_samples(problem)
    rows = rows or len(y)
    grows = len(x.shape) == 4  # images: shifted copies
    if rows > len(y) and not grows:
        raise DataError(
            f"--rows {rows}: problem {problem.name!r} has {len(y)} rows and no enlarged form (digits has one)."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, rows, shards + 1).astype(int)
    written = []
    for s in range(shards):
        a, b = int(bounds[s]), int(bounds[s + 1])
        xs, ys = enlarged(x, y, a, b) if grows else (x[a:b], y[a:b])
        columns = problem.rows.encode(xs, ys)
        table = pa.table({name: pa.array(list(col) if col.dtype == object else col) for name, col in columns.items()})
        path = out / f"part-{s:05d}.parquet"
        pq.write_table(table, path, row_group_size=ROW_GROUP_ROWS)
        written.append(path)
    return written
