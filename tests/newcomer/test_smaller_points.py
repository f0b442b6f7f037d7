"""The smaller things a newcomer meets: the tools' own output (real processes) and the texts runs print."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import PROJECT_ROOT

from tasks.training.settings import SettingsError, TrainCluster, TrainSettings, TuneCluster, TuneSettings


def run_module(*args: str, cwd=PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=os.environ, capture_output=True, text=True, timeout=300
    )


def test_sizing_prints_how_each_timeout_is_made():
    proc = run_module(
        "tasks.sizing",
        "--tune",
        '{"num_samples": 8, "max_epochs": 10, "epoch_timeout_s": 60}',
        "--tune_cluster",
        '{"workers": 2, "cpus_per_worker": 2}',
        "--train",
        '{"epochs": 3, "max_failures": 1, "epoch_timeout_s": 100}',
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    tune = next(line for line in lines if line.startswith("  timeout_s:"))
    train = [line for line in lines if line.startswith("  timeout_s:")][1]
    # 8 trials, 4 at once (2 workers x 2 CPUs): 2 waves of 10 epochs of at most 60 s, after 600 s of start-up.
    assert tune.split("#")[0].split() == ["timeout_s:", str(600 + 2 * 10 * 60)]
    assert tune.split("#")[1].strip() == "600 + 2 waves of 4 trials x 10 epochs x 60"
    assert train.split("#")[0].split() == ["timeout_s:", str(600 + 2 * 3 * 100)]
    assert train.split("#")[1].strip() == "600 + (1 + 1 restarts) x 3 epochs x 100"


def test_sizing_refuses_a_mistyped_setting():
    proc = run_module("tasks.sizing", "--train", '{"epoch": 3}')
    assert proc.returncode == 2
    assert "train has no setting `epoch`. Did you mean `epochs`?" in proc.stderr


def test_scaffold_does_not_pass_on_dvcs_advice_to_commit_what_it_committed(tmp_path):
    proc = run_module("tasks.scaffold", str(tmp_path / "target"))
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "You can now commit the changes to git" not in output
    assert "dvc.yaml and params.yaml committed" in output
    status = subprocess.run(["git", "status", "--porcelain"], cwd=tmp_path / "target", capture_output=True, text=True)
    assert status.stdout == ""  # committed indeed


@pytest.mark.parametrize("cls", [TuneSettings, TrainSettings, TuneCluster, TrainCluster])
def test_every_settings_object_refuses_an_unknown_key_and_keeps_the_known_ones(cls):
    first = next(iter(cls.__dataclass_fields__))
    with pytest.raises(SettingsError) as info:
        cls.from_json(json.dumps({first + "x": 1}))
    assert f"Did you mean `{first}`?" in str(info.value)
    with pytest.raises(SettingsError, match="no setting `zzz`. Valid"):  # nothing close: no guess
        cls.from_dict({"zzz": 1})
    default = getattr(cls(), first)
    assert getattr(cls.from_json(json.dumps({first: default})), first) == default


def test_settings_take_json_numbers_as_their_fields_types():
    tune = TuneSettings.from_dict({"cpus_per_trial": 2, "num_samples": 8.0, "space": {"lr": 0.1}})
    assert tune.cpus_per_trial == 2.0 and isinstance(tune.num_samples, int) and tune.space == {"lr": 0.1}
    assert TrainCluster.from_dict({"min_workers": None, "max_workers": None}).min_workers is None
    for bad, text in [({"use_gpu": 1}, "train.use_gpu=1 is not valid: give true or false"), ({"epochs": 2.5}, "whole")]:
        with pytest.raises(SettingsError, match=text):
            TrainSettings.from_dict(bad)


def test_a_space_that_leaves_searched_parameters_out_says_they_are_fixed():
    from tasks.problem import fixed_by_space, load_problem

    digits = load_problem("digits")
    line = fixed_by_space(digits, {"lr": {"loguniform": [0.01, 0.1]}})
    assert "leaves out momentum, batch_size" in line and "fixed at the default momentum=0.9, batch_size=64" in line
    assert fixed_by_space(digits, {}) == ""  # the problem's own space: nothing left out
    assert fixed_by_space(digits, {"lr": 0.1, "momentum": 0.9, "batch_size": 64}) == ""


def test_trial_numbers_follow_tunes_order_not_the_order_trials_report():
    from tasks.reporting.lines import trial_number

    assert trial_number("c7499_00001", otherwise=1) == 2
    assert trial_number("c7499_00000", otherwise=2) == 1
    assert trial_number("my-trial", otherwise=3) == 3


def test_the_next_steps_pull_only_where_a_remote_holds_the_model():
    from tasks.reporting.lines import next_steps

    local = next_steps("e1", "/srv/exps", has_remote=False)
    assert "cd /srv/exps && dvc exp show" in local and "dvc exp apply e1" in local and "dvc pull" not in local
    remote = next_steps("e1", "https://git.example/t/exps.git", has_remote=True)
    assert "dvc exp pull origin e1" in remote and "dvc exp apply e1 && dvc pull" in remote


def test_contracts_read_in_a_line_in_the_terminal_and_on_a_deck(tmp_path):
    from flytekit.types.directory import FlyteDirectory
    from flytekit.types.file import FlyteFile

    from dvc_bridge.bridge import ExperimentRef
    from tasks.flyte.contracts import Dataset, TrainResult

    (tmp_path / "m.pth").write_bytes(b"")
    trained = TrainResult(
        model=FlyteFile(str(tmp_path / "m.pth")),
        dvclive=FlyteDirectory(str(tmp_path)),
        val={"val/accuracy": 0.95123456},
        test={"test/accuracy": 0.9312345},
        global_batch_size=64,
        history=[{"epoch": e, "train/loss": 0.123456789} for e in range(1, 51)],
    )
    shown = repr(trained)
    assert shown.startswith("TrainResult(val/accuracy 0.9512  test/accuracy 0.9312; 50 epochs, model ")
    assert "0.123456789" not in shown and len(shown) < 200
    assert str(trained).startswith("<p><b>training</b>: val/accuracy 0.9512")
    data = Dataset(FlyteFile(str(tmp_path / "m.pth")), "ab" * 32, 10, 2, 3, "embedded:x", "digits")
    assert repr(data) == "Dataset(digits: 10 train / 2 validation / 3 test rows, version abababababab, from embedded:x)"
    ref = ExperimentRef("e1", "9910ef67" * 5, "b" * 40, "refs/exps/e1", "/srv", True, True, decision="kept <x>")
    assert repr(ref) == "ExperimentRef(e1 (9910ef67) in /srv: kept <x>)"
    assert "&lt;x&gt;" in str(ref)  # escaped on a Deck page


def test_make_runs_summary_reads_the_short_failure_line_and_does_not_repeat_it():
    from tasks.reporting import summary

    output = [
        "Running Execution on local.",
        "The full traceback is in /tmp/x.log (`pyflyte --verbose run ...` prints it here).",
        "run failed in validate_settings: ProblemError: problem 'digitz' is not a built-in problem. Did you mean `digits`?",
    ]
    log = summary.parse_log(output)
    assert log.failure == (
        "validate_settings",
        "ProblemError",
        "problem 'digitz' is not a built-in problem. Did you mean `digits`?",
    )
    lines = summary.failure_lines(log, 1)
    assert len(lines) == 1 and lines[0].startswith("  fix what the message names")
