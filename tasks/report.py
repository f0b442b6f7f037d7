"""Tables and plots made from trial and epoch metrics. pandas and matplotlib only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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
