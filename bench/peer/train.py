"""Stage `train`: Ray Train TorchTrainer (DDP) with the best parameters, DVCLive on rank 0, the tutorial's way."""

import os
import tempfile
from pathlib import Path

import numpy as np
import ray
import ray.train
import torch
import torch.distributed as dist
import yaml
from dvclive import Live
from ray.train import Checkpoint, ScalingConfig
from ray.train.torch import TorchTrainer, prepare_data_loader, prepare_model
from torch.utils.data import DataLoader, TensorDataset

from tasks.settings import HyperParams
from tasks.training import build, evaluate, train_epoch

DATA = os.path.abspath("data/digits.npz")
LIVE_DIR = os.path.abspath("dvclive")


def train_func(config):
    data = np.load(DATA)
    hp = HyperParams(**config["hp"])
    model, optimizer = build(hp, config["seed"])
    model = prepare_model(model)
    train_ds = TensorDataset(torch.tensor(data["x_train"]), torch.tensor(data["y_train"]))
    test_ds = TensorDataset(torch.tensor(data["x_test"]), torch.tensor(data["y_test"]))
    train_loader = prepare_data_loader(DataLoader(train_ds, batch_size=hp.batch_size, shuffle=True))
    test_loader = prepare_data_loader(DataLoader(test_ds, batch_size=512))
    rank = ray.train.get_context().get_world_rank()
    live = Live(LIVE_DIR, dvcyaml=None, report=None) if rank == 0 else None
    for epoch in range(1, config["epochs"] + 1):
        train_loss = train_epoch(model, train_loader, optimizer, epoch)
        result = evaluate(model, test_loader)
        sums = torch.tensor([result.loss_sum, result.correct, result.count], dtype=torch.float64)
        dist.all_reduce(sums)
        metrics = {"train_loss": train_loss, "loss": float(sums[0] / sums[2]), "accuracy": float(sums[1] / sums[2])}
        if live:
            for name, value in metrics.items():
                live.log_metric(name, value)
            live.next_step()
            with tempfile.TemporaryDirectory() as d:
                torch.save(model.module.state_dict(), Path(d) / "model.pth")
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
    if live:
        live.end()


if __name__ == "__main__":
    params = yaml.safe_load(open("params.yaml"))["train"]
    best = yaml.safe_load(open("results/best_params.yaml"))
    ray.init()
    trainer = TorchTrainer(
        train_func,
        train_loop_config={"hp": best, "epochs": params["epochs"], "seed": params["seed"]},
        scaling_config=ScalingConfig(num_workers=params["num_workers"]),
    )
    result = trainer.fit()
    Path("models").mkdir(exist_ok=True)
    with result.checkpoint.as_directory() as d:
        Path("models/model.pth").write_bytes((Path(d) / "model.pth").read_bytes())
