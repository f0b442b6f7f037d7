"""A problem's own training (a plain loop or a LightningModule) in a Tune trial and on a Ray Train worker.

The same downstream as the declarative form: Tune gets `{"epoch", "train/loss", "val/..."}` each epoch
(ASHA stops on the selecting metric); under Ray Train each worker gets its shard at its share of the
global batch, rank 0 logs each epoch with DVCLive (`EpochLogger`, mirrored, Studio), every report is a
checkpoint (model.pth, the loop's state, the history, the DVCLive directory) a restarted worker resumes
from, and the final model is scored on the test split once.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import ray
import ray.train
import ray.train.torch
import torch
from ray import tune
from ray.train import Checkpoint
from torch import nn

from compat.ray import quiet_train_report_logs
from dvc_bridge.live import EpochLogger
from tasks.data.arrays import Splits
from tasks.problem import BATCH_SIZE, Problem, ProblemError, complete, load_problem, metric_key
from tasks.ray_glue.forms import form_of
from tasks.ray_glue.train import LIVE_DIR, MODEL_FILE, STATE_FILE, TrainJob, all_reduce
from tasks.ray_glue.tune import trial_device
from tasks.reporting.lines import epoch_line
from tasks.training.contract import LoopContext, unwrap
from tasks.training.loop import EVAL_BATCH, make_loader, seed_everything, worker_batch_size
from tasks.training.settings import TrainSettings

LOOP_STATE_FILE = "loop_state.pt"  # the `state` of the loop's last report


def trial(config: dict, data_ref: ray.ObjectRef, problem_ref: str, max_epochs: int, seed: int) -> None:
    """One Tune trial of a problem that trains itself: one process, no checkpoint, validation reported each epoch."""
    data: Splits = ray.get(data_ref)
    problem = load_problem(problem_ref)
    hp = complete(problem, config)
    torch.set_num_threads(1)
    seed_everything(seed)
    device = trial_device()

    def report(epoch: int, metrics: dict, model: nn.Module, state: Optional[dict]) -> None:
        tune.report({"epoch": epoch, **metrics})

    ctx = LoopContext(
        hp=hp,
        problem=problem,
        train_loader=make_loader(data.x_train, data.y_train, hp[BATCH_SIZE], shuffle=True, seed=seed),
        val_loader=make_loader(data.x_val, data.y_val, EVAL_BATCH, shuffle=False),
        device=device,
        epochs=max_epochs,
        seed=seed,
        reporter=report,
        prepare=lambda model: model.to(device),
    )
    form_of(problem, ray_train=False).train(ctx)


def _restore(checkpoint, rank: int, workdir: Path) -> tuple[dict, list[dict]]:
    """({"model": state_dict, **state}, history) of a checkpoint; rank 0 also gets the DVCLive directory back."""
    with checkpoint.as_directory() as d:
        resume = {"model": torch.load(Path(d) / MODEL_FILE, weights_only=True)}
        if (Path(d) / LOOP_STATE_FILE).exists():
            resume.update(torch.load(Path(d) / LOOP_STATE_FILE, weights_only=True))
        history = json.loads((Path(d) / STATE_FILE).read_text())["history"]
        if rank == 0 and (Path(d) / LIVE_DIR).exists():
            shutil.copytree(Path(d) / LIVE_DIR, workdir / LIVE_DIR)
    return resume, history


def _checkpoint(model: nn.Module, loop_state: Optional[dict], state: dict, workdir: Path, metrics: dict) -> None:
    with tempfile.TemporaryDirectory() as d:
        torch.save(unwrap(model).state_dict(), Path(d) / MODEL_FILE)
        torch.save(loop_state or {}, Path(d) / LOOP_STATE_FILE)
        (Path(d) / STATE_FILE).write_text(json.dumps(state))
        shutil.copytree(workdir / LIVE_DIR, Path(d) / LIVE_DIR)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))


def _final_model(ctx: LoopContext, problem: Problem) -> nn.Module:
    """The last reported model; after a restart past the last epoch, the checkpoint's, loaded into build_model."""
    if ctx.final_model is not None:
        return ctx.final_model
    if ctx.resume is None:
        raise ProblemError(f"problem {problem.name!r}: its training loop returned without a single ctx.report().")
    model = problem.build_model(ctx.hp)
    model.load_state_dict(ctx.resume["model"])
    return ctx.prepare_model(model)


def train_worker(job: TrainJob) -> None:
    """Runs on every Ray Train worker for a problem that trains itself (see the module docstring)."""
    problem = load_problem(job.problem)
    hp, settings = complete(problem, job.hp), TrainSettings(**job.settings)
    data: Splits = ray.get(job.data)
    train_ctx = ray.train.get_context()
    rank, world = train_ctx.get_world_rank(), train_ctx.get_world_size()
    quiet_train_report_logs()
    torch.set_num_threads(1)
    workdir = Path(tempfile.mkdtemp(prefix=f"train-rank{rank}-"))
    resume, history = None, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        resume, history = _restore(checkpoint, rank, workdir)
    device = ray.train.torch.get_device()
    live = EpochLogger(workdir / LIVE_DIR, resume=bool(checkpoint), config=ray.get(job.live)) if rank == 0 else None
    select = metric_key("val", problem.select)
    clock = [time.perf_counter()]

    def report(epoch: int, metrics: dict, model: nn.Module, state: Optional[dict]) -> None:
        now = time.perf_counter()
        seconds, clock[0] = now - clock[0], now
        row = {"epoch": epoch, **metrics, "epoch_time_s": seconds, "samples_per_s": len(data.x_train) / seconds}
        history.append(row)
        if rank != 0:
            ray.train.report(row)
            return
        live.log_epoch({k: v for k, v in row.items() if k != "epoch"})
        sys.stdout.write(epoch_line(row, settings.epochs, select) + "\n")
        sys.stdout.flush()
        _checkpoint(model, state, {"history": history}, workdir, row)

    ctx = LoopContext(
        hp=hp,
        problem=problem,
        # The tuned batch is the global one: each worker takes its share.
        train_loader=make_loader(
            data.x_train,
            data.y_train,
            worker_batch_size(hp[BATCH_SIZE], world),
            shuffle=True,
            seed=settings.seed,
            rank=rank,
            world_size=world,
        ),
        val_loader=make_loader(data.x_val[rank::world], data.y_val[rank::world], EVAL_BATCH, shuffle=False),
        device=device,
        epochs=settings.epochs,
        start_epoch=len(history) + 1,
        resume=resume,
        rank=rank,
        world_size=world,
        seed=settings.seed,
        reporter=report,
        prepare=ray.train.torch.prepare_model,
        reduce=lambda sums: all_reduce(sums, problem, device),
    )
    seed_everything(settings.seed)
    form = form_of(problem, ray_train=True)
    form.train(ctx)
    ctx.final_model = _final_model(ctx, problem)
    # Every worker scores its slice of the test split; the scores are over all of it. Once, after the last epoch.
    test = form.score_test(
        ctx, make_loader(data.x_test[rank::world], data.y_test[rank::world], EVAL_BATCH, shuffle=False)
    )
    if rank != 0:
        ray.train.report(history[-1] if history else {})
    else:
        live.log_summary(test)
        live.close()
        _checkpoint(ctx.final_model, None, {"history": history, "test": test}, workdir, {**history[-1], **test})
    shutil.rmtree(workdir, ignore_errors=True)
