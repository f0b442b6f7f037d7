"""What people read: progress lines, tables and plots made from trial and epoch metrics.

pandas and matplotlib only; no Flyte, no Ray.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def epoch_line(m: Mapping[str, float], epochs: int, metric: str) -> str:
    """One compact line per training epoch: losses, the selecting validation metric, lr, speed."""
    return (
        f"epoch {int(m['epoch'])}/{epochs}: train/loss {m['train/loss']:.4f}  val/loss {m['val/loss']:.4f}  "
        f"{metric} {m[metric]:.4f}  lr {m['lr']:.4g}  {m['epoch_time_s']:.1f} s  {m['samples_per_s']:.0f} samples/s"
    )


def format_params(params: Mapping) -> str:
    """Hyper-parameters in one line, floats to 4 significant digits: "lr=0.0674 batch_size=64"."""
    return " ".join(f"{k}={_fmt(v)}" for k, v in params.items())


def trial_line(n: int, total: int, trial_id: str, config: Mapping, what: str) -> str:
    """One compact line per trial event ("epoch 2/2 val/accuracy 0.93", "stopped early", "error: ...")."""
    return f"trial {n}/{total} {trial_id} [{format_params(config)}]: {what}"


def trials_plot(history: pd.DataFrame, path: str | Path, metric: str) -> None:
    """A validation metric over epochs, one line per trial (a trial stopped early ends early)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    if not history.empty:
        for trial_id, rows in history.groupby("trial_id", sort=True):
            rows = rows.sort_values("epoch")
            ax.plot(rows["epoch"], rows[metric], marker="o", label=str(trial_id))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title("Ray Tune trials")
    ax.grid(alpha=0.3)
    if not history.empty and history["trial_id"].nunique() <= 12:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def curves_plot(history: Sequence[Mapping[str, float]], path: str | Path, metric: str) -> None:
    """Training and validation loss, and the selecting validation metric, over the training epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(list(history))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    if not df.empty:
        left.plot(df["epoch"], df["train/loss"], marker="o", label="train/loss")
        left.plot(df["epoch"], df["val/loss"], marker="o", label="val/loss")
        right.plot(df["epoch"], df[metric], marker="o", color="tab:green")
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend(fontsize=8)
    right.set_xlabel("epoch")
    right.set_title(metric)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def png_html(path: str | Path, alt: str) -> str:
    """An <img> with the PNG inlined, so the page stands alone (a Flyte Deck)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def table_html(df: pd.DataFrame, float_format: str = "{:.4g}") -> str:
    return df.to_html(index=False, border=0, float_format=float_format.format, na_rep="", escape=True)
