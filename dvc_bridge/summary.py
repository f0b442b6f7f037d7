"""The experiment summary people read in the bridge's Flyte Deck: what was recorded, how to get it."""

from __future__ import annotations

import html

from dvc_bridge.bridge import ExperimentRef, is_git_url


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


def summary_html(ref: ExperimentRef) -> str:
    rows = [
        ("experiment", ref.name),
        ("commit", ref.commit),
        ("baseline", ref.baseline_rev),
        ("git ref", ref.git_ref),
        ("repository", ref.repo),
        (ref.metric or "score", f"{ref.score:.4f}"),
        ("data pushed / ref pushed", f"{ref.data_pushed} / {ref.ref_pushed}"),
        ("decision", ref.decision),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>" for k, v in rows)
    commands = html.escape("\n".join(fetch_commands(ref)))
    return (
        f"<h3>DVC experiment {html.escape(ref.name)}</h3><table>{table}</table>"
        f"<p>Fetch and apply it:</p><pre>{commands}</pre>"
        f"<p>Compare it: <code>dvc exp show</code>, <code>dvc plots diff {html.escape(ref.baseline_rev[:8])} "
        f"{html.escape(ref.name)}</code></p>"
    )
