"""Ray Data for the streaming path: the train split of a `Manifest`'s Parquet shards as a Ray Dataset,
and what a Ray Train worker iterates. Imports Ray, not Flyte.

* The datasets read the manifest's file URLs (`file_extensions=None`: DVC's content-addressed files
  have no extension) through a filesystem that pickles as its endpoint only (`storage.node_pyarrow_s3`),
  so each node reads with its own credentials; each keeps its split's rows by row hash (`shards.split_of`).
* Training: `train` is split over the workers (`DataConfig(datasets_to_split=["train"])`, a streaming
  split), re-read each epoch in a new seeded file order (`FileShuffleConfig`) and a seeded local shuffle.
* Validation and test are read by the workers straight from storage with pyarrow (`shards.iter_samples`),
  not through Ray Data: exact (rank r evaluates the rows whose hash puts them in part r of `world`:
  disjoint parts, every row once, sums all-reduced; rank 0 scores all of test once), and no further
  Ray Data executions, each of which would budget its own share of the object store beside train's.
* Memory: blocks are kept small (`SMALL_BLOCK_BYTES`) and the execution's budget is a quarter of the
  object store (`STORE_SHARE`; Ray Data's default is half), so backpressure, not spilling, bounds what
  is in flight. The local shuffle is this module's (`HeapShuffle`), on decoded samples in the worker's
  own memory, not Ray Data's (`local_shuffle_buffer_size`): Ray's buffer holds the Arrow blocks zero-copy,
  so every block with a row still in it stays pinned in the object store, outside the execution's budget
  (the workers report only their prefetch window). Measured with a 100 MiB store, 2 workers, 16 KiB rows:
  each worker pinned 8-9 blocks (about 40 MiB), and with Ray Data's own share the store overflowed and
  spilled (136-152 MiB at 4x the store). A worker now holds the block it decodes and the one it prefetches:
  from 1x to 10x the store, nothing spilled and references held under 30 MiB of it (bench/README.md).
"""

from __future__ import annotations

from typing import Callable, Iterator
from urllib.parse import urlparse

import numpy as np
import torch

from dvc_bridge.storage import s3_endpoint
from tasks.data.shards import Manifest, columns_of, decode_checked, iter_samples, part_of, row_hash, split_mask
from tasks.problem import Problem, load_problem
from tasks.training.loop import EpochBatches

SMALL_BLOCK_BYTES = 4 * 2**20
STORE_SHARE = 0.25  # of the cluster's object store, for the train dataset's execution (Ray's default: half)
SHUFFLE_BUFFER_ROWS = 2048
SHUFFLE_BUFFER_BYTES = 64 * 2**20  # of decoded samples, in the worker's heap: wide samples get fewer rows


def quiet_small_blocks():
    """Small blocks (so a small object store holds many), and no progress bars (pages of them in a task log)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.target_max_block_size = min(ctx.target_max_block_size or SMALL_BLOCK_BYTES, SMALL_BLOCK_BYTES)
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    return ctx


class KeepSplit:
    """A `map_batches` function: the rows of one split (by row hash), as a pyarrow table."""

    def __init__(self, columns: list[str], fractions: list[float], split: str) -> None:
        self.columns, self.fractions, self.split = columns, fractions, split

    def __call__(self, table):
        import pyarrow as pa

        mask = split_mask(columns_of(table), self.columns, self.fractions, self.split)
        return table.filter(pa.array(mask))


def paths_and_filesystem(files: list[str]):
    """Paths as Ray's reader takes them and the filesystem to read them with (None: local files)."""
    from tasks.ray_glue.storage import node_pyarrow_s3

    schemes = {urlparse(f).scheme for f in files}
    if schemes <= {"", "file"}:
        return [urlparse(f).path if f.startswith("file://") else f for f in files], None
    if schemes <= {"s3", "s3a"}:
        return [f.split("://", 1)[1] for f in files], node_pyarrow_s3(s3_endpoint())
    return files, None  # another object store: pyarrow resolves it itself


def train_dataset(manifest: Manifest, seed: int = 0):
    """The train split as a lazy Ray Dataset over the manifest's files (a new seeded file order each epoch)."""
    import ray.data
    from ray.data import FileShuffleConfig

    ctx = quiet_small_blocks()
    paths, fs = paths_and_filesystem(manifest.files)
    # The V1 Parquet reader, always. Ray 2.60's V2 turns file_extensions=None into ["parquet"] and so finds none
    # of DVC's content-addressed files (no extension); and each execution (each epoch) of a V2 read starts a pool
    # of up to 32 FooterReader actors (RAY_DATA_PARQUET_FOOTER_NUM_ACTORS), a process of ~100 MiB each: measured,
    # 14 of them at 10x the store (125 files), 1.3 GiB of the run's peak PSS, more the more files there are.
    ctx.use_datasource_v2 = False
    ds = ray.data.read_parquet(
        paths,
        filesystem=fs,
        columns=list(manifest.columns),
        file_extensions=None,
        shuffle=FileShuffleConfig(seed=seed, reseed_after_execution=True),
    )
    return ds.map_batches(KeepSplit(list(manifest.columns), list(manifest.fractions), "train"), batch_format="pyarrow")


def data_config():
    """Train split over the workers; its execution budgets `STORE_SHARE` of the cluster's object store.

    Given here, not through the driver's DataContext: Ray Train's controller (an actor) resolves the
    ingest options from its own DataContext, so limits set on the driver's would be lost.
    """
    import ray
    from ray.data import ExecutionOptions, ExecutionResources
    from ray.train import DataConfig

    store = ray.cluster_resources().get("object_store_memory", 0)
    limits = ExecutionResources(object_store_memory=int(store * STORE_SHARE)) if store else None
    options = ExecutionOptions(resource_limits=limits) if limits else ExecutionOptions()
    return DataConfig(datasets_to_split=["train"], execution_options={"train": options})


def _decoder(problem: Problem, names: list[str], part: tuple[int, int] = (0, 1)) -> Callable:
    def collate(batch: dict[str, np.ndarray]):
        if part[1] > 1:
            keep = part_of(row_hash(batch, names), part[1]) == part[0]
            batch = {k: v[keep] for k, v in batch.items()}
        if not len(batch[names[0]]):
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return decode_checked(batch, problem, "a streamed batch", names)

    return collate


class HeapShuffle:
    """A seeded local shuffle of decoded samples in this process's memory: batches are drawn at random from a
    buffer of `rows` samples (fewer where `rows` of them would pass `SHUFFLE_BUFFER_BYTES`), refilled as data comes.

    Every sample added is copied into the buffer, so no sample keeps a view of a block (in the object store).
    """

    def __init__(self, rows: int, batch_size: int, seed: int) -> None:
        self.rows, self.batch_size = rows, max(1, batch_size)
        self.rng = np.random.default_rng(seed)
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not len(y):
            return
        if self.x is None:
            self.x, self.y = np.array(x), np.array(y)  # copies
            per_row = max(1, self.x.nbytes // len(self.x) + self.y.nbytes // len(self.y))
            self.rows = max(self.batch_size, min(self.rows, SHUFFLE_BUFFER_BYTES // per_row))
        else:
            self.x, self.y = np.concatenate([self.x, x]), np.concatenate([self.y, y])
        extra = (len(self.y) - self.rows) // self.batch_size
        if extra > 0:
            yield from self._draw(extra)

    def drain(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.y is not None and len(self.y):
            yield from self._draw(-(-len(self.y) // self.batch_size))
        self.x = self.y = None

    def _draw(self, batches: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.rng.permutation(len(self.y))
        taken = order[: batches * self.batch_size]
        for i in range(0, len(taken), self.batch_size):
            pick = taken[i : i + self.batch_size]
            yield torch.from_numpy(self.x[pick]), torch.from_numpy(self.y[pick])
        kept = order[len(taken) :]
        self.x, self.y = self.x[kept], self.y[kept]


def worker_streams(
    manifest: Manifest, problem_ref: str, batch_size: int, seed: int, rank: int, world: int, eval_batch: int
) -> tuple[EpochBatches, EpochBatches, Callable[[], EpochBatches]]:
    """(train, val, test) batches for this Ray Train worker: its share of train from Ray Data (a seeded order
    each epoch), its disjoint part of validation and (rank 0) all of test, read straight from storage."""
    import ray.train

    quiet_small_blocks()
    problem = load_problem(problem_ref)
    names = list(manifest.columns)
    train_shard = ray.train.get_dataset_shard("train")

    def train(epoch: int) -> Iterator:
        decode = _decoder(problem, names)
        shuffle = HeapShuffle(SHUFFLE_BUFFER_ROWS, batch_size, seed * 1000 + epoch * 10 + rank)
        # Whole blocks (batch_size=None), decoded at once: the block's object is released as soon as it is
        # decoded, and the shuffle buffer holds samples in this process's memory, not the object store's.
        for block in train_shard.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            yield from shuffle.add(*decode(block))
        yield from shuffle.drain()

    val = EpochBatches(lambda epoch: iter_samples(manifest, problem, "val", eval_batch, part=(rank, world)))
    return (
        EpochBatches(train),
        val,
        lambda: EpochBatches(lambda epoch: iter_samples(manifest, problem, "test", eval_batch)),
    )
