"""tasks/reporting/decks.py: the trials plot is a real PNG, also for an empty history."""

from __future__ import annotations

import struct

import pandas as pd
import pytest

from tasks.reporting.decks import trials_plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _history(trials: int = 3, epochs: int = 4) -> pd.DataFrame:
    rows = []
    for t in range(trials):
        for e in range(epochs - (t % 2)):  # odd trials stopped early
            rows.append(
                {
                    "trial_id": f"trial_{t:03d}",
                    "epoch": e + 1,
                    "accuracy": 0.5 + 0.1 * e - 0.05 * t,
                    "loss": 1.0 / (e + 1),
                }
            )
    # Unsorted input: the plot sorts by epoch itself.
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def test_trials_plot_writes_a_png(tmp_path):
    path = tmp_path / "trials.png"
    trials_plot(_history(), path, "accuracy")
    assert path.stat().st_size > 1000
    assert _png_size(path) == (700, 450)  # figsize 7 x 4.5 at 100 dpi


def test_trials_plot_accepts_a_string_path(tmp_path):
    path = tmp_path / "trials.png"
    trials_plot(_history(), str(path), "accuracy")
    assert path.read_bytes()[:8] == PNG_MAGIC


@pytest.mark.parametrize(
    "history",
    [pd.DataFrame(columns=["trial_id", "epoch", "accuracy"]), pd.DataFrame()],
    ids=["empty-with-columns", "empty-no-columns"],
)
def test_trials_plot_with_an_empty_history(tmp_path, history):
    path = tmp_path / "empty.png"
    trials_plot(history, path, "accuracy")
    assert path.stat().st_size > 0
    assert _png_size(path) == (700, 450)


def test_trials_plot_other_metric_and_many_trials(tmp_path):
    path = tmp_path / "loss.png"
    trials_plot(_history(trials=15, epochs=3), path, metric="loss")  # > 12 trials: no legend
    assert path.stat().st_size > 1000
    assert _png_size(path) == (700, 450)


def test_trials_plot_missing_metric_column_fails(tmp_path):
    with pytest.raises(KeyError):
        trials_plot(_history(), tmp_path / "x.png", metric="f1")


def test_trials_plot_differs_with_the_data(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    trials_plot(_history(trials=2), a, "accuracy")
    trials_plot(_history(trials=5), b, "accuracy")
    assert a.read_bytes() != b.read_bytes()


def test_trials_plot_closes_its_figure(tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for i in range(3):
        trials_plot(_history(), tmp_path / f"p{i}.png", "accuracy")
    assert len(plt.get_fignums()) == before
