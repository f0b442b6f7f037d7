"""A problem's LightningModule, trained by `lightning.Trainer` through the plain-loop contract.

Under Ray Train: `RayDDPStrategy`, `RayLightningEnvironment` and `prepare_trainer`, as Ray's own
Lightning guide runs it; in a Tune trial: one process, no DDP. The module is used as written: its
`training_step`, `validation_step` and `configure_optimizers` (schedulers included). What it logs as
`self.log("val/...")` / `self.log("train/loss")` is what is reported each epoch (`callback_metrics`, as
Ray's `RayTrainReportCallback` reads them), with `lr` (the first optimizer's, after this epoch's
scheduler steps). The loaders are the project's: each worker's shard at its share of the global batch
(`use_distributed_sampler=False`), so a torchmetrics `Metric` passed to `self.log` is exact over the
shards. Each epoch's Lightning checkpoint travels in the report's state; a restarted worker resumes
`fit` from it. The test split is scored once by the module's own `validation_step` (`trainer.validate`
on the test loader; `val/<name>` is recorded as `test/<name>`).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader

from tasks.problem import Problem
from tasks.training.contract import LoopContext

CHECKPOINT_KEY = "lightning_checkpoint"  # the Lightning checkpoint's bytes, as a uint8 tensor (weights_only loads it)


def _quiet() -> None:
    """Lightning's banner lines (GPU available, ...) and its advice on loader workers: noise in a worker's log."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")


def _report_callback(ctx: LoopContext, workdir: Path):
    import lightning.pytorch as pl

    class ReportEachEpoch(pl.Callback):
        """Each epoch end (after validation): the logged metrics and the checkpoint, through `ctx.report`."""

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if torch.as_tensor(v).numel() == 1}
            if trainer.optimizers:
                metrics.setdefault("lr", float(trainer.optimizers[0].param_groups[0]["lr"]))
            path = workdir / "epoch.ckpt"
            trainer.save_checkpoint(path)  # every rank calls it; rank 0 writes
            state = None
            if trainer.is_global_zero:
                state = {CHECKPOINT_KEY: torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)}
            ctx.report(trainer.current_epoch + 1, metrics, model=pl_module, state=state)

    return ReportEachEpoch()


class LightningForm:
    """`train(ctx)` fits the problem's LightningModule; `score_test` validates the fitted one on the test slice."""

    def __init__(self, problem: Problem, *, ray_train: bool) -> None:
        self.problem, self.ray_train = problem, ray_train
        self.trainer = None
        self.module = None

    def _trainer(self, ctx: LoopContext, workdir: Path):
        import lightning.pytorch as pl

        accelerator = "gpu" if ctx.device.type == "cuda" else "cpu"
        common = dict(
            max_epochs=ctx.epochs,
            accelerator=accelerator,
            callbacks=[_report_callback(ctx, workdir)],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            use_distributed_sampler=False,  # the loaders are already sharded per worker
            num_sanity_val_steps=0,
            default_root_dir=str(workdir),
        )
        if not self.ray_train:
            return pl.Trainer(devices=1, **common)
        from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

        trainer = pl.Trainer(devices="auto", strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()], **common)
        return prepare_trainer(trainer)

    def train(self, ctx: LoopContext) -> None:
        _quiet()
        workdir = Path(tempfile.mkdtemp(prefix="lightning-"))
        self.module = self.problem.lightning_module(ctx.hp)
        ckpt_path: Optional[str] = None
        if ctx.resume and CHECKPOINT_KEY in ctx.resume:
            ckpt_path = str(workdir / "resume.ckpt")
            Path(ckpt_path).write_bytes(ctx.resume[CHECKPOINT_KEY].numpy().tobytes())
        self.trainer = self._trainer(ctx, workdir)
        self.trainer.fit(self.module, ctx.train_loader, ctx.val_loader, ckpt_path=ckpt_path)
        ctx.final_model = self.module

    def score_test(self, ctx: LoopContext, loader: DataLoader) -> dict[str, float]:
        scores = self.trainer.validate(self.module, dataloaders=loader, verbose=False)[0]
        return {f"test/{k[len('val/') :]}": float(v) for k, v in scores.items() if k.startswith("val/")}
