"""One training step, one evaluation pass, loaders and seeding. Plain PyTorch, no Flyte or Ray.

Shared by the Tune trials, the Ray Train workers and the plain-process benchmark, so all three
run the same computation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from tasks.model import ConvNet
from tasks.settings import HyperParams


@dataclass
class EvalSums:
    """Sums over an evaluation pass; add them across workers before dividing."""

    loss_sum: float
    correct: int
    count: int

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    """A loader over in-memory arrays; with world_size > 1 each rank sees its own shard."""
    ds = TensorDataset(torch.tensor(x), torch.tensor(y))  # copies: object-store arrays are read-only
    if world_size > 1:
        sampler = DistributedSampler(ds, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
        return DataLoader(ds, batch_size=batch_size, sampler=sampler)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator)


def make_optimizer(model: nn.Module, hp: HyperParams) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum)


def build(hp: HyperParams, seed: int) -> tuple[ConvNet, torch.optim.Optimizer]:
    seed_everything(seed)
    model = ConvNet()
    return model, make_optimizer(model, hp)


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, epoch: int = 0) -> float:
    """One pass over the loader; returns the mean training loss."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    model.train()
    device = next(model.parameters()).device
    loss_fn = nn.CrossEntropyLoss()
    total, n = 0.0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(yb)
        n += len(yb)
    return total / max(n, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> EvalSums:
    model.eval()
    device = next(model.parameters()).device
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    loss_sum, correct, count = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        loss_sum += loss_fn(out, yb).item()
        correct += (out.argmax(1) == yb).sum().item()
        count += len(yb)
    return EvalSums(loss_sum, correct, count)
