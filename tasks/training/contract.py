"""The plain-loop contract: what a problem's `train_loop(ctx)` gets, and how it reports, checkpoints and resumes.

    def train_loop(ctx: LoopContext) -> None:
        model = ctx.prepare_model(build(ctx.hp))                 # DDP-wrapped on its device under Ray Train
        optimizer = torch.optim.AdamW(model.parameters(), lr=ctx.hp["lr"])
        if ctx.resume:                                           # the state of the last report, after a restart
            model.load_state_dict(ctx.resume["model"])         # (into the module under DDP: ctx.unwrap(model))
            optimizer.load_state_dict(ctx.resume["optimizer"])
        for epoch in range(ctx.start_epoch, ctx.epochs + 1):
            ctx.set_epoch(epoch)                                 # this epoch's shuffle of ctx.train_loader
            for x, y in ctx.train_loader: ...                    # this worker's shard, at its share of the batch
            ctx.report(epoch, {"train/loss": ..., **ctx.evaluate(model), "lr": ...},
                       model=model, state={"optimizer": optimizer.state_dict()})

What it gets: the hyper-parameters (`hp`, complete and typed), the problem, the train loader of this
worker's shard (batches of `batch_size / world_size`: the tuned batch is the global one) and its slice
of the validation split, the device, the epochs, the epoch to start from and the state to resume from.

What it reports, once an epoch, on every worker (a report is a barrier under Ray Train): `train/loss`,
`val/loss` and `val/<select>` at least (other `val/<metric>` and `lr` as it likes); `ctx.evaluate(model)`
computes every `val/` metric of the problem, exact across workers. Each report is a checkpoint: the model's
state_dict (the DDP wrapper removed) and `state` (what `torch.save` writes and `torch.load(weights_only=True)`
reads: state_dicts, tensors, numbers, strings). After a worker restart the loop is called again with
`start_epoch` after the last report and `resume` = {"model": <state_dict>, **state}. The model of the last
report is the final model: the project scores it on the test split once and records its state_dict.

Pure PyTorch: the Ray side (tasks/ray_glue/forms) supplies `reporter` and `prepare`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from tasks.problem import Problem, ProblemError, metric_key
from tasks.training.loop import evaluate

# (epoch, metrics, model, state) -> None: what a report does where the loop runs (Tune, Ray Train, a test).
Reporter = Callable[[int, dict, nn.Module, Optional[dict]], None]
# (the evaluation sums of this worker) -> the same, summed over the workers
Reduce = Callable[[Any], Any]


def required_metrics(problem: Problem) -> list[str]:
    """What every report must hold: the curves' losses and the selecting validation metric."""
    return list(
        dict.fromkeys([metric_key("train", "loss"), metric_key("val", "loss"), metric_key("val", problem.select)])
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


@dataclass
class LoopContext:
    """What a plain training loop gets; `report` is its one call back (see the module docstring)."""

    hp: dict[str, Any]
    problem: Problem
    train_loader: DataLoader  # this worker's shard, batches of the per-worker share of the global batch
    val_loader: DataLoader  # this worker's slice of the validation split
    device: torch.device
    epochs: int  # train up to this epoch, inclusive
    start_epoch: int = 1  # after a restart: the epoch after the last report
    resume: Optional[dict] = None  # after a restart: {"model": state_dict, **state} of the last report
    rank: int = 0
    world_size: int = 1
    seed: int = 0
    reporter: Optional[Reporter] = None
    prepare: Callable[[nn.Module], nn.Module] = field(default=lambda m: m)  # to the device, DDP-wrapped if distributed
    reduce: Reduce = field(default=lambda sums: sums)  # sums over the workers' shards
    final_model: Optional[nn.Module] = field(default=None, repr=False)  # the model of the last report
    reported: list[dict] = field(default_factory=list, repr=False)

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """The model on this worker's device; under Ray Train wrapped in DistributedDataParallel."""
        return self.prepare(model)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return unwrap(model)

    def set_epoch(self, epoch: int) -> None:
        """Give the train loader this epoch's shuffle (the same on every worker, each its own shard)."""
        if isinstance(self.train_loader.sampler, DistributedSampler):
            self.train_loader.sampler.set_epoch(epoch)

    def evaluate(self, model: nn.Module, loader: Optional[DataLoader] = None, split: str = "val") -> dict[str, float]:
        """`<split>/loss` and `<split>/<metric>` of every problem metric over all workers' shards (exact)."""
        sums = evaluate(model, self.val_loader if loader is None else loader, self.problem)
        return self.reduce(sums).scores(self.problem, split)

    def report(self, epoch: int, metrics: dict[str, float], *, model: nn.Module, state: Optional[dict] = None) -> None:
        """The epoch's metrics and a checkpoint (the model and `state`); call once an epoch, on every worker."""
        missing = [k for k in required_metrics(self.problem) if k not in metrics]
        if missing:
            raise ProblemError(
                f"problem {self.problem.name!r}: the report of epoch {epoch} lacks {missing}; report "
                f"{required_metrics(self.problem)} each epoch (ctx.evaluate(model) gives the val/ ones)."
            )
        metrics = {k: float(v) for k, v in metrics.items()}
        self.final_model = model
        self.reported.append({"epoch": epoch, **metrics})
        if self.reporter is not None:
            self.reporter(epoch, metrics, model, state)
