"""Stage `train`: Ray Train TorchTrainer (DDP) with the best parameters, DVCLive on rank 0, the tutorial's way.

As in the workflow, the tuned batch is the global one (each of the N workers takes batch / N a
step), validation is scored each epoch over the workers' shards, and the test split once, by
rank 0, after the last epoch.
"""

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

from tasks.problem import complete, load_problem
from tasks.training.loop import EVAL_BATCH, EvalSums, build, evaluate, train_epoch, worker_batch_size

DATA = os.path.abspath("data/digits.npz")
LIVE_DIR = os.path.abspath("dvclive")


def train_func(config):
    problem = load_problem(config["problem"])
    data = np.load(DATA)
    hp = complete(problem, config["hp"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model, optimizer = build(problem, hp, config["seed"])
    model = prepare_model(model)
    loss_fn = problem.loss()
    train_ds = TensorDataset(torch.tensor(data["x_train"]), torch.tensor(data["y_train"]))
    val_ds = TensorDataset(torch.tensor(data["x_val"]), torch.tensor(data["y_val"]))
    train_loader = prepare_data_loader(
        DataLoader(train_ds, batch_size=worker_batch_size(hp["batch_size"], world), shuffle=True)
    )
    val_loader = prepare_data_loader(DataLoader(val_ds, batch_size=EVAL_BATCH))
    names = [m.name for m in problem.metrics]
    live = Live(LIVE_DIR, dvcyaml=None, report=None) if rank == 0 else None
    for epoch in range(1, config["epochs"] + 1):
        train_loss = train_epoch(model, train_loader, optimizer, loss_fn, epoch)
        sums = torch.tensor(evaluate(model, val_loader, problem).as_vector(names), dtype=torch.float64)
        dist.all_reduce(sums)
        metrics = {"train/loss": train_loss, **EvalSums.from_vector(sums.tolist(), names).scores(problem, "val")}
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
        test_loader = DataLoader(
            TensorDataset(torch.tensor(data["x_test"]), torch.tensor(data["y_test"])), batch_size=EVAL_BATCH
        )
        for name, value in evaluate(model.module, test_loader, problem).scores(problem, "test").items():
            live.log_metric(name, value, plot=False)
        live.end()


if __name__ == "__main__":
    all_params = yaml.safe_load(open("params.yaml"))
    params = all_params["train"]
    best = yaml.safe_load(open("results/best_params.yaml"))
    ray.init()
    trainer = TorchTrainer(
        train_func,
        train_loop_config={
            "problem": all_params["problem"],
            "hp": best,
            "epochs": params["epochs"],
            "seed": params["seed"],
        },
        scaling_config=ScalingConfig(num_workers=params["num_workers"]),
    )
    result = trainer.fit()
    Path("models").mkdir(exist_ok=True)
    with result.checkpoint.as_directory() as d:
        Path("models/model.pth").write_bytes((Path(d) / "model.pth").read_bytes())
