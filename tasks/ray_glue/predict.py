"""Batch prediction with Ray Data: a registered model scores every sample of a data set, batch by batch.

In memory (`run_predict`): the features go into Ray's object store once; `ray.data.range(n).map_batches(Scorer,
...)` hands each Scorer actor (the model built and loaded once per actor) batches of row ids, which it gathers
from that one copy and scores. Rows come back with their ids, so predictions line up with the data whatever
order the batches finish in.

Streamed (`run_predict_shards`), for a directory of Parquet shards larger than a node: Ray Data reads the
manifest's files on the cluster (`read_parquet`, the endpoint-only filesystem of `storage`: no credentials
shipped), `ShardScorer` actors decode each batch with the problem's `rows.decode` and score it, and
`write_parquet` writes the predictions as a directory of Parquet files; nothing passes through the driver but
the metrics' pass, which reads back only the written `file`, `output` and `target` columns, file by file.
A row is identified by its source file (`file`, the index in the manifest's files) and `row_hash` (the
64-bit hash of its columns that splits training data, `tasks.data.shards.row_hash`); `split` is the split
that hash puts it in under the problem's fractions (on the data a model was trained on, `test` rows are the
ones it was tested on).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import ray
import torch

from tasks.data.arrays import DataError
from tasks.data.shards import Manifest, decode_checked, row_hash, split_of
from tasks.problem import Problem, TorchMetric, load_problem
from tasks.training.loop import EvalSums

SPLIT = "data"  # the metrics' prefix: "data/accuracy", "data/loss"
SPLIT_NAMES = np.array(["train", "val", "test"])


class MetricSums:
    """The problem's loss and metrics over batches, exact over all of them: the loss and each `Metric`'s batch
    sums are added (as the training loop's evaluation adds them), a `TorchMetric` is updated batch by batch and
    computed once at the end (its torchmetrics object holds the state a non-sum metric needs)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.loss_fn = problem.loss()
        self.summed = [m for m in problem.metrics if not isinstance(m, TorchMetric)]
        self.stateful = [(m, m.make()) for m in problem.metrics if isinstance(m, TorchMetric)]
        self.sums = EvalSums(sums={m.name: 0.0 for m in self.summed})

    @torch.no_grad()
    def add(self, out: torch.Tensor, target: torch.Tensor) -> None:
        if not len(target):
            return
        self.sums.loss_sum += float(self.loss_fn(out, target)) * len(target)
        self.sums.count += len(target)
        for m in self.summed:
            self.sums.sums[m.name] += float(m.batch_sum(out, target))
        for m, metric in self.stateful:
            metric.update(*m.inputs(out, target))

    def scores(self) -> dict[str, float]:
        self.sums.values = {m.name: float(metric.compute()) for m, metric in self.stateful}
        return self.sums.scores(self.problem, SPLIT)


def _columns_of_output(problem: Problem, out: torch.Tensor) -> dict[str, np.ndarray]:
    """prediction (, confidence for classes) of a batch of model outputs."""
    if problem.schema.target == "class":
        confidence, label = torch.softmax(out, dim=1).max(dim=1)
        return {"prediction": label.numpy(), "confidence": confidence.numpy()}
    return {"prediction": out.reshape(len(out), -1)[:, 0].numpy()}


class Scorer:
    """A Ray Data actor: the problem's model with the registered weights, scoring batches of row ids."""

    def __init__(self, problem: str, hp: dict[str, Any], weights: bytes, x: ray.ObjectRef) -> None:
        self.problem = load_problem(problem)
        self.model = self.problem.build_model(hp)
        self.model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        self.model.eval()
        self.x = ray.get(x)  # the object store's copy, read in place

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = batch["id"]
        out = self.model(torch.from_numpy(self.x[rows]))
        return {"row": rows, "output": out.numpy().astype(np.float32), **_columns_of_output(self.problem, out)}


@dataclass
class Scored:
    columns: dict[str, np.ndarray]  # row, prediction (, confidence) (, target): one entry per sample, in row order
    metrics: dict[str, float]  # "data/loss", "data/<metric>" when the data has targets


def run_predict(
    x: np.ndarray,
    y: Optional[np.ndarray],
    problem: str,
    hp: dict[str, Any],
    weights: bytes,
    *,
    batch_size: int = 256,
    concurrency: int = 1,
) -> Scored:
    """Score every row of `x` with Ray Data on the connected Ray cluster; the problem's metrics when `y` is given."""
    p = load_problem(problem)
    n = len(x)
    ds = ray.data.range(n, override_num_blocks=max(1, min(n // max(batch_size, 1), 4 * concurrency)))
    scored = ds.map_batches(
        Scorer,
        fn_constructor_kwargs={"problem": problem, "hp": hp, "weights": weights, "x": ray.put(x)},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
    )
    parts = list(scored.iter_batches(batch_size=None, batch_format="numpy"))
    got = {k: np.concatenate([b[k] for b in parts]) for k in parts[0]} if parts else {}
    order = np.argsort(got["row"], kind="stable") if got else np.array([], dtype=np.int64)
    got = {k: v[order] for k, v in got.items()}
    if len(got.get("row", ())) != n or not np.array_equal(got["row"], np.arange(n)):
        raise RuntimeError(f"batch prediction returned {len(got.get('row', ()))} rows for {n} samples")
    output = got.pop("output")
    metrics: dict[str, float] = {}
    if y is not None:
        got["target"] = y
        sums = MetricSums(p)
        sums.add(torch.from_numpy(output), torch.from_numpy(y))
        metrics = sums.scores()
    return Scored(columns=got, metrics=metrics)


# ----------------------------------------------------------------------------- streamed: Parquet shards


class ShardScorer:
    """A Ray Data actor: decodes a batch of shard rows with the problem's `rows.decode` and scores it.

    Out: file (the source file's index in the manifest), row_hash, split, prediction (, confidence), target and
    output (the model's raw output, a fixed-size list: what the metrics are computed from)."""

    def __init__(self, problem: str, hp: dict[str, Any], weights: bytes, paths: list[str], fractions: list[float]):
        self.problem = load_problem(problem)
        self.columns = list(self.problem.rows.columns)
        self.model = self.problem.build_model(hp)
        self.model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        self.model.eval()
        self.index = {path: i for i, path in enumerate(paths)}
        self.fractions = fractions

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa

        files = np.array([self.index[p] for p in batch["path"]], dtype=np.int32)
        where = f"a batch of {sorted(set(batch['path']))}"
        hashes = row_hash(batch, self.columns)
        x, y = decode_checked({c: batch[c] for c in self.columns}, self.problem, where, self.columns)
        out = self.model(torch.from_numpy(x))
        raw = out.numpy().astype(np.float32)
        columns = {
            "file": pa.array(files),
            "row_hash": pa.array(hashes),
            "split": pa.array(SPLIT_NAMES[split_of(hashes, self.fractions)]),
            **{k: pa.array(v) for k, v in _columns_of_output(self.problem, out).items()},
            "target": pa.array(y),
            "output": _output_column(raw),
        }
        return pa.table(columns)


def _output_column(raw: np.ndarray):
    """The model's outputs as a column: one float for (n,), a fixed-size list for (n, k) (further axes flattened)."""
    import pyarrow as pa

    if raw.ndim == 1:
        return pa.array(raw)
    flat = raw.reshape(len(raw), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _output_of(column, n: int) -> np.ndarray:
    """`_output_column` read back: (n,) or (n, k) float32."""
    import pyarrow as pa

    if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        return np.array(column.flatten()).reshape(n, -1)
    return np.array(column)


@dataclass
class ScoredParts:
    path: str  # the directory of Parquet files written (a local path, or a URI under an object store)
    n: int  # rows scored
    metrics: dict[str, float]  # "data/loss", "data/<metric>" over every row
    files: int  # Parquet files written


def shards_problem(problem_ref: str) -> Problem:
    """The problem, refused naming the fix when it has no Parquet form (`rows`)."""
    p = load_problem(problem_ref)
    if p.rows is None:
        raise DataError(
            f"problem {p.name!r} declares no `rows` (how a Parquet row becomes a sample), so its model cannot score "
            "a directory of Parquet shards: give its Problem a Rows(columns, decode, encode), or give an .npz file."
        )
    return p


def _read_shards(manifest: Manifest):
    """The manifest's files as a lazy Ray Dataset of their columns and `path` (as `datasets.train_dataset` reads)."""
    import ray.data

    from tasks.ray_glue.datasets import paths_and_filesystem, quiet_small_blocks

    ctx = quiet_small_blocks()
    paths, fs = paths_and_filesystem(manifest.files)
    if not all(p.endswith(".parquet") for p in paths):
        ctx.use_datasource_v2 = False  # DVC's content-addressed files: see `datasets.train_dataset`
    ds = ray.data.read_parquet(
        paths, filesystem=fs, columns=list(manifest.columns), file_extensions=None, include_paths=True
    )
    return ds, paths


def _written(path: str, fs) -> list[str]:
    from pyarrow.fs import FileSelector, FileType

    infos = fs.get_file_info(FileSelector(path, recursive=True))
    return sorted(i.path for i in infos if i.type == FileType.File and i.path.endswith(".parquet"))


def run_predict_shards(
    manifest: Manifest,
    problem: str,
    hp: dict[str, Any],
    weights: bytes,
    out: str,
    *,
    batch_size: int = 256,
    concurrency: int = 1,
) -> ScoredParts:
    """Score every row of a sharded data set with Ray Data on the connected cluster, writing the predictions as a
    directory of Parquet files at `out` (a new, empty local directory or object-store prefix); the metrics over
    every row, read back from what was written, and each source file's row count checked against its footer."""
    import pyarrow.parquet as pq
    from pyarrow.fs import LocalFileSystem

    from tasks.ray_glue.storage import ray_storage

    p = shards_problem(problem)
    ds, paths = _read_shards(manifest)
    scored = ds.map_batches(
        ShardScorer,
        fn_constructor_kwargs={
            "problem": problem,
            "hp": hp,
            "weights": weights,
            "paths": paths,
            "fractions": list(manifest.fractions),
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
    )
    path, fs = ray_storage(out)
    scored.write_parquet(path, filesystem=fs)
    fs = fs or LocalFileSystem()
    written = _written(path, fs)
    counts = np.zeros(len(manifest.files), dtype=np.int64)
    sums = MetricSums(p)
    for name in written:
        with fs.open_input_file(name) as f:
            table = pq.read_table(f, columns=["file", "target", "output"])
        counts += np.bincount(table.column("file").to_numpy(), minlength=len(counts))
        output = _output_of(table.column("output").combine_chunks(), len(table))
        sums.add(torch.from_numpy(output), torch.from_numpy(np.array(table.column("target"))))
    expected = np.asarray(manifest.rows, dtype=np.int64)
    if not np.array_equal(counts, expected):
        bad = [(manifest.files[i], int(counts[i]), int(expected[i])) for i in np.flatnonzero(counts != expected)]
        raise RuntimeError(f"batch prediction wrote a row count unlike the files' footers (file, written, rows): {bad}")
    return ScoredParts(path=out, n=int(counts.sum()), metrics=sums.scores(), files=len(written))
