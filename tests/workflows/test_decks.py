"""The Decks and the end-of-run summary as a person reads them: built from the report functions with
small synthetic runs (no Ray), parsed with the stdlib's html.parser, checked for the parts a user
reads (labels, metric names and directions, integer epochs, styled tables) and for what must not
be there (raw dict reprs, 16-digit floats, Tune's directory names). Two problems' shapes: a
classification metric (higher is better) and an error (lower is better)."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from dvc_bridge.bridge import ExperimentRef
from dvc_bridge.summary import flatten_metrics, metrics_at, studio_url, summary_html
from tasks.reporting import decks as report
from tasks.reporting import lines
from tasks.reporting import summary as run_summary

TRIAL_DIR = "trial_on_worker_e7566_{:05d}_{}_batch_size=32,lr=0.0674,momentum=0.6214_2026-12-01_20-58-21"
LONG_FLOAT = re.compile(r"\d\.\d{9,}")
SPACE = {
    "lr": {"loguniform": [0.01, 0.2]},
    "momentum": {"uniform": [0.5, 0.95]},
    "batch_size": {"choice": [32, 64, 128]},
    "channels": 16,
}
SEARCHED = ["lr", "momentum", "batch_size"]


class Page(HTMLParser):
    """Text, tables (rows of cell texts), images and styles of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.tables, self.images, self.styles, self.headings = [], [], [], [], []
        self._cell, self._row, self._in = None, None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
            self.tables[-1].append(self._row)
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if self._in and self._in[-1] == "style":
            self.styles.append(data)
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in and self._in[-1] in ("h3", "b"):
            self.headings.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())

    def table(self, header_cell: str) -> list[list[str]]:
        return next(t for t in self.tables if t and header_cell in t[0])


def _png(image: dict) -> bytes:
    assert image["src"].startswith("data:image/png;base64,")
    return base64.b64decode(image["src"].split(",", 1)[1])


def assert_readable(page: Page) -> None:
    text = page.all_text
    assert "{'" not in text and "np.float" not in text, "a raw repr in the page"
    assert not LONG_FLOAT.search(text), f"an unrounded float in the page: {LONG_FLOAT.search(text).group()}"
    assert "trial_on_worker" not in text, "a Tune directory name in the page"
    assert any("border" in s for s in page.styles), "tables without borders"


def _trials(metric: str, scores: list[float]) -> pd.DataFrame:
    status = ["completed", "stopped_early", "completed", "error"]
    rows = [
        {
            "trial_id": TRIAL_DIR.format(i, i),
            "lr": 0.06740719592736705 / (i + 1),
            "momentum": 0.6214040211937416 + 0.05 * i,
            "batch_size": [32, 64, 128, 64][i],
            "status": status[i],
            "epochs": [2, 1, 2, 0][i],
            metric: scores[i],
            "error": "RuntimeError: boom" if status[i] == "error" else "",
        }
        for i in range(4)
    ]
    return pd.DataFrame(rows)


def _history(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"trial_id": r.trial_id, "epoch": float(e), metric: r[metric] * e / 2}
            for _, r in trials.iterrows()
            if r.epochs
            for e in range(1, int(r.epochs) + 1)
        ]
    )


def _trials_page(tmp_path: Path, metric: str, mode: str, scores: list[float], **more) -> Page:
    trials = _trials(metric, scores)
    trials = trials.sort_values(metric, ascending=mode == "min", na_position="last").reset_index(drop=True)
    history = _history(trials, metric)
    report.trials_plot(history, tmp_path / "trials.png", metric, report.trial_labels(trials, SEARCHED))
    ok = trials[trials.status != "error"]
    best = ok.iloc[0]
    page = report.trials_page(
        trials,
        history,
        metric=metric,
        mode=mode,
        searched=SEARCHED,
        space=SPACE,
        best={k: best[k] for k in SEARCHED} | {"channels": 16},
        best_score=float(best[metric]),
        trials_png=tmp_path / "trials.png",
        workdir=tmp_path,
        **more,
    )
    return Page(page)


def test_trials_deck_says_which_searcher_and_what_a_warm_start_took(tmp_path):
    from tasks.record.history import SearchHistory

    warm = SearchHistory(
        points=[{"lr": 0.01}, {"lr": 0.02}],
        scores=[0.9, 0.91],
        sources={"exp-a": 2},
        left_out=["3 trials of exp-c: data version cdcdcdcdcdcd, not this run's abababababab"],
    )
    page = _trials_page(tmp_path, "val/accuracy", "max", [0.95, 0.668, 0.93, float("nan")], searcher="optuna",
                        notes=warm.describe())  # fmt: skip
    text = " ".join(page.text)
    assert "by optuna" in text
    assert "warm start: 2 earlier trials seed the search (2 from exp-a)" in text
    assert "warm start: left out 3 trials of exp-c: data version cdcdcdcdcdcd" in text


@pytest.mark.parametrize(
    "metric, mode, scores, best_trial",
    [
        ("val/accuracy", "max", [0.95, 0.668, 0.9312345678, float("nan")], "#1"),
        ("val/rmse", "min", [61.25, 58.123456789, 70.5, float("nan")], "#2"),
    ],
    ids=["accuracy-max", "rmse-min"],
)
def test_trials_deck_reads_at_a_glance(tmp_path, metric, mode, scores, best_trial):
    page = _trials_page(tmp_path, metric, mode, scores)
    assert_readable(page)
    heading = " ".join(page.headings)
    assert metric in heading and ("higher is better" if mode == "max" else "lower is better") in heading
    assert f"trial {best_trial}:" in heading and "lr=" in heading
    table = page.table("Tune id")
    assert table[0] == ["trial", "Tune id", *SEARCHED, "status", "epochs", metric, "error"]
    body = {row[0]: row for row in table[1:]}
    assert set(body) == {"1", "2", "3", "4"} and body["1"][1] == "e7566_00000"
    assert body["2"][5] == "stopped early" and body["4"][5] == "error" and body["4"][7] == ""
    assert all(re.fullmatch(r"\d+", row[6]) for row in table[1:]), "epochs as integers"
    assert all(re.fullmatch(r"\d+\.\d{4}", row[7]) for row in table[1:] if row[5] != "error"), "scores to 4 decimals"
    assert "text-align: right" in " ".join(page.styles), "numbers right-aligned"
    assert "3 trials" not in page.all_text and "4 trials: 2 completed, 1 stopped early, 1 error" in page.all_text
    assert len(page.images) == 2 and all(_png(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in page.images)
    assert [i["alt"] for i in page.images] == [
        f"{metric} per epoch, one line per trial",
        f"{metric} against each searched hyper-parameter",
    ]


def test_trial_labels_are_short_and_numbered_in_tune_order():
    trials = _trials("val/accuracy", [0.9, 0.8, 0.7, float("nan")]).iloc[::-1].reset_index(drop=True)
    labels = report.trial_labels(trials, SEARCHED)
    assert labels[TRIAL_DIR.format(0, 0)] == "#1 lr=0.0674 momentum=0.621 batch_size=32"
    assert labels[TRIAL_DIR.format(3, 3)].startswith("#4 ")
    assert lines.short_trial_id("trial_on_worker_e7566_00012_12_x=1") == "e7566_00012"
    assert lines.short_trial_id("my-trial") == "my-trial"


def _ticks(ax) -> list[float]:
    lo, hi = ax.get_xlim()
    return [t for t in ax.get_xticks() if lo <= t <= hi]


def test_every_epoch_axis_ticks_whole_epochs(tmp_path, monkeypatch):
    """Epoch axes of the trials and training plots tick integers only (no 1.2, 1.4, ...)."""
    import matplotlib.pyplot as plt

    axes = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: axes.extend(a for a in fig.axes if a.get_xlabel() == "epoch"))
    trials = _trials("val/accuracy", [0.9, 0.8, 0.7, float("nan")])
    report.trials_plot(_history(trials, "val/accuracy"), tmp_path / "t.png", "val/accuracy")
    history = [{"epoch": float(e), "train/loss": 1 / e, "val/loss": 1 / e, "val/accuracy": 0.5} for e in (1, 2, 3)]
    report.curves_plot(history, tmp_path / "c.png", "val/accuracy", 0.9)
    monkeypatch.setattr(plt, "close", real_close)
    assert len(axes) == 3
    for ax in axes:
        assert _ticks(ax) and all(float(t).is_integer() for t in _ticks(ax)), _ticks(ax)


def test_params_plot_spans_the_space_on_its_scale(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figs = []
    monkeypatch.setattr(plt, "close", figs.append)
    trials = _trials("val/accuracy", [0.9, 0.8, 0.7, float("nan")])
    report.params_plot(trials, tmp_path / "p.png", "val/accuracy", SEARCHED, mode="max", space=SPACE)
    lr, momentum, batch = figs[0].axes[:3]
    assert lr.get_xscale() == "log" and lr.get_xlim()[0] < 0.01 and lr.get_xlim()[1] > 0.2
    assert momentum.get_xscale() == "linear"
    assert [t.get_text() for t in batch.get_xticklabels()] == ["32", "64", "128"], "every choice, in order"
    assert "1 errored trial not shown" in figs[0]._suptitle.get_text()
    plotted = sum(len(c.get_offsets()) for c in lr.collections)
    assert plotted == 3, "one point per scored trial"


def test_training_deck(tmp_path):
    history = [
        {
            "epoch": float(e),
            "train/loss": 1.107873700261116 / e,
            "val/loss": 0.22897708415985107,
            "val/rmse": 55.123456789 - e,
            "lr": 0.06740719592736705,
            "epoch_time_s": 1.125919358000374,
            "samples_per_s": 3552.6523028291977,
        }
        for e in (1, 2, 3)
    ]
    report.curves_plot(history, tmp_path / "c.png", "val/rmse", 57.5)
    page = Page(
        report.training_page(
            history,
            metric="val/rmse",
            mode="min",
            val={"val/loss": 0.2, "val/rmse": 52.123456789},
            test={"test/loss": 0.3, "test/rmse": 57.5},
            params={"lr": 0.06740719592736705, "batch_size": 32},
            curves_png=tmp_path / "c.png",
            live_uri="s3://b/live/exp-1",
            global_batch=32,
            workers=2,
        )
    )
    assert_readable(page)
    assert "val/rmse 52.1235, test/rmse 57.5000 (lower is better)" in " ".join(page.headings)
    assert "lr=0.06741" in page.all_text and "s3://b/live/exp-1" in page.all_text
    scores = page.table("split")
    assert scores[0] == ["split", "loss", "rmse"] and scores[2] == ["test (scored once)", "0.3000", "57.5000"]
    epochs = page.table("epoch time (s)")
    assert epochs[0] == ["epoch", "train/loss", "val/loss", "val/rmse", "lr", "epoch time (s)", "samples/s"]
    assert [row[0] for row in epochs[1:]] == ["1", "2", "3"]
    assert epochs[1][5:] == ["1.13", "3,553"]


def _ref(**kw) -> ExperimentRef:
    base = dict(
        name="exp-7",
        commit="c" * 40,
        baseline_rev="b" * 40,
        git_ref="refs/exps/bb/x/exp-7",
        repo="https://git.example/team/exps.git",
        data_pushed=True,
        ref_pushed=True,
        promoted=True,
        branch="exp-exp-7",
        decision="promoted to branch exp-exp-7: test/rmse 57.5000 <= 60.0000",
        metric="test/rmse",
        score=57.5,
    )
    return ExperimentRef(**{**base, **kw})


def test_experiment_deck_compares_with_the_baseline():
    scores = {"val/rmse": 52.123456789, "test/rmse": 57.5, "val/loss": 0.25, "test/loss": 0.3}
    baseline = flatten_metrics({"val": {"rmse": 55.0, "loss": 0.2}, "test": {"rmse": 57.5, "loss": 0.4}, "step": 2})
    assert baseline["val/rmse"] == 55.0 and baseline["step"] == 2.0
    page = Page(
        summary_html(
            _ref(),
            scores=scores,
            baseline_metrics=baseline,
            modes={"val/rmse": "min", "test/rmse": "min"},
            studio_url="https://user:pw@studio.example",
        )
    )
    assert_readable(page)
    table = page.table("change")
    assert table[0] == ["metric", "this experiment", "baseline", "change", "direction"]
    rows = {r[0]: r for r in table[1:]}
    assert rows["val/rmse"][1:] == ["52.1235", "55.0000", "-2.8765 (better)", "lower is better"]
    assert rows["test/rmse"][3] == "+0.0000 (same)"
    assert rows["val/loss"][3] == "+0.0500 (worse)" and rows["test/loss"][3] == "-0.1000 (better)"
    text = page.all_text
    assert "Gate: promoted to branch exp-exp-7" in text
    for command in (
        "dvc exp pull origin exp-7",
        "dvc exp apply exp-7",
        "dvc metrics diff bbbbbbbb exp-7",
        "dvc plots diff bbbbbbbb exp-7",
    ):
        assert command in text
    assert "https://studio.example" in text and "pw" not in text


def test_experiment_deck_without_a_baseline_or_studio():
    page = Page(
        summary_html(
            _ref(repo="/srv/exps"),
            scores={"val/accuracy": 0.95, "test/accuracy": 0.93},
            baseline_metrics=None,
            metrics_path="results/dvclive/metrics.json",
        )
    )
    assert page.table("metric")[0] == ["metric", "this experiment", "direction"]
    assert "has no recorded metrics (results/dvclive/metrics.json)" in page.all_text
    assert "cd /srv/exps" in page.all_text and "Studio" not in page.all_text
    assert studio_url(False, {}) == "" and studio_url(True, {}) == "https://studio.datachain.ai"
    assert studio_url(False, {"DVC_STUDIO_URL": "https://s.example"}) == "https://s.example"


def test_baseline_metrics_are_read_from_the_baseline_commit(tmp_path):
    def git(*args):
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("x")
    git("add", "a.txt")
    git("commit", "-qm", "no metrics")
    bare = git("rev-parse", "HEAD")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "metrics.json").write_text('{"val": {"accuracy": 0.9}, "test": {"accuracy": 0.88}}')
    git("add", "m")
    git("commit", "-qm", "metrics")
    assert metrics_at(tmp_path, bare, "m/metrics.json") is None
    assert metrics_at(tmp_path, "HEAD", "m/metrics.json") == {"val/accuracy": 0.9, "test/accuracy": 0.88}


# ----------------------------------------------------------------------------- the terminal


RUN_OUTPUT = """Running Execution on local.
trial 1/3 f1311_00000 [lr=0.06741 momentum=0.6214 batch_size=32]: completed
live metrics (DVCLive metrics.json, plots/metrics/*) are copied each epoch to /tmp/flyte-abc/raw/dvclive
experiment local-1 (9910ef67) in /srv/exps: promoted to branch exp-local-1: test/accuracy 0.9300 >= 0.9000
TuneTrainOutputs(experiment=ExperimentRef(name='local-1', commit='9910ef677a2cc5984cf59223212f96550aa3a910'))
"""

FAILED_OUTPUT = """Running Execution on local.
│ ❱  78 │   p = load_problem(problem)                                          │
╰──────────────────────────────────────────────────────────────────────────────╯
ProblemError: Error encountered while executing
'tasks.flyte.tasks.validate_settings':
  problem 'nosuch' is not a built-in problem (diabetes, digits) nor an
importable 'module:attribute' (e.g. my_team.problems:CHURN).
"""


def test_terminal_summary_is_short_and_aligned():
    log = run_summary.parse_log(RUN_OUTPUT.splitlines())
    assert (log.exp_name, log.repo, log.live_uri) == ("local-1", "/srv/exps", "/tmp/flyte-abc/raw/dvclive")
    exp = run_summary.Experiment(
        name="local-1",
        commit="9910ef67" + "0" * 32,
        baseline="97af2410" + "0" * 32,
        run_info={
            "problem": "digits",
            "tune": {"metric": "val/accuracy"},
            "val": {"val/accuracy": 0.95, "val/loss": 0.19344867765903473},
            "test": {"test/accuracy": 0.93},
        },
        params={"tune": {"space": SPACE}},
        best={"lr": 0.06740719592736705, "momentum": 0.6214040211937416, "batch_size": 32, "channels": 16},
    )
    lines = run_summary.summary_lines(exp, log, {"train_model": "/tmp/flyte-abc/sandbox/x/deck.html"}, "/srv/exps")
    text = "\n".join(lines)
    assert "scores        val/accuracy 0.9500   test/accuracy 0.9300" in text
    assert "best params   lr=0.06741 momentum=0.6214 batch_size=32   (fixed: channels=16)" in text
    assert "train_model           file:///tmp/flyte-abc/sandbox/x/deck.html" in text
    assert "dvc metrics diff 97af2410 local-1" in text and "0.19344867765903473" not in text
    values = [line[16:] for line in lines[2:]]  # one column for every value
    assert all(v and not v.startswith(" ") for v in values)
    assert len(lines) <= 16
    assert run_summary.OUTPUT_REPR.match(RUN_OUTPUT.splitlines()[-1])


def test_terminal_names_the_failing_task():
    log = run_summary.parse_log(FAILED_OUTPUT.splitlines())
    assert log.failure == (
        "validate_settings",
        "ProblemError",
        "problem 'nosuch' is not a built-in problem (diabetes, digits) nor an importable "
        "'module:attribute' (e.g. my_team.problems:CHURN).",
    )
    lines = run_summary.failure_lines(log, 1)
    assert lines[1].startswith("run failed in validate_settings: ProblemError: problem 'nosuch'")
    assert "no task named" in run_summary.failure_lines(run_summary.parse_log(["Killed"]), 137)[1]


def test_the_wrapper_keeps_the_exit_code_and_hides_the_repr(tmp_path, capsys):
    script = tmp_path / "fake_run.py"
    script.write_text("import sys\nprint(open(sys.argv[1]).read(), end='')\nsys.exit(int(sys.argv[2]))\n")
    (tmp_path / "failed.txt").write_text(FAILED_OUTPUT)
    (tmp_path / "ok.txt").write_text(RUN_OUTPUT.replace("/srv/exps", str(tmp_path / "nowhere")))
    import sys

    assert run_summary.main(["--", sys.executable, str(script), str(tmp_path / "failed.txt"), "1"]) == 1
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-2].startswith("run failed in validate_settings:")
    started = time.time()
    assert run_summary.main(["--", sys.executable, str(script), str(tmp_path / "ok.txt"), "0"]) == 0
    out = capsys.readouterr().out
    assert "TuneTrainOutputs(" not in out and "Run finished: experiment local-1" in out
    assert time.time() - started < 10


# ----------------------------------------------------------------------------- flytekit's Deck page order


from flytekit import Deck, task, workflow  # noqa: E402

from tasks.flyte.tasks import DECK_FIELDS, _show_first  # noqa: E402


@task(enable_deck=True, deck_fields=DECK_FIELDS)
def _first_step() -> int:
    _show_first(Deck("First", "<p>one</p>"))
    return 1


@task(enable_deck=True, deck_fields=DECK_FIELDS)
def _second_step(x: int) -> int:
    _show_first(Deck("Second", "<p>two</p>"))
    return x + 1


@workflow
def _two_step_wf() -> int:
    return _second_step(x=_first_step())


def test_each_task_deck_opens_on_its_own_page_with_only_its_own_timeline():
    """flytekit opens the first page added (its Timeline, added before the task body); a local run
    also piles up every earlier task's pages and Timeline rows. The tasks' Decks do neither."""
    from flytekit import FlyteContextManager

    started = time.time() - 1
    assert _two_step_wf() == 2
    sandbox = Path(FlyteContextManager.current_context().file_access.get_random_local_directory()).parent
    tabs = {}
    for path in sandbox.glob("*/deck.html"):
        if path.stat().st_mtime >= started:
            text = path.read_text()
            names = re.findall(r'<li onclick="handleLinkClick\(this\)">([^<]*)</li>', text)
            rows = re.findall(r"<tr><td>([^<]*)</td>", text)
            tabs[names[0]] = (names, rows)
    assert set(tabs) == {"First", "Second"}
    for names, rows in tabs.values():
        assert names[:2] in (["First", "Timeline"], ["Second", "Timeline"]) and names[2:] == ["Input", "Output"]
        assert rows.count("Execute user level code") == 1, rows
