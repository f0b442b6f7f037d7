"""One training epoch, one evaluation pass, loaders, seeding and the DDP batch split. Plain PyTorch, no Flyte or Ray.

Shared by the Tune trials, the Ray Train workers and the plain-process benchmark, so all three
run the same computation for any problem.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from tasks.problem import Problem, TorchMetric, metric_key

EVAL_BATCH = 512


@dataclass
class EvalSums:
    """Sums over an evaluation pass (loss and each metric's batch sums); add them across workers before dividing.

    `values` holds the metrics that are not sums (`TorchMetric`), already computed over all workers.
    """

    loss_sum: float = 0.0
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    def as_vector(self, names: list[str]) -> list[float]:
        return [self.loss_sum, float(self.count), *(self.sums.get(n, 0.0) for n in names)]

    @classmethod
    def from_vector(cls, values: list[float], names: list[str]) -> EvalSums:
        return cls(float(values[0]), int(round(values[1])), {n: float(v) for n, v in zip(names, values[2:])})

    def scores(self, problem: Problem, split: str) -> dict[str, float]:
        """{"<split>/loss": ..., "<split>/<metric>": ...} for this pass."""
        n = max(self.count, 1)
        out = {metric_key(split, "loss"): self.loss_sum / n}
        for m in problem.metrics:
            if isinstance(m, TorchMetric):
                out[metric_key(split, m.name)] = float(self.values[m.name])
            else:
                out[metric_key(split, m.name)] = float(m.finish(self.sums.get(m.name, 0.0) / n))
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def worker_batch_size(global_batch: int, world_size: int) -> int:
    """Each of `world_size` DDP workers takes global_batch / world_size samples a step, so the model trains
    with the global batch the search chose. A remainder is rounded to the nearest whole batch per worker
    (halves up, at least 1): 64 over 3 workers is 21 each, a global batch of 63 (see `effective_global_batch`)."""
    return max(1, math.floor(global_batch / world_size + 0.5))


def effective_global_batch(global_batch: int, world_size: int) -> int:
    return worker_batch_size(global_batch, world_size) * world_size


class ArrayBatches(Dataset):
    """(x, y) batches gathered from in-memory arrays by index: only the batch is copied.

    So read-only arrays (Ray's object store maps one copy per node into every trial and worker)
    are read in place, never copied whole into each process; a batch is a fresh, writable tensor.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])


class EpochBatches:
    """Batches of a streamed source, from a function of the epoch (a new seeded order each epoch), as tensors.

    Stands where a DataLoader stands in `train_epoch` and `evaluate`; `seen` counts the samples of the last pass.
    """

    sampler = None

    def __init__(self, batches: Callable[[int], Iterable[tuple[Any, Any]]]) -> None:
        self.batches, self.epoch, self.seen = batches, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.seen = 0
        for x, y in self.batches(self.epoch):
            if len(y):
                self.seen += len(y)
                yield torch.as_tensor(x), torch.as_tensor(y)


def _whole_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return batch  # the loader's collate step: `ArrayBatches.__getitems__` returns the batch whole


def make_loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A loader over in-memory arrays that reads them in place (`ArrayBatches`); with shuffle, the order
    is DistributedSampler's, so one worker and many see the same epoch order (each rank its own
    interleaved shard).

    For training only when world_size > 1: DistributedSampler pads uneven shards by repeating samples,
    so an evaluation must shard by slicing (`x[rank::world]`) and one loader per shard instead.
    """
    ds = ArrayBatches(x, y)
    if shuffle or world_size > 1:
        sampler = DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, collate_fn=_whole_batch)
    return DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=_whole_batch)


def build(problem: Problem, hp: Mapping[str, Any], seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    seed_everything(seed)
    model = problem.build_model(hp)
    return model, problem.make_optimizer(model.parameters(), hp)


def sum_over_workers(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t` summed over every DDP worker, on the CPU (summed on `device`: NCCL takes no CPU tensors); one process: `t`."""
    if not (dist.is_available() and dist.is_initialized()):
        return t
    on_device = t.to(device)
    dist.all_reduce(on_device)
    return on_device.cpu()


@torch.no_grad()
def start_from_data(
    problem: Problem, model: nn.Module, loader: DataLoader | EpochBatches, device: torch.device = torch.device("cpu")
) -> None:
    """The problem's `init_from_data`, if it has one: the model's starting weights from one pass over this worker's
    training batches (`loader`: its rows with no sampler padding; streamed, Ray Train's equal split may leave out up
    to world_size - 1 rows), its sums totalled over the DDP workers on `device` (`sum_over_workers`; one process:
    its own). Call it before the first epoch, on every worker, and not when resuming (the checkpoint holds the
    weights). What the problem leaves unread is read to the end, so every worker's pass over a shared stream ends."""
    if problem.init_from_data is None:
        return
    if isinstance(loader, EpochBatches):
        loader.set_epoch(0)
    batches = iter(loader)
    problem.init_from_data(model, batches, lambda t: sum_over_workers(t, device))
    for _ in batches:
        pass


def train_epoch(
    model: nn.Module,
    loader: DataLoader | EpochBatches,
    optimizer: torch.optim.Optimizer,
    loss_fn: nn.Module,
    epoch: int = 0,
) -> float:
    """One pass over the loader; returns the mean training loss of this worker's samples."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    elif isinstance(loader, EpochBatches):
        loader.set_epoch(epoch)
    model.train()
    device = next(model.parameters()).device
    total, n = 0.0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
        n += len(yb)
    return total / max(n, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader | EpochBatches, problem: Problem, *, sync: bool = True) -> EvalSums:
    """Sums of this process's pass; `TorchMetric` values computed over every DDP worker's shard (all workers
    must call it), or over this process's alone with `sync=False`."""
    model.eval()
    device = next(model.parameters()).device
    loss_fn = problem.loss()
    sums_of = [m for m in problem.metrics if not isinstance(m, TorchMetric)]
    stateful = {m.name: (m, m.make().to(device)) for m in problem.metrics if isinstance(m, TorchMetric)}
    if not sync:  # torchmetrics' `distributed_available_fn` option: compute over this process's states only
        for _, metric in stateful.values():
            metric.distributed_available_fn = lambda: False
    sums = EvalSums(sums={m.name: 0.0 for m in sums_of})
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        out = model(xb)
        sums.loss_sum += float(loss_fn(out, yb)) * len(yb)
        sums.count += len(yb)
        for m in sums_of:
            sums.sums[m.name] += float(m.batch_sum(out, yb))
        for m, metric in stateful.values():
            metric.update(*m.inputs(out, yb))
    sums.values = {name: float(metric.compute()) for name, (_, metric) in stateful.items()}
    return sums
