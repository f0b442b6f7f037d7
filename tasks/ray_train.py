"""Ray Train glue: the per-worker DDP loop and the TorchTrainer driver. Imports Ray, not Flyte."""

from __future__ import annotations

import json
import logging
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
import torch.distributed as dist
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from dvc_bridge.live import EpochLogger, LiveConfig
from tasks.data import Splits
from tasks.report import epoch_line
from tasks.settings import HyperParams, TrainSettings
from tasks.training import EvalSums, build, evaluate, make_loader, train_epoch

MODEL_FILE = "model.pth"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
LIVE_DIR = "dvclive"


@dataclass
class TrainJob:
    """Everything a worker needs; travels as a dict across the Ray boundary."""

    hp: dict
    settings: dict
    data: object  # ray.ObjectRef to a Splits, put once into the object store
    live: object  # ray.ObjectRef to a LiveConfig: it may carry the Studio token, so never a plain value


@dataclass
class TrainOutcome:
    model_path: Path
    live_dir: Path
    history: list[dict] = field(default_factory=list)

    @property
    def final(self) -> dict:
        return self.history[-1]


def _all_reduce(sums: EvalSums) -> EvalSums:
    if not (dist.is_available() and dist.is_initialized()):
        return sums
    t = torch.tensor([sums.loss_sum, sums.correct, sums.count], dtype=torch.float64)
    dist.all_reduce(t)
    return EvalSums(float(t[0]), int(t[1]), int(t[2]))


def _quiet_report_logs() -> None:
    """Drop Ray Train's INFO line per `report()` (pages of dicts); rank 0 prints one line per epoch.

    Ray 2.60 logs it through a logger named after the module's file path, which escapes
    `RunConfig(logging_config=...)`; only that logger is raised to WARNING.
    """
    try:
        from ray.train.v2._internal.execution import context as train_context
    except ImportError:  # another Ray version: nothing to quiet
        return
    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)


def train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker: DDP training, sharded evaluation, a checkpoint each epoch."""
    job = TrainJob(**config)
    hp, settings = HyperParams(**job.hp), TrainSettings(**job.settings)
    data: Splits = ray.get(job.data)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    _quiet_report_logs()
    torch.set_num_threads(1)

    model, optimizer = build(hp, settings.seed)
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
    model = ray.train.torch.prepare_model(model)
    live = EpochLogger(workdir / LIVE_DIR, resume=bool(checkpoint), config=ray.get(job.live)) if rank == 0 else None

    train_loader = make_loader(
        data.x_train, data.y_train, hp.batch_size, shuffle=True, seed=settings.seed, rank=rank, world_size=world
    )
    test_loader = make_loader(data.x_test[rank::world], data.y_test[rank::world], 512, shuffle=False)
    for epoch in range(start_epoch, settings.epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(model, train_loader, optimizer, epoch)
        seconds = time.perf_counter() - t0
        ev = _all_reduce(evaluate(model, test_loader))
        metrics = {
            "epoch": epoch,
            "train_loss": train_loss,
            "loss": ev.loss,
            "accuracy": ev.accuracy,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": seconds,
            "samples_per_s": len(data.x_train) / seconds,
        }
        history.append(metrics)
        if rank != 0:
            ray.train.report(metrics)
            continue
        live.log_epoch({k: v for k, v in metrics.items() if k != "epoch"})
        # Straight to stdout: Ray Train's print patch would log it twice, as an INFO record.
        sys.stdout.write(epoch_line(metrics, settings.epochs) + "\n")
        sys.stdout.flush()
        with tempfile.TemporaryDirectory() as d:
            inner = model.module if hasattr(model, "module") else model
            torch.save(inner.state_dict(), Path(d) / MODEL_FILE)
            torch.save(optimizer.state_dict(), Path(d) / OPTIMIZER_FILE)
            (Path(d) / STATE_FILE).write_text(json.dumps({"history": history}))
            shutil.copytree(workdir / LIVE_DIR, Path(d) / LIVE_DIR)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
    if live:
        live.close()
    shutil.rmtree(workdir, ignore_errors=True)


def run_train(
    data: Splits,
    hp: HyperParams,
    settings: TrainSettings,
    out_dir: Path,
    storage_path: str,
    storage_filesystem=None,
    *,
    live: Optional[LiveConfig] = None,
) -> TrainOutcome:
    """Train on the connected Ray cluster and copy the final checkpoint's files to `out_dir`.

    `live` says where rank 0 mirrors its DVCLive directory each epoch and which DVC / Studio
    settings it logs with.
    """
    job = TrainJob(hp=asdict(hp), settings=asdict(settings), data=ray.put(data), live=ray.put(live or LiveConfig()))
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=asdict(job),
        scaling_config=ScalingConfig(num_workers=settings.num_workers, use_gpu=settings.use_gpu, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(
            name=f"train-{uuid.uuid4().hex[:8]}",
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
        history = json.loads((Path(d) / STATE_FILE).read_text())["history"]
    return TrainOutcome(model_path=out_dir / MODEL_FILE, live_dir=out_dir / LIVE_DIR, history=history)
