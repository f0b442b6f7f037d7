"""The experiment summary people read in the bridge's Flyte Deck: the scores, the change against the
baseline, the gate's decision, and how to fetch, apply and compare the experiment.

Generic: metric names and their directions come from the caller; nothing from `tasks`.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from dvc_bridge.bridge import ExperimentRef, is_git_url, redact_url
from dvc_bridge.direction import at_least_as_good, in_words
from dvc_bridge.gitops import Git, GitError

log = logging.getLogger(__name__)

CSS = (
    "<style>.frd-exp{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1100px}"
    ".frd-exp table{border-collapse:collapse;margin:.4em 0 1.2em}"
    ".frd-exp th,.frd-exp td{border:1px solid #c8c8d0;padding:4px 10px;text-align:left}"
    ".frd-exp thead th{background:#eef0f6;text-align:center}"
    ".frd-exp td.num{text-align:right;font-variant-numeric:tabular-nums}"
    ".frd-exp tbody th{background:#f7f7fa;font-weight:600;white-space:nowrap}"
    ".frd-exp .better{color:#1b7e32}.frd-exp .worse{color:#b3261e}"
    ".frd-exp .decision{padding:6px 10px;border-radius:4px;background:#eef0f6;display:inline-block}"
    ".frd-exp .decision.promoted{background:#e8f5e9}"
    ".frd-exp pre{background:#f4f4f8;padding:8px 10px;border-radius:3px;overflow-x:auto}</style>"
)


STUDIO_URL_ENV = "DVC_STUDIO_URL"
DEFAULT_STUDIO_URL = "https://studio.datachain.ai"  # dvc_studio_client's default


def studio_url(token_configured: bool, environ: Optional[Mapping[str, str]] = None) -> str:
    """DVC Studio's address when Studio is configured (DVC_STUDIO_URL, or a token for the default Studio); else ""."""
    env = os.environ if environ is None else environ
    url = env.get(STUDIO_URL_ENV, "")
    return redact_url(url) if url else (DEFAULT_STUDIO_URL if token_configured else "")


def flatten_metrics(doc: Mapping, prefix: str = "") -> dict[str, float]:
    """DVCLive's nested metrics.json ({"val": {"accuracy": 0.9}}) as the names it was logged under ("val/accuracy")."""
    out: dict[str, float] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def metrics_at(root: Path, rev: str, path: str, git: Optional[Git] = None) -> Optional[dict[str, float]]:
    """The metrics file `path` as committed at `rev` in the clone `root`, flattened; None if it has none."""
    try:
        text = (git or Git())("show", f"{rev}:{path}", cwd=root)
    except GitError:
        return None
    try:
        return flatten_metrics(json.loads(text))
    except (ValueError, AttributeError):
        return None


@dataclass
class ChangeTable:
    """One table as `dvc metrics diff` / `dvc params diff` print it: headers and rows of strings."""

    title: str  # "Metric" or "Param"
    headers: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        """The table as `dvc ... diff --md` prints it (GitHub markdown, what CML posts on a pull request)."""
        from tabulate import tabulate

        return tabulate(self.rows, headers=self.headers, tablefmt="github", disable_numparse=True)


def change_tables(root: Path, a_rev: str, b_rev: str, *, a_label: str = "", b_label: str = "") -> list[ChangeTable]:
    """The metrics and params that differ between `a_rev` and `b_rev` in the clone `root`, computed and
    formatted by DVC itself as `dvc metrics diff A B` and `dvc params diff A B` (5 digits, only what changed).
    Columns are headed `a_label` / `b_label` (default: the revs as given)."""
    from dvc.commands.metrics import DEFAULT_PRECISION
    from dvc.compare import diff_table
    from dvc.repo import Repo

    tables = []
    with Repo(str(root)) as repo:
        for title, diff, kwargs in (
            (
                "Metric",
                repo.metrics.diff(a_rev=a_rev, b_rev=b_rev),
                {"precision": DEFAULT_PRECISION, "round_digits": True},
            ),
            ("Param", repo.params.diff(a_rev=a_rev, b_rev=b_rev), {"show_changes": False}),
        ):
            td = diff_table(diff.get("diff", {}), title=title, a_rev=a_label or a_rev, b_rev=b_label or b_rev, **kwargs)
            tables.append(ChangeTable(title, list(td.keys()), [[str(c) for c in row] for row in td]))
    return tables


def baseline_changes(root: Path, ref: ExperimentRef) -> Optional[list[ChangeTable]]:
    """`change_tables` of the experiment against its baseline, headed as the compare commands name them
    (`dvc metrics diff <baseline> <name>`); None, with a warning, when DVC cannot compute them."""
    try:
        return change_tables(root, ref.baseline_rev, ref.commit, a_label=ref.baseline_rev[:8], b_label=ref.name)
    except Exception as e:  # the experiment is recorded; its summary is a view
        log.warning("metrics/params diff against the baseline failed: %s: %s", type(e).__name__, e)
        return None


def changes_markdown(tables: list[ChangeTable], name: str, baseline: str) -> str:
    """The metrics and params diffs as the bridge logs them and CML would post them."""
    parts = []
    for t in tables:
        command = f"dvc {'metrics' if t.title == 'Metric' else 'params'} diff {baseline} {name} --md"
        parts.append(f"{command}\n" + (t.markdown() if t.rows else f"(no {t.title.lower()} changed)"))
    return "\n\n".join(parts)


def _changes_html(tables: list[ChangeTable]) -> str:
    out = []
    for t in tables:
        what = "Metrics" if t.title == "Metric" else "Params"
        out.append(f"<p>{what} against the baseline, as <code>dvc {what.lower()} diff</code> prints them:</p>")
        if not t.rows:
            out.append(f"<p>No {what.lower()} changed.</p>")
            continue
        head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
        body = "".join(
            "<tr>"
            + "".join(
                f"<td class='num'>{html.escape(c)}</td>" if i >= 2 else f"<td>{html.escape(c)}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in t.rows
        )
        out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "".join(out)


def fetch_commands(ref: ExperimentRef) -> list[str]:
    """Shell commands that bring the experiment into a working copy and apply it."""
    if is_git_url(ref.repo):  # clone, then pull the experiment
        return [
            f"git clone {ref.repo} experiments && cd experiments",
            f"dvc exp pull origin {ref.name}",
            f"dvc exp apply {ref.name}",
            "dvc pull  # the model, from the DVC remote",
        ]
    return [f"cd {ref.repo}", f"dvc exp apply {ref.name}  # the model is in this repo's DVC cache"]


def compare_commands(ref: ExperimentRef) -> list[str]:
    """Commands that set the experiment beside its baseline (run where the experiment is, see fetch_commands)."""
    base = ref.baseline_rev[:8]
    return [
        f"dvc exp show --rev {base}  # every experiment on the baseline commit",
        f"dvc metrics diff {base} {ref.name}",
        f"dvc params diff {base} {ref.name}",
        f"dvc plots diff {base} {ref.name} --open",
    ]


def _num(value: Optional[float], signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _change(name: str, new: Optional[float], old: Optional[float], modes: Mapping[str, str]) -> str:
    if new is None or old is None or not (math.isfinite(new) and math.isfinite(old)):
        return "<td class='num'>–</td>"
    delta = new - old
    mode = modes.get(name, "min" if name.endswith("loss") else "max")
    good = at_least_as_good(mode, delta, 0)
    word = "same" if delta == 0 else ("better" if good else "worse")
    css = "" if delta == 0 else (" better" if good else " worse")
    return f"<td class='num{css}'>{_num(delta, signed=True)} ({word})</td>"


def scores_table(scores: Mapping[str, float], baseline: Optional[Mapping[str, float]], modes: Mapping[str, str]) -> str:
    """Each score beside the baseline's and the change, judged by its direction (no baseline: the scores alone)."""
    compare = baseline is not None
    head = (
        "<tr><th>metric</th><th>this experiment</th>"
        + ("<th>baseline</th><th>change</th>" if compare else "")
        + "<th>direction</th></tr>"
    )
    rows = []
    for name, value in scores.items():
        old = (baseline or {}).get(name)
        mode = modes.get(name, "min" if name.endswith("loss") else "max")
        against = f"<td class='num'>{_num(old)}</td>{_change(name, value, old, modes)}" if compare else ""
        rows.append(
            f"<tr><th>{html.escape(name)}</th><td class='num'>{_num(value)}</td>{against}<td>{in_words(mode)}</td></tr>"
        )
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def registry_html(ref: ExperimentRef) -> str:
    """The champion against the challenger (both scores and the decision) and the GTO version and stage, if any."""
    parts = []
    if ref.champion_stage:
        champion = (
            f"{ref.champion_version} ({ref.champion_stage})" if ref.champion_version else f"none ({ref.champion_stage})"
        )
        score = "" if ref.champion_score is None else f"{ref.champion_score:.4f}"
        mine = "-" if ref.score is None else f"{ref.score:.4f}"
        rows = [("challenger (this run)", mine), (f"champion {champion}", score or "-")]
        parts.append(
            f"<p><b>Champion against challenger</b> on {html.escape(ref.metric)}: "
            f"{html.escape(ref.champion_decision)}.</p><table><tbody>"
            + "".join(f"<tr><th>{html.escape(k)}</th><td class='num'>{html.escape(v)}</td></tr>" for k, v in rows)
            + "</tbody></table>"
        )
    if ref.version:
        stage = f", stage <code>{html.escape(ref.stage)}</code>" if ref.stage else " (no stage)"
        name = html.escape(f"{ref.artifact}@{ref.version}")
        parts.append(
            f"<p><b>Model registry:</b> <code>{name}</code>{stage}. "
            f"<code>gto show {html.escape(ref.artifact)}</code> lists it; score data with it: "
            f"<code>pyflyte run workflows/predict.py predict_wf --model '{name}'</code>.</p>"
        )
    return "".join(parts)


def summary_html(
    ref: ExperimentRef,
    scores: Optional[Mapping[str, float]] = None,
    baseline_metrics: Optional[Mapping[str, float]] = None,
    modes: Optional[Mapping[str, str]] = None,
    studio_url: str = "",
    metrics_path: str = "",
    changes: Optional[list[ChangeTable]] = None,
) -> str:
    """The experiment Deck.

    scores: metric name -> value of this experiment, in the order shown (e.g. val/ and test/ of the
    selecting metric, then the losses); default: the gate's metric. baseline_metrics: the baseline
    commit's metrics, same names (None: the baseline has no metrics file). modes: name -> "max" or
    "min" (default: "min" for names ending in "loss", else "max"). studio_url: DVC Studio, when
    configured (a URL without credentials). changes: `change_tables` of the baseline and the
    experiment, shown as `dvc metrics diff` / `dvc params diff` print them.
    """
    modes = dict(modes or {})
    if not scores:
        scores = {ref.metric or "score": ref.score} if ref.score is not None else {}
    base = html.escape(ref.baseline_rev[:8])
    if baseline_metrics is None:
        where = f" ({html.escape(metrics_path)})" if metrics_path else ""
        compared = f"<p>The baseline commit <code>{base}</code> has no recorded metrics{where}: nothing to compare against.</p>"
    else:
        compared = f"<p>Baseline: the metrics committed at <code>{base}</code>.</p>"
    promoted = " promoted" if ref.promoted else ""
    record = [
        ("commit", ref.commit),
        ("baseline commit", ref.baseline_rev),
        ("git ref", ref.git_ref),
        ("branch", ref.branch or "(not promoted)"),
        ("repository", ref.repo),
        ("model pushed / ref pushed", f"{'yes' if ref.data_pushed else 'no'} / {'yes' if ref.ref_pushed else 'no'}"),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>" for k, v in record)
    studio = ""
    if studio_url:
        url = html.escape(redact_url(studio_url), quote=True)
        studio = (
            f"<p>DVC Studio: <a href='{url}' target='_blank' rel='noopener'>{url}</a>, the project of "
            f"<code>{html.escape(ref.repo)}</code> lists the experiment <code>{html.escape(ref.name)}</code>.</p>"
        )
    return (
        CSS + "<div class='frd-exp'>"
        f"<h3>DVC experiment {html.escape(ref.name)}</h3>"
        f"<p class='decision{promoted}'><b>Gate:</b> {html.escape(ref.decision or 'no decision')}</p>"
        + scores_table(scores, baseline_metrics, modes)
        + compared
        + (_changes_html(changes) if changes is not None else "")
        + registry_html(ref)
        + f"<table><tbody>{table}</tbody></table>"
        f"<p>Fetch and apply it:</p><pre>{html.escape(chr(10).join(fetch_commands(ref)))}</pre>"
        f"<p>Compare it with its baseline:</p><pre>{html.escape(chr(10).join(compare_commands(ref)))}</pre>"
        + studio
        + "</div>"
    )
