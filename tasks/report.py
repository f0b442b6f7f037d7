"""What people read: progress lines, tables and plots made from trial and epoch metrics.

pandas and matplotlib only; no Flyte, no Ray.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd


def epoch_line(m: Mapping[str, float], epochs: int) -> str:
    """One compact line per training epoch."""
    return (
        f"epoch {int(m['epoch'])}/{epochs}: loss {m['loss']:.4f}  accuracy {m['accuracy']:.4f}  "
        f"lr {m['lr']:.4g}  {m['epoch_time_s']:.1f} s  {m['samples_per_s']:.0f} samples/s"
    )


def trial_line(n: int, total: int, trial_id: str, config: Mapping, what: str) -> str:
    """One compact line per trial event ("epoch 2 accuracy 0.93", "stopped early", "error: ...")."""
    hp = f"lr={config.get('lr', float('nan')):.4g} momentum={config.get('momentum', float('nan')):.3f} batch_size={config.get('batch_size')}"
    return f"trial {n}/{total} {trial_id} [{hp}]: {what}"


def trials_plot(history: pd.DataFrame, path: str | Path, metric: str = "accuracy") -> None:
    """Held-out accuracy over epochs, one line per trial (a trial stopped early ends early)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    if not history.empty:
        for trial_id, rows in history.groupby("trial_id", sort=True):
            rows = rows.sort_values("epoch")
            ax.plot(rows["epoch"], rows[metric], marker="o", label=str(trial_id))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title("Ray Tune trials")
    ax.grid(alpha=0.3)
    if not history.empty and history["trial_id"].nunique() <= 12:
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def curves_plot(history: Sequence[Mapping[str, float]], path: str | Path) -> None:
    """Training and held-out loss, and held-out accuracy, over the training epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = pd.DataFrame(list(history))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    if not df.empty:
        left.plot(df["epoch"], df["train_loss"], marker="o", label="train loss")
        left.plot(df["epoch"], df["loss"], marker="o", label="held-out loss")
        right.plot(df["epoch"], df["accuracy"], marker="o", color="tab:green")
    left.set_xlabel("epoch")
    left.set_title("loss")
    left.legend(fontsize=8)
    right.set_xlabel("epoch")
    right.set_title("held-out accuracy")
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
