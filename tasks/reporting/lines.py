"""Progress lines and short names: what the terminal shows while a search or a training runs.

Imported by Ray workers and Tune trials: the standard library only (no pandas, no matplotlib).
"""

from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

from dvc_bridge.direction import in_words

# Ray Tune names a trial's directory "<trainable>_<5 hex run id>_<5 digit trial index>_<index>_<config>_<date>".
_TUNE_ID = re.compile(r"(?:^|_)([0-9a-f]{5})_(\d{5})(?:_|$)")


def _fmt(value, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def direction(mode: str) -> str:
    return in_words(mode)


def epoch_line(m: Mapping[str, float], epochs: int, metric: str) -> str:
    """One compact line per training epoch: losses, the selecting validation metric, lr, speed."""
    return (
        f"epoch {int(m['epoch'])}/{epochs}: train/loss {m['train/loss']:.4f}  val/loss {m['val/loss']:.4f}  "
        f"{metric} {m[metric]:.4f}  lr {m['lr']:.4g}  {m['epoch_time_s']:.1f} s  {m['samples_per_s']:.0f} samples/s"
    )


def format_params(params: Mapping, digits: int = 4) -> str:
    """Hyper-parameters in one line, floats to `digits` significant digits: "lr=0.0674 batch_size=64"."""
    return " ".join(f"{k}={_fmt(v, digits)}" for k, v in params.items())


def trial_line(n: int, total: int, trial_id: str, config: Mapping, what: str) -> str:
    """One compact line per trial event ("epoch 2/2 val/accuracy 0.93", "stopped early", "error: ...")."""
    return f"trial {n}/{total} {trial_id} [{format_params(config)}]: {what}"


def short_trial_id(trial_id: str) -> str:
    """Tune's run id and trial index ("e7566_00000") out of a trial directory name; the name itself otherwise."""
    m = _TUNE_ID.search(str(trial_id))
    return f"{m.group(1)}_{m.group(2)}" if m else str(trial_id)


def trial_number(trial_id: str, otherwise: int) -> int:
    """A trial's number from 1 in Tune's own order (its trial index: `..._00000` is 1), else `otherwise`."""
    m = _TUNE_ID.search(str(trial_id))
    return int(m.group(2)) + 1 if m else otherwise


def trial_numbers(trial_ids: Sequence[str]) -> dict[str, int]:
    """Trial number from 1, in the order Tune created the trials (its trial index), else as given."""

    def index(t: str) -> float:
        m = _TUNE_ID.search(str(t))
        return int(m.group(2)) if m else math.inf

    ordered = sorted(dict.fromkeys(trial_ids), key=lambda t: (index(t), list(trial_ids).index(t)))
    return {t: n for n, t in enumerate(ordered, start=1)}


def next_steps(exp_name: str, repo: str, has_remote: bool) -> str:
    """Where to look after a run, for its target: `dvc pull` only where the model went to a DVC remote
    (a target without one keeps it in the repo's own cache, and `dvc pull` there says "No remote provided")."""
    restore = f"dvc exp apply {exp_name}" + (" && dvc pull" if has_remote else "")
    if "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo):  # a git URL: look from a clone
        where = f"in a clone of {repo}: dvc exp pull origin {exp_name} && dvc exp show"
    else:
        where = f"cd {repo} && dvc exp show"
    return f"next: {where}   |   {restore}"
