"""The end of a run in the terminal: a short aligned summary in place of pyflyte's raw output repr.

    python -m tasks.summary -- pyflyte run workflows/tune_train.py tune_train_wf [inputs]   # what `make run` does
    python -m tasks.summary [--repo PATH]                                                   # the newest experiment

With a command: runs it, passes its output through (without the workflow's output repr), then
prints the summary of the experiment the run committed, or, for a failed run, the task that failed
and its message (the project's errors say what to change); exits with the command's exit code.
The experiment is read back from the repo (results/run.json, params.yaml and the tuned
hyper-parameters of its git ref). Pure parsing and formatting apart from the few git and file
reads at the bottom; no Flyte, no Ray.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import yaml

from dvc_bridge.layout import PARAMS, RUN_INFO
from tasks.record.experiment import BEST_PARAMS

# Lines the tasks print (tasks/flyte/tasks.py): commit_experiment, train_model.
EXPERIMENT_LINE = re.compile(r"^experiment (?P<name>\S+) \((?P<commit>[0-9a-f]+)\) in (?P<repo>.+?): (?P<decision>.*)$")
LIVE_LINE = re.compile(r"^live metrics .* are copied each epoch to (?P<uri>\S+)\s*$")
# The workflow's outputs as pyflyte prints them at the end of a local run: one long repr line.
OUTPUT_REPR = re.compile(r"^\w*Outputs\(\w+=")
# flytekit names the failing task in the error of a local run (wrapped to the terminal width).
FAILURE = re.compile(
    r"(?P<error>\w+(?:\.\w+)*): Error encountered while executing\s+'(?P<task>[\w.]+)':\s*(?P<message>.*)", re.S
)
# The last line of a refused local run (tasks/flyte/refusals.py), already in the short form.
SHORT_FAILURE = re.compile(r"^run failed in (?P<task>\w+): (?P<error>\w+): (?P<message>.*)$", re.M)
DECK_TASKS = {"Trials": "tune_hyperparameters", "Training": "train_model", "Experiment": "commit_experiment"}


@dataclass
class RunLog:
    """What a run's output says: the experiment line, the live-metrics location, a failure."""

    exp_name: str = ""
    commit: str = ""
    repo: str = ""
    decision: str = ""
    live_uri: str = ""
    failure: Optional[tuple[str, str, str]] = None  # (task, error type, message)
    failure_shown: bool = False  # the run's own output already ends with the short failure line


@dataclass
class Experiment:
    """An experiment as read back from its git ref."""

    name: str
    commit: str = ""
    baseline: str = ""
    run_info: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    best: dict = field(default_factory=dict)


def parse_log(lines: Iterable[str]) -> RunLog:
    log, tail = RunLog(), []
    for line in lines:
        line = line.rstrip("\n")
        tail.append(line)
        if m := EXPERIMENT_LINE.match(line):
            log.exp_name, log.commit, log.repo, log.decision = m["name"], m["commit"], m["repo"], m["decision"]
        elif m := LIVE_LINE.match(line):
            log.live_uri = m["uri"]
    text = "\n".join(tail[-200:])
    short = list(SHORT_FAILURE.finditer(text))
    if short:
        log.failure, log.failure_shown = (short[-1]["task"], short[-1]["error"], short[-1]["message"]), True
    else:
        log.failure = parse_failure(text)
    return log


def parse_failure(text: str) -> Optional[tuple[str, str, str]]:
    """(task, error type, message) from flytekit's local error text, the last one if several."""
    matches = list(FAILURE.finditer(text))
    if not matches:
        return None
    m = matches[-1]
    message = " ".join(m["message"].split())  # undo the terminal's line wrapping
    return m["task"].rsplit(".", 1)[-1], m["error"].rsplit(".", 1)[-1], message


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _aligned(rows: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    out = []
    for key, value in rows:
        first, *rest = str(value).split("\n") or [""]
        out.append(f"  {key:<{width}}  {first}")
        out += [f"  {'':<{width}}  {more}" for more in rest]
    return out


def reference_row(baseline: Mapping, select: str) -> list[tuple[str, str]]:
    """The simple reference model's test score beside the model's (run.json's "baseline"), if recorded."""
    key = f"baseline/test/{select}"
    if key not in baseline:
        return []
    return [("baseline", f"{key} {baseline[key]:.4f}   ({baseline.get('name') or 'reference model'}, same splits)")]


def summary_lines(exp: Experiment, log: RunLog, decks: Mapping[str, str], repo: str) -> list[str]:
    """The aligned end-of-run summary."""
    info = exp.run_info
    tune = info.get("tune", {})
    select = str(tune.get("metric", "")).split("/", 1)[-1]
    scores = {**info.get("val", {}), **info.get("test", {})}
    shown = [k for k in (f"val/{select}", f"test/{select}") if k in scores] or list(scores)
    space = (exp.params.get("tune") or {}).get("space") or {}
    searched = {k: v for k, v in exp.best.items() if isinstance(space.get(k), Mapping)}
    fixed = {k: v for k, v in exp.best.items() if k not in searched}
    params = " ".join(f"{k}={_fmt(v)}" for k, v in (searched or exp.best).items())
    if searched and fixed:
        params += "   (fixed: " + " ".join(f"{k}={_fmt(v)}" for k, v in fixed.items()) + ")"
    deck_text = "\n".join(f"{task:<21} file://{path}" for task, path in decks.items()) or "(none written: cached tasks)"
    base = exp.baseline[:8]
    rows = [
        ("experiment", f"{exp.name}  (commit {exp.commit[:8]}, baseline {base})"),
        ("repository", repo),
        ("problem", str(info.get("problem", ""))),
        ("scores", "   ".join(f"{k} {scores[k]:.4f}" for k in shown)),
        *reference_row(info.get("baseline") or {}, select),
        ("gate", log.decision or "(see the experiment Deck)"),
        ("best params", params),
        ("Decks", deck_text),
        ("live metrics", log.live_uri or "(not printed: see the train_model log)"),
        ("next", f"cd {repo} && dvc exp show\ndvc metrics diff {base} {exp.name}\ndvc exp apply {exp.name}"),
    ]
    return ["", f"Run finished: experiment {exp.name}", *_aligned([r for r in rows if r[1]])]


def failure_lines(log: RunLog, rc: int) -> list[str]:
    if log.failure is None:
        return ["", f"run failed (exit code {rc}): no task named in the output; the traceback above has the cause."]
    task, error, message = log.failure
    hint = "  fix what the message names, then run again: tasks that finished are cached and not redone."
    if log.failure_shown:
        return [hint]
    return ["", f"run failed in {task}: {error}: {message}", hint]


# ----------------------------------------------------------------------------- reading the repo and the Decks


def _git(repo: str, *args: str) -> str:
    proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def read_experiment(repo: str, name: str = "") -> Optional[Experiment]:
    """The experiment `name` in a local repo (default: the newest), from its refs/exps ref."""
    refs = _git(repo, "for-each-ref", "--sort=-committerdate", "--format=%(refname) %(objectname)", "refs/exps")
    for line in refs.splitlines():
        ref, sha = line.split(" ", 1)
        if name and not ref.endswith("/" + name):
            continue
        exp = Experiment(name=ref.rsplit("/", 1)[-1], commit=sha, baseline=_git(repo, "rev-parse", f"{sha}^"))
        try:
            exp.run_info = json.loads(_git(repo, "show", f"{sha}:{RUN_INFO}") or "{}")
            exp.params = yaml.safe_load(_git(repo, "show", f"{sha}:{PARAMS}") or "{}") or {}
            exp.best = yaml.safe_load(_git(repo, "show", f"{sha}:{BEST_PARAMS}") or "{}") or {}
        except (ValueError, yaml.YAMLError):
            pass
        return exp
    return None


def find_decks(since: float, live_uri: str = "", exp_name: str = "") -> dict[str, str]:
    """Task -> the deck.html a local run wrote after `since`, under the run's flytekit sandbox when known."""
    roots = [Path(live_uri.split("/raw/", 1)[0])] if "/raw/" in live_uri and live_uri.startswith("/") else []
    pattern = "sandbox/local_flytekit/*/deck.html"
    candidates = [p for r in roots for p in r.glob(pattern)] or list(
        Path(tempfile.gettempdir()).glob("flyte-*/" + pattern)
    )
    found: dict[str, tuple[float, str]] = {}
    for path in candidates:
        try:
            mtime = path.stat().st_mtime
            if mtime < since:
                continue
            text = path.read_text(errors="replace")
        except OSError:
            continue
        first = re.search(r'<li onclick="handleLinkClick\(this\)">([^<]*)</li>', text)
        task = DECK_TASKS.get(first.group(1) if first else "")
        if task is None or (task == "commit_experiment" and exp_name and exp_name not in text):
            continue
        if task not in found or mtime > found[task][0]:
            found[task] = (mtime, str(path))
    return {t: found[t][1] for t in DECK_TASKS.values() if t in found}


def run_and_summarize(command: Sequence[str], repo: str = "") -> int:
    start = time.time()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("COLUMNS", "160")  # rich wraps flytekit's error to the terminal width
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if not OUTPUT_REPR.match(line):
                sys.stdout.write(line)
                sys.stdout.flush()
        rc = proc.wait()
    except KeyboardInterrupt:
        rc = proc.wait()
        return rc or 130
    log = parse_log(lines)
    if rc != 0:
        print("\n".join(failure_lines(log, rc)))
        return rc
    repo = repo or log.repo or os.getcwd()
    exp = read_experiment(repo, log.exp_name) if Path(repo).exists() else None
    if exp is None:
        exp = Experiment(name=log.exp_name or "(unknown)", commit=log.commit)
    print("\n".join(summary_lines(exp, log, find_decks(start, log.live_uri, exp.name), repo)))
    return rc


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(prog="python -m tasks.summary", description=__doc__.split("\n")[0])
    parser.add_argument("--repo", default="", help="the DVC repo (default: the run's, or this directory's)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if command:
        return run_and_summarize(command, args.repo)
    repo = args.repo or os.getcwd()
    exp = read_experiment(repo)
    if exp is None:
        print(f"no experiment in {repo} (refs/exps is empty)")
        return 1
    print("\n".join(summary_lines(exp, RunLog(), {}, repo)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
