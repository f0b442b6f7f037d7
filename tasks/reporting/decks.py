"""The Deck pages: tables and plots made from trial and epoch metrics, for people to read in Flyte's UI.

Generic over the problem: metric names come in as arguments ("val/<metric>", "train/loss"), the
direction as the problem's mode ("max" or "min"), the searched hyper-parameters and their scales
from the search space document (`tasks.problem.space_document`). Tables are pandas Stylers
(borders, right-aligned numbers, a precision per column); plots are matplotlib PNGs inlined into
the page, so a Deck stands alone. pandas and matplotlib only; no Flyte, no Ray.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import pandas as pd

from dvc_bridge.direction import at_least_as_good, higher_is_better
from tasks.reporting.lines import _fmt, direction, format_params, short_trial_id, trial_numbers

STATUS_TEXT = {"completed": "completed", "stopped_early": "stopped early", "error": "error"}
# One look for every table on a page: borders, a header band, numbers right-aligned.
TABLE_CSS = [
    {
        "selector": "",
        "props": "border-collapse: collapse; font: 13px/1.4 system-ui, sans-serif; margin: 0.5em 0 1.5em;",
    },
    {"selector": "th, td", "props": "border: 1px solid #c8c8d0; padding: 4px 10px;"},
    {"selector": "thead th", "props": "background: #eef0f6; text-align: center; white-space: nowrap;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: 600; padding-bottom: 4px;"},
]
PAGE_CSS = (
    "<style>.frd-page{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1200px}"
    ".frd-page h3{margin:0 0 .4em}.frd-page .frd-note{color:#555;margin:.2em 0 .8em}"
    ".frd-page img{max-width:100%;display:block;margin:.4em 0 1em}"
    ".frd-page code,.frd-page pre{background:#f4f4f8;border-radius:3px}"
    ".frd-page pre{padding:8px 10px;overflow-x:auto}</style>"
)


# ----------------------------------------------------------------------------- numbers and names


def trial_labels(trials: pd.DataFrame, searched: Sequence[str]) -> dict[str, str]:
    """Trial id -> "#1 lr=0.0674 momentum=0.621 batch_size=32": its number and searched values, 3 digits."""
    if trials.empty or "trial_id" not in trials:
        return {}
    numbers = trial_numbers(list(trials["trial_id"]))
    labels = {}
    for _, row in trials.iterrows():
        values = {k: _py(row[k]) for k in searched if k in row}
        labels[row["trial_id"]] = f"#{numbers[row['trial_id']]} {format_params(values, 3)}".strip()
    return labels


def _category_key(value) -> tuple:
    """Numbers first, in numeric order, then anything else by its text."""
    v = _py(value)
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def _py(value):
    """numpy scalars as Python ones, so they print as 0.5 and 64, not np.float64(0.5)."""
    return value.item() if hasattr(value, "item") else value


def _domain(space: Optional[Mapping[str, Any]], name: str) -> tuple[str, list]:
    """(kind, bounds or options) of a searched hyper-parameter in a space document; ("", []) if fixed."""
    spec = (space or {}).get(name)
    if isinstance(spec, Mapping) and len(spec) == 1:
        kind, values = next(iter(spec.items()))
        return kind, list(values) if isinstance(values, (list, tuple)) else []
    return "", []


def axis_scales(space: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """ "log" for loguniform-searched hyper-parameters, "category" for choices, "linear" otherwise."""
    scales = {}
    for name, spec in (space or {}).items():
        if isinstance(spec, Mapping) and len(spec) == 1:
            kind = next(iter(spec))
            scales[name] = {"loguniform": "log", "choice": "category"}.get(kind, "linear")
    return scales


# ----------------------------------------------------------------------------- tables


def column_format(name: str) -> Callable[[Any], str]:
    """The precision a column reads best at, from its name: epochs as integers, scores to 4 decimals, ..."""

    def guard(f):
        def apply(v):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                return ""
            return f(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else html.escape(str(v))

        return apply

    lower = name.lower()
    if lower in ("epoch", "epochs", "step", "trial") or lower.endswith("batch_size"):
        return guard(lambda v: f"{int(round(v))}")
    if lower.endswith(("samples/s", "samples_per_s")):
        return guard(lambda v: f"{v:,.0f}")
    if lower.endswith(("_s", "(s)")):
        return guard(lambda v: f"{v:.2f}")
    if "/" in lower:  # a recorded metric: train/loss, val/accuracy, test/rmse
        return guard(lambda v: f"{v:.4f}")
    return guard(lambda v: f"{v:.4g}" if isinstance(v, float) else str(v))


def table_html(
    df: pd.DataFrame,
    caption: str = "",
    highlight_row: Optional[int] = None,
    formats: Optional[Mapping[str, Callable[[Any], str]]] = None,
) -> str:
    """A bordered table, numbers right-aligned at a precision chosen per column (`column_format`)."""
    if df.empty:
        return f"<p class='frd-note'>{html.escape(caption)}: nothing to show.</p>" if caption else ""
    df = df.reset_index(drop=True)
    fmt = {c: (formats or {}).get(c) or column_format(str(c)) for c in df.columns}
    styler = df.style.hide(axis="index").format(fmt).set_table_styles(TABLE_CSS)
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    if numeric:
        styler = styler.set_properties(
            subset=numeric, **{"text-align": "right", "font-variant-numeric": "tabular-nums"}
        )
    text = [c for c in df.columns if c not in numeric]
    if text:
        styler = styler.set_properties(subset=text, **{"text-align": "left"})
    if highlight_row is not None and 0 <= highlight_row < len(df):
        styler = styler.apply(
            lambda r: ["background: #e8f5e9; font-weight: 600" if r.name == highlight_row else "" for _ in r], axis=1
        )
    if caption:
        styler = styler.set_caption(html.escape(caption))
    return styler.to_html()


def trials_table(trials: pd.DataFrame, searched: Sequence[str], metric: str) -> pd.DataFrame:
    """The trials as people read them: number, short Tune id, searched values, status, epochs, score, error."""
    if trials.empty:
        return pd.DataFrame()
    numbers = trial_numbers(list(trials["trial_id"]))
    out = pd.DataFrame(
        {
            "trial": [numbers[t] for t in trials["trial_id"]],
            "Tune id": [short_trial_id(t) for t in trials["trial_id"]],
            **{k: list(trials[k]) for k in searched if k in trials},
            "status": [STATUS_TEXT.get(s, s) for s in trials["status"]],
            "epochs": list(trials["epochs"]),
            metric: list(trials[metric]),
        }
    )
    if "error" in trials and trials["error"].fillna("").astype(str).str.len().any():
        out["error"] = list(trials["error"].fillna(""))
    return out


def history_table(history: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """Per-epoch training metrics with integer epochs and the units in the headers."""
    df = pd.DataFrame(list(history))
    if df.empty:
        return df
    if "epoch" in df:
        df["epoch"] = df["epoch"].astype(int)
    return df.rename(columns={"epoch_time_s": "epoch time (s)", "samples_per_s": "samples/s"})


# ----------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_epochs(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def trials_plot(
    history: pd.DataFrame, path: str | Path, metric: str, labels: Optional[Mapping[str, str]] = None
) -> None:
    """A validation metric over epochs, one line per trial (a trial stopped early ends early).

    `labels` names each trial in the legend (default: its number and short Tune id).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    if not history.empty:
        if labels is None:
            numbers = trial_numbers(list(history["trial_id"]))
            labels = {t: f"#{n} {short_trial_id(t)}" for t, n in numbers.items()}
        order = trial_numbers(list(labels) + list(history["trial_id"]))
        for trial_id, rows in sorted(history.groupby("trial_id"), key=lambda g: order.get(g[0], 0)):
            rows = rows.sort_values("epoch")
            ax.plot(rows["epoch"], rows[metric], marker="o", label=labels.get(trial_id, short_trial_id(trial_id)))
    _integer_epochs(ax)
    ax.set_ylabel(metric)
    ax.set_title(f"Ray Tune trials: {metric} per epoch")
    ax.grid(alpha=0.3)
    if not history.empty and history["trial_id"].nunique() <= 12:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def params_plot(
    trials: pd.DataFrame,
    path: str | Path,
    metric: str,
    searched: Sequence[str],
    scales: Optional[Mapping[str, str]] = None,
    mode: str = "max",
    space: Optional[Mapping[str, Any]] = None,
) -> None:
    """The selecting metric against each searched hyper-parameter: one panel each, one point per trial.

    Completed trials are filled circles, trials stopped early by ASHA hollow ones (their score is
    from fewer epochs), the best trial a star; errored trials have no score and are left out
    (the title counts them). Points carry the trial number of the table. With the search `space`
    document, each x axis spans the searched range (all choices, the bounds) on its scale.
    """
    plt = _pyplot()
    scales = dict(scales or {})
    if space is not None:
        scales = {**axis_scales(space), **scales}
    names = [n for n in searched if n in trials] or ["(nothing searched)"]
    cols = min(len(names), 3)
    rows_n = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.6 * cols + 0.6, 3.2 * rows_n), dpi=100, squeeze=False)
    numbers = trial_numbers(list(trials["trial_id"])) if not trials.empty else {}
    ok = trials[(trials["status"] != "error") & trials[metric].notna()] if not trials.empty else trials
    errored = len(trials) - len(ok)
    best_id = None
    if not ok.empty:
        best_id = ok.loc[ok[metric].idxmax() if higher_is_better(mode) else ok[metric].idxmin(), "trial_id"]
    for ax, name in zip(axes.flat, names):
        if name not in trials or ok.empty:
            ax.text(0.5, 0.5, "no scored trial", ha="center", va="center", transform=ax.transAxes)
            ax.set_xticks([])
            continue
        values = list(ok[name])
        if scales.get(name) == "category" or not all(isinstance(_py(v), (int, float)) for v in values):
            kind, options = _domain(space, name)
            cats = options if kind == "choice" and set(values) <= set(options) else []
            cats = cats or sorted(dict.fromkeys(values), key=_category_key)
            x = [cats.index(v) for v in values]
            ax.set_xticks(range(len(cats)), [_fmt(_py(c), 3) for c in cats])
            ax.set_xlim(-0.5, len(cats) - 0.5)
        else:
            x = [float(v) for v in values]
            if scales.get(name) == "log" and min(x) > 0:
                from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
            kind, bounds = _domain(space, name)
            if kind in ("loguniform", "uniform", "randint") and len(bounds) == 2 and bounds[0] < bounds[1]:
                low, high = float(bounds[0]), float(bounds[1])
                if ax.get_xscale() == "log":
                    pad = (high / low) ** 0.04
                    ax.set_xlim(low / pad, high * pad)
                else:
                    pad = (high - low) * 0.04
                    ax.set_xlim(low - pad, high + pad)
            else:
                ax.margins(x=0.1)
        for (_, row), xi in zip(ok.iterrows(), x):
            stopped = row["status"] == "stopped_early"
            star = row["trial_id"] == best_id
            ax.scatter(
                [xi],
                [row[metric]],
                s=110 if star else 45,
                marker="*" if star else "o",
                facecolors="none" if stopped and not star else ("tab:orange" if star else "tab:blue"),
                edgecolors="tab:orange" if star else "tab:blue",
                linewidths=1.4,
                zorder=3,
            )
            ax.annotate(
                f"#{numbers[row['trial_id']]}",
                (xi, row[metric]),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=7,
                color="#444",
            )
        ax.margins(y=0.15)
        ax.set_xlabel(name + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{metric} ({direction(mode)})", fontsize=9)
    legend = [
        plt.Line2D([], [], marker="o", ls="", color="tab:blue", label="completed"),
        plt.Line2D([], [], marker="o", ls="", markerfacecolor="none", color="tab:blue", label="stopped early (ASHA)"),
        plt.Line2D([], [], marker="*", ls="", color="tab:orange", markersize=11, label="best"),
    ]
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
    note = f"; {errored} errored trial{'s' if errored != 1 else ''} not shown" if errored else ""
    fig.suptitle(f"{metric} against each searched hyper-parameter, one point per trial{note}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def curves_plot(
    history: Sequence[Mapping[str, float]], path: str | Path, metric: str, test_score: Optional[float] = None
) -> None:
    """Training and validation loss, and the selecting validation metric, over the training epochs.

    `test_score`, the final model's score on the test split, is drawn as a dashed line (scored once).
    """
    plt = _pyplot()
    df = pd.DataFrame(list(history))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    if not df.empty:
        left.plot(df["epoch"], df["train/loss"], marker="o", label="train/loss")
        left.plot(df["epoch"], df["val/loss"], marker="o", label="val/loss")
        right.plot(df["epoch"], df[metric], marker="o", color="tab:green", label=metric)
        left.legend(fontsize=8)
    if test_score is not None and math.isfinite(test_score):
        test_name = "test/" + metric.split("/", 1)[-1]
        right.axhline(test_score, ls="--", color="tab:purple", label=f"{test_name} {test_score:.4f} (once, at the end)")
    if right.get_legend_handles_labels()[0]:
        right.legend(fontsize=8, loc="best")
    left.set_title("loss")
    right.set_title(metric)
    for ax in (left, right):
        _integer_epochs(ax)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def png_html(path: str | Path, alt: str) -> str:
    """An <img> with the PNG inlined, so the page stands alone (a Flyte Deck)."""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


# ----------------------------------------------------------------------------- Deck pages


def _page(*parts: str) -> str:
    return PAGE_CSS + "<div class='frd-page'>" + "".join(parts) + "</div>"


def trials_page(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str,
    mode: str,
    searched: Sequence[str],
    space: Optional[Mapping[str, Any]],
    best: Mapping[str, Any],
    best_score: float,
    trials_png: str | Path,
    workdir: str | Path,
    searcher: str = "",
    notes: Sequence[str] = (),
) -> str:
    """The tuning Deck (`searcher`: which one chose the trials; `notes`: e.g. what a warm start took and left out):
    the best trial, the trials plot, each searched hyper-parameter against the metric, the table.

    `trials_png` is the plot `trials_plot` wrote (it is also an output); the scatter goes to `workdir`.
    """
    scatter = Path(workdir) / "params.png"
    params_plot(trials, scatter, metric, searched, mode=mode, space=space)
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    summary = ", ".join(f"{counts[s]} {STATUS_TEXT[s]}" for s in STATUS_TEXT if counts.get(s))
    shown = {k: _py(best[k]) for k in searched if k in best}
    labels = trial_labels(trials, searched)
    ok = trials[trials["status"] != "error"].dropna(subset=[metric]) if not trials.empty else trials
    best_row = None
    if not ok.empty:
        best_row = trials.index.get_loc(ok[metric].idxmax() if higher_is_better(mode) else ok[metric].idxmin())
    best_label = labels.get(trials.iloc[best_row]["trial_id"], "").split(" ", 1)[0] if best_row is not None else ""
    space_text = ", ".join(
        f"{k} {next(iter(v))} {list(next(iter(v.values())))}"
        for k, v in (space or {}).items()
        if k in searched and isinstance(v, Mapping)
    )
    return _page(
        f"<h3>Best {html.escape(metric)} {best_score:.4f} ({direction(mode)}), trial {html.escape(best_label)}: "
        f"{html.escape(format_params(shown, 3))}</h3>",
        f"<p class='frd-note'>{len(trials)} trials: {html.escape(summary)}. "
        f"Searched: {html.escape(space_text or ', '.join(searched))}"
        + (f" by {html.escape(searcher)}" if searcher else "")
        + ". Scores are on the validation split.</p>",
        *(f"<p class='frd-note'>{html.escape(line)}</p>" for line in notes),
        png_html(trials_png, f"{metric} per epoch, one line per trial"),
        png_html(scatter, f"{metric} against each searched hyper-parameter"),
        table_html(trials_table(trials, searched, metric), caption="Trials, best first", highlight_row=best_row),
    )


def training_page(
    history: Sequence[Mapping[str, float]],
    *,
    metric: str,
    mode: str,
    val: Mapping[str, float],
    test: Mapping[str, float],
    params: Mapping[str, Any],
    curves_png: str | Path,
    live_uri: str = "",
    global_batch: Optional[int] = None,
    workers: Optional[int] = None,
    baseline: Optional[Mapping[str, float]] = None,
    baseline_name: str = "",
) -> str:
    """The training Deck: final validation and test scores beside the baseline's, the curves, the per-epoch table."""
    test_name = "test/" + metric.split("/", 1)[-1]
    baseline = dict(baseline or {})
    rows = [
        {"split": "validation (last epoch)", **{k.split("/", 1)[-1]: v for k, v in val.items()}},
        {"split": "test (scored once)", **{k.split("/", 1)[-1]: v for k, v in test.items()}},
    ]
    for split in ("val", "test"):
        part = {k.split("/")[-1]: v for k, v in baseline.items() if k.startswith(f"baseline/{split}/")}
        if part:
            rows.append({"split": f"baseline {split}: {baseline_name or 'reference model'}", **part})
    scores = pd.DataFrame(rows)
    ref = baseline.get("baseline/" + test_name)
    verdict = (
        ""
        if ref is None
        else f"; baseline {html.escape(test_name)} {ref:.4f}: "
        + (
            "the model beats it"
            if at_least_as_good(mode, test.get(test_name, float("nan")), ref)
            else "the model does NOT beat it"
        )
    )
    setup = (
        f"{len(history)} epochs"
        + (f" on {workers} workers" if workers else "")
        + (f", global batch {global_batch}" if global_batch else "")
    )
    return _page(
        f"<h3>{html.escape(metric)} {val.get(metric, float('nan')):.4f}, {html.escape(test_name)} "
        f"{test.get(test_name, float('nan')):.4f} ({direction(mode)}){verdict}</h3>",
        f"<p class='frd-note'>{html.escape(setup)}; hyper-parameters {html.escape(format_params(params, 4))}</p>",
        table_html(
            scores, caption="Final scores", formats={c: column_format("x/" + c) for c in scores.columns if c != "split"}
        ),
        png_html(curves_png, f"loss and {metric} per epoch"),
        table_html(history_table(history), caption="Per epoch"),
        f"<p class='frd-note'>Live DVCLive copy (metrics.json, plots/metrics/*): <code>{html.escape(live_uri)}</code></p>"
        if live_uri
        else "",
    )
