"""Warm starts: the trials of earlier experiments in the target repo that can seed this run's searcher.

An earlier experiment's trials count when it searched the same problem on the same data version (params.yaml:
`problem`, `data.sha256`) and scored the same metric; each of its trials counts when it fits this run's space
(every searched hyper-parameter inside its domain, every fixed one at the same value; what the earlier run held
fixed is read from its recorded space). The rest is left out, each reason said in one line.

Scores are the earlier trials' best validation scores (results/tune/trials.csv); a trial ASHA stopped early
counts with the score it reached. No Ray, no Flyte: the revisions come from `dvc_bridge.history`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pandas as pd
import yaml

from dvc_bridge.layout import PARAMS
from tasks.problem import Choice, IntRange, LogUniform, Problem, ProblemError, Uniform, complete, metric_key
from tasks.problem.interface import parse_domain
from tasks.record.experiment import TRIALS_CSV

HISTORY_FILES = [TRIALS_CSV, PARAMS]


@dataclass
class SearchHistory:
    """Earlier trials that seed a searcher: points (the searched hyper-parameters) with their validation scores."""

    points: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # experiment name -> trials taken from it
    left_out: list[str] = field(default_factory=list)  # one line per experiment or group of trials left out

    def describe(self) -> list[str]:
        """What the log and the Trials Deck say about it."""
        taken = ", ".join(f"{n} from {name}" for name, n in self.sources.items())
        lines = [
            f"warm start: {len(self.points)} earlier trials seed the search"
            + (f" ({taken})" if taken else " (no earlier experiment fits)")
        ]
        return lines + [f"warm start: left out {why}" for why in self.left_out]


def _inside(domain: Any, value: Any) -> bool:
    if isinstance(domain, Choice):
        return any(value == option for option in domain.options)
    if isinstance(domain, IntRange):
        return float(value).is_integer() and domain.low <= value <= domain.high
    if isinstance(domain, (Uniform, LogUniform)):
        if domain.low == domain.high:
            return math.isclose(value, domain.low, rel_tol=1e-9)
        return domain.low <= value <= domain.high
    return value == domain or (isinstance(value, float) and math.isclose(value, domain, rel_tol=1e-9))


def _misfit(space: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The first hyper-parameter of `config` outside this run's space ("" when it fits)."""
    for name, domain in space.items():
        if not _inside(domain, config[name]):
            return name
    return ""


def _earlier_fixed(problem: Problem, params: Mapping[str, Any]) -> dict[str, Any]:
    """What the earlier run held fixed: its recorded space's plain values."""
    space = (params.get("tune") or {}).get("space") or {}
    fixed = {}
    for name, spec in space.items():
        if name in problem.hyperparams and not isinstance(spec, Mapping):
            try:
                fixed[name] = parse_domain(problem, name, spec)
            except ProblemError:
                pass
    return fixed


def warm_start(
    problem: Problem, problem_ref: str, data_sha256: str, space: Mapping[str, Any], revisions: Iterable
) -> SearchHistory:
    """The earlier trials that fit this run (`space`: the typed space it searches), from `dvc_bridge.history`
    revisions holding results/tune/trials.csv and params.yaml."""
    metric = metric_key("val", problem.select)
    searched = [n for n, d in space.items() if isinstance(d, (LogUniform, Uniform, IntRange, Choice))]
    out = SearchHistory()
    for rev in revisions:
        params = yaml.safe_load(rev.files.get(PARAMS, "")) or {}
        if PARAMS not in rev.files or TRIALS_CSV not in rev.files:
            continue
        trials = pd.read_csv(io.StringIO(rev.files[TRIALS_CSV]))
        n = len(trials)
        earlier_problem = str(params.get("problem", ""))
        if earlier_problem not in (problem_ref, problem.name):
            continue  # another problem: not this search's history at all
        sha = str((params.get("data") or {}).get("sha256", ""))
        if sha != data_sha256:
            out.left_out.append(
                f"{n} trials of {rev.name}: data version {sha[:12] or '(none)'}, not this run's {data_sha256[:12]}"
            )
            continue
        if metric not in trials:
            out.left_out.append(f"{n} trials of {rev.name}: they scored no {metric}")
            continue
        ok = trials[trials.get("status", pd.Series("completed", index=trials.index)) != "error"]
        ok = ok[pd.to_numeric(ok[metric], errors="coerce").notna()]
        if len(ok) < n:
            out.left_out.append(f"{n - len(ok)} trials of {rev.name}: failed, no score")
        fixed = _earlier_fixed(problem, params)
        misfits: dict[str, int] = {}
        taken = 0
        for _, row in ok.iterrows():
            values = {k: _plain(row[k]) for k in problem.hyperparams if k in row and pd.notna(row[k])}
            try:
                config = complete(problem, {**fixed, **values})
            except ProblemError as e:
                misfits[str(e).split(" ")[1]] = misfits.get(str(e).split(" ")[1], 0) + 1
                continue
            bad = _misfit(space, config)
            if bad:
                misfits[bad] = misfits.get(bad, 0) + 1
                continue
            out.points.append({k: config[k] for k in searched})
            out.scores.append(float(row[metric]))
            taken += 1
        for name, count in misfits.items():
            out.left_out.append(
                f"{count} trials of {rev.name}: {name} outside this run's space ({_shown(space[name])})"
            )
        if taken:
            out.sources[rev.name] = taken
    return out


def _plain(value: Any) -> Any:
    """A pandas cell as a plain Python value (numpy scalars to int / float / bool / str)."""
    return value.item() if hasattr(value, "item") else value


def _shown(domain: Any) -> str:
    from tasks.problem import domain_spec

    if isinstance(domain, (LogUniform, Uniform, IntRange, Choice)):
        return str(domain_spec(domain))
    return f"fixed at {domain!r}"
