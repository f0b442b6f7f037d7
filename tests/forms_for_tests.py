"""Problems and Ray Train worker functions for the tests of the training forms, importable by Ray workers
(tests/conftest.py puts this directory on PYTHONPATH)."""

from __future__ import annotations

import tempfile

import numpy as np
import torch
import torchmetrics
from torch import nn

from tasks.problem import HyperParam, Metric, Problem, Schema, TorchMetric

CLASSES = 3
N = 101  # odd: the two workers' shards differ in size


def blobs(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    """Three overlapping Gaussian blobs in 5 dimensions: a linear model scores them well but not perfectly."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    x = rng.normal(size=(n, 5)).astype(np.float32) + y[:, None].astype(np.float32)
    return {"x": x, "y": y.astype(np.int64)}


def fixed_model(hp=None) -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(5, CLASSES)


BLOBS = Problem(
    name="blobs",
    description="three blobs, a linear classifier",
    schema=Schema(feature_shape=(5,), target="class", classes=CLASSES, min_samples=50),
    load_default=blobs,
    build_model=fixed_model,
    hyperparams={"lr": HyperParam(float, 0.1), "batch_size": HyperParam(int, 8)},
    metrics=(
        Metric("accuracy", lambda out, y: (out.argmax(1) == y).sum()),
        TorchMetric("auroc", lambda: torchmetrics.classification.MulticlassAUROC(num_classes=CLASSES)),
        TorchMetric(
            "f1_macro", lambda: torchmetrics.classification.MulticlassF1Score(num_classes=CLASSES, average="macro")
        ),
    ),
    select="auroc",
    gate=0.5,
)


def evaluate_shards_per_worker(config: dict) -> None:
    """Each worker scores its slice of the blobs through the plain-loop contract (`ctx.evaluate`, over all
    workers) and alone (its own slice); rank 0 reports both (with an empty checkpoint)."""
    import ray.train

    from tasks.ray_glue.train import all_reduce
    from tasks.training.contract import LoopContext
    from tasks.training.loop import evaluate, make_loader

    ctx_train = ray.train.get_context()
    rank, world = ctx_train.get_world_rank(), ctx_train.get_world_size()
    data = blobs()
    shard = make_loader(data["x"][rank::world], data["y"][rank::world], 7, shuffle=False)
    ctx = LoopContext(
        hp={},
        problem=BLOBS,
        train_loader=shard,
        val_loader=shard,
        device=torch.device("cpu"),
        epochs=1,
        rank=rank,
        world_size=world,
        reduce=lambda sums: all_reduce(sums, BLOBS, torch.device("cpu")),
    )
    model = fixed_model()
    over_all = ctx.evaluate(model)
    alone = evaluate(model, shard, BLOBS, sync=False).scores(BLOBS, "val")
    metrics = {"world": world, **over_all, **{f"alone/{k}": v for k, v in alone.items()}}
    with tempfile.TemporaryDirectory() as d:  # Ray Train keeps the metrics of reports with a checkpoint
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d) if rank == 0 else None)
