"""Ray Train glue: the per-worker DDP loop and the TorchTrainer driver. Imports Ray, not Flyte."""

from __future__ import annotations

import functools
import json
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import ray
import ray.train
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from compat.ray import quiet_train_report_logs
from dvc_bridge.live import EpochLogger, LiveConfig
from tasks.data.arrays import Splits
from tasks.data.shards import Manifest
from tasks.problem import Problem, complete, load_problem, metric_key
from tasks.ray_glue.datasets import data_config, train_dataset, worker_streams
from tasks.ray_glue.resources import wait_for
from tasks.reporting.lines import epoch_line
from tasks.training.loop import (
    EVAL_BATCH,
    EvalSums,
    build,
    evaluate,
    make_loader,
    start_from_data,
    sum_over_workers,
    train_epoch,
    worker_batch_size,
)
from tasks.training.settings import TrainSettings

MODEL_FILE = "model.pth"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
LIVE_DIR = "dvclive"
STREAMED_WORKER_CPU = 0.5


@dataclass
class TrainJob:
    """Everything a worker needs; travels as a dict across the Ray boundary."""

    problem: str  # the problem's name or module:attribute, resolved again on each worker
    hp: dict
    settings: dict
    data: object  # ray.ObjectRef to a Splits, put once into the object store
    live: object  # ray.ObjectRef to a LiveConfig: it may carry the Studio token, so never a plain value


@dataclass
class TrainOutcome:
    model_path: Path
    live_dir: Path
    history: list[dict] = field(default_factory=list)  # one row per epoch: train/loss, val/*, lr, timings
    test: dict = field(default_factory=dict)  # test/loss, test/<metric>: the final model, scored once

    @property
    def final(self) -> dict:
        return self.history[-1]


def all_reduce(sums: EvalSums, problem: Problem, device: torch.device) -> EvalSums:
    """Sums of every worker's shard."""
    names = list(sums.sums)
    t = sum_over_workers(torch.tensor(sums.as_vector(names), dtype=torch.float64), device)
    reduced = EvalSums.from_vector(t.tolist(), names)
    reduced.values = sums.values  # TorchMetric values: already over every worker (torchmetrics' sync)
    return reduced


def train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker: DDP training on the global batch, sharded validation each epoch,
    a checkpoint each epoch; after the last epoch rank 0 scores the final model on test, once."""
    job = TrainJob(**config)
    problem = load_problem(job.problem)
    if problem.form != "declarative":  # a LightningModule or a plain loop: ray_glue/forms
        from tasks.ray_glue.forms.loop import train_worker

        return train_worker(job)
    hp, settings = complete(problem, job.hp), TrainSettings(**job.settings)
    data = ray.get(job.data)  # the Splits (in memory), or a Manifest of Parquet shards (streamed)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    quiet_train_report_logs()
    torch.set_num_threads(1)

    model, optimizer = build(problem, hp, settings.seed)
    loss_fn = problem.loss()
    device = ray.train.torch.get_device()
    # The tuned batch is the global one: each worker takes its share, so lr and momentum mean what they meant.
    batch = worker_batch_size(hp["batch_size"], world)
    if isinstance(data, Manifest):
        train_loader, val_loader, test_loader = worker_streams(
            data, job.problem, batch, settings.seed, rank, world, EVAL_BATCH
        )
        train_rows = train_loader
    else:
        train_loader = make_loader(
            data.x_train, data.y_train, batch, shuffle=True, seed=settings.seed, rank=rank, world_size=world
        )
        val_loader = make_loader(data.x_val[rank::world], data.y_val[rank::world], EVAL_BATCH, shuffle=False)
        test_loader = functools.partial(make_loader, data.x_test, data.y_test, EVAL_BATCH, shuffle=False)
        train_rows = make_loader(data.x_train[rank::world], data.y_train[rank::world], EVAL_BATCH, shuffle=False)
    workdir = Path(tempfile.mkdtemp(prefix=f"train-rank{rank}-"))
    history: list[dict] = []
    start_epoch = 1
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            model.load_state_dict(torch.load(Path(d) / MODEL_FILE, weights_only=True))
            optimizer.load_state_dict(torch.load(Path(d) / OPTIMIZER_FILE, weights_only=True))
            history = json.loads((Path(d) / STATE_FILE).read_text())["history"]
            if rank == 0 and (Path(d) / LIVE_DIR).exists():
                shutil.copytree(Path(d) / LIVE_DIR, workdir / LIVE_DIR)
        start_epoch = len(history) + 1
    else:  # the same start on every worker: the problem's statistics summed over all shards
        start_from_data(problem, model, train_rows, device)
    model = ray.train.torch.prepare_model(model)
    live = EpochLogger(workdir / LIVE_DIR, resume=bool(checkpoint), config=ray.get(job.live)) if rank == 0 else None

    for epoch in range(start_epoch, settings.epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(model, train_loader, optimizer, loss_fn, epoch)
        seconds = time.perf_counter() - t0
        metrics = {
            "epoch": epoch,
            metric_key("train", "loss"): train_loss,
            **all_reduce(evaluate(model, val_loader, problem), problem, device).scores(problem, "val"),
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": seconds,
            "samples_per_s": _samples(data, train_loader, device) / seconds,
        }
        history.append(metrics)
        if rank != 0:
            ray.train.report(metrics)
            continue
        live.log_epoch({k: v for k, v in metrics.items() if k != "epoch"})
        # Straight to stdout: Ray Train's print patch would log it twice, as an INFO record.
        sys.stdout.write(epoch_line(metrics, settings.epochs, metric_key("val", problem.select)) + "\n")
        sys.stdout.flush()
        _report_checkpoint(model, optimizer, {"history": history}, workdir, metrics)
    # Ray Train's report() is a barrier: every rank reports once more, rank 0 with the test scores.
    if rank != 0:
        ray.train.report(history[-1] if history else {})
    else:
        inner = model.module if hasattr(model, "module") else model  # no DDP collectives: rank 0 alone
        test = evaluate(inner, test_loader(), problem, sync=False).scores(problem, "test")
        live.log_summary(test)
        live.close()
        _report_checkpoint(model, optimizer, {"history": history, "test": test}, workdir, {**history[-1], **test})
    shutil.rmtree(workdir, ignore_errors=True)


def _samples(data, train_loader, device: torch.device) -> int:
    """Training samples of the epoch, all workers together (streamed: counted as read, all-reduced)."""
    if isinstance(data, Splits):
        return len(data.x_train)
    return int(sum_over_workers(torch.tensor([float(train_loader.seen)], dtype=torch.float64), device).item())


def _report_checkpoint(model, optimizer, state: dict, workdir: Path, metrics: dict) -> None:
    """Model, optimizer, history (and test scores) and the DVCLive directory, reported as one checkpoint."""
    with tempfile.TemporaryDirectory() as d:
        inner = model.module if hasattr(model, "module") else model
        torch.save(inner.state_dict(), Path(d) / MODEL_FILE)
        torch.save(optimizer.state_dict(), Path(d) / OPTIMIZER_FILE)
        (Path(d) / STATE_FILE).write_text(json.dumps(state))
        shutil.copytree(workdir / LIVE_DIR, Path(d) / LIVE_DIR)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))


def run_train(
    data_ref: ray.ObjectRef,
    problem_ref: str,
    hp: dict,
    settings: TrainSettings,
    out_dir: Path,
    storage_path: str,
    storage_filesystem=None,
    *,
    live: Optional[LiveConfig] = None,
    startup_timeout_s: float = 600,
    where: str = "train_cluster",
    run_name: Optional[str] = None,
) -> TrainOutcome:
    """Train on the connected Ray cluster and copy the final checkpoint's files to `out_dir`.

    `data_ref`: the splits in the object store (`ray.put(splits)`, the caller keeping no copy of its own);
    every worker reads the node's one copy in place, its own shard of each epoch batch by batch. Or a
    `Manifest` of Parquet shards: streamed through Ray Data (tasks/ray_glue/datasets.py), never held whole.
    `live` says where rank 0 mirrors its DVCLive directory each epoch and which DVC / Studio
    settings it logs with. Training starts once the cluster can place every worker (one CPU, and one
    GPU with use_gpu, each) and fails after `startup_timeout_s` naming what `where` never offered.
    `run_name`: a run of that name already in `storage_path` (a lost cluster's) resumes from its last
    checkpoint, on this cluster, with its model, optimizer, history and DVCLive directory; None: a new run.
    """
    streamed = isinstance(data_ref, Manifest)
    # Streamed, a worker reserves half a CPU: the other half is left to Ray Data's read tasks, which would
    # otherwise wait forever for CPUs the workers hold (as in ray#24304). A reservation, not a limit.
    per_worker = {"CPU": STREAMED_WORKER_CPU if streamed else 1.0, **({"GPU": 1.0} if settings.use_gpu else {})}
    wait_for(
        [per_worker] * settings.num_workers, startup_timeout_s, f"training on {settings.num_workers} worker(s)", where
    )
    job = TrainJob(
        problem=problem_ref,
        hp=dict(hp),
        settings=asdict(settings),
        data=ray.put(data_ref) if streamed else data_ref,
        live=ray.put(live or LiveConfig()),
    )
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=asdict(job),
        # Streamed: train as a Ray Dataset split over the workers; validation and test read by rank (datasets.py).
        datasets={"train": train_dataset(data_ref, settings.seed)} if streamed else None,
        dataset_config=data_config() if streamed else None,
        scaling_config=ScalingConfig(
            num_workers=settings.num_workers, use_gpu=settings.use_gpu, resources_per_worker=per_worker
        ),
        run_config=RunConfig(
            name=run_name or f"train-{uuid.uuid4().hex[:8]}",
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            failure_config=FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
            logging_config=LoggingConfig(log_level="WARNING"),  # progress comes from rank 0's epoch lines
        ),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training finished without a checkpoint (error: {result.error})")
    out_dir.mkdir(parents=True, exist_ok=True)
    with result.checkpoint.as_directory() as d:
        shutil.copy2(Path(d) / MODEL_FILE, out_dir / MODEL_FILE)
        shutil.copytree(Path(d) / LIVE_DIR, out_dir / LIVE_DIR, dirs_exist_ok=True)
        state = json.loads((Path(d) / STATE_FILE).read_text())
    return TrainOutcome(
        model_path=out_dir / MODEL_FILE,
        live_dir=out_dir / LIVE_DIR,
        history=state["history"],
        test=state.get("test", {}),
    )
