"""What a newcomer sees when a run is refused: real `pyflyte run` processes, the text they print.

Every case is a process of its own, as a person at a shell starts it; they run side by side (each is
refused before any task that starts Ray, in seconds after pyflyte's imports). The text is read as
printed, with rich's boxes and line wrapping undone only where the test needs a whole sentence.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import PROJECT_ROOT

PYFLYTE = str(Path(sys.executable).parent / "pyflyte")
WORKFLOW = str(PROJECT_ROOT / "workflows" / "tune_train.py")
RAY_MARKERS = ("Started a local Ray instance", "Configuration for experiment", "trial_on_worker", "RayTrainWorker")

# id -> (pyflyte's global options, the workflow's options)
CASES = {
    "train-typo": ([], ["--train", '{"epoch": 3}']),
    "tune-typo": ([], ["--tune", '{"num_sample": 8}']),
    "tune-cluster-typo": ([], ["--tune_cluster", '{"worker": 1}']),
    "train-cluster-typo": ([], ["--train_cluster", '{"cpus_per_workers": 2}']),
    "train-wrong-type": ([], ["--train", '{"epochs": "3"}']),
    "problem-typo": ([], ["--problem", "digitz"]),
    "space-list": ([], ["--tune", '{"space": {"lr": [0.01, 0.1]}}']),
    "space-param-typo": ([], ["--tune", '{"space": {"momentun": 0.8}}']),
    "problem-typo-verbose": (["--verbose"], ["--problem", "digitz"]),
    "help": ([], ["--help"]),
}


def flat(text: str) -> str:
    """The text with rich's box borders and line wrapping undone."""
    text = re.sub(r"[│╭╮╰╯─]", " ", text)
    return " ".join(text.split())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case of CASES as its own `pyflyte run` process, all started at once; {id: (exit code, output)}."""
    from tasks.scaffold import scaffold

    root = tmp_path_factory.mktemp("newcomer")
    scaffold(root / "target")
    env = {**os.environ, "TMPDIR": str(root)}  # the refusals' traceback files land here
    env.pop("COLUMNS", None)  # rich's own width for a pipe: 80, as a log file or CI shows it
    procs = {
        case: subprocess.Popen(
            [PYFLYTE, *before, "run", WORKFLOW, "tune_train_wf", *after],
            cwd=root / "target",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for case, (before, after) in CASES.items()
    }
    out = {}
    for case, proc in procs.items():
        text, _ = proc.communicate(timeout=600)
        out[case] = (proc.returncode, text)
    return out


def last_lines(text: str, n: int) -> list[str]:
    return [line for line in text.splitlines() if line.strip()][-n:]


@pytest.mark.parametrize(
    "case, option, key, closest, valid",
    [
        ("train-typo", "--train", "epoch", "epochs", "Valid train settings: epochs, num_workers, use_gpu, seed"),
        ("tune-typo", "--tune", "num_sample", "num_samples", "Valid tune settings: num_samples, max_epochs"),
        ("tune-cluster-typo", "--tune_cluster", "worker", "workers", "Valid tune_cluster settings: workers,"),
        ("train-cluster-typo", "--train_cluster", "cpus_per_workers", "cpus_per_worker", "Valid train_cluster"),
    ],
)
def test_a_mistyped_setting_is_refused_naming_it_the_closest_and_the_valid_set(runs, case, option, key, closest, valid):
    code, output = runs[case]
    text = flat(output)
    assert code == 2, output[-2000:]
    assert f"Invalid value for '{option}':" in text and f"has no setting `{key}`. Did you mean `{closest}`?" in text
    assert valid in text
    assert "Traceback" not in output and "Running Execution" not in output  # refused while parsing, nothing ran
    assert not any(marker in output for marker in RAY_MARKERS)


def test_a_setting_of_the_wrong_type_is_refused_saying_what_it_takes(runs):
    code, output = runs["train-wrong-type"]
    assert code == 2 and "Traceback" not in output
    assert "Invalid value for '--train': train.epochs='3' is not valid: give a whole number." in flat(output)


def test_a_refused_run_ends_with_the_line_that_says_what_to_change(runs, tmp_path_factory):
    code, output = runs["problem-typo"]
    assert code == 1
    *_, where, last = last_lines(output, 2)
    assert last == (
        "run failed in validate_settings: ProblemError: problem 'digitz' is not a built-in problem (diabetes, digits) "
        "nor an importable 'module:attribute' (e.g. my_team.problems:CHURN). Did you mean `digits`?"
    )
    # The traceback is kept out of the way: in the file the line before names, not on the terminal.
    assert "Traceback" not in output and "╭" not in output
    log = Path(re.search(r"The full traceback is in (\S+) ", where).group(1))
    assert log.is_file() and "Traceback" in log.read_text() and "load_problem" in log.read_text()
    assert len(output.splitlines()) < 8, output


def test_verbose_keeps_flytekits_traceback(runs):
    code, output = runs["problem-typo-verbose"]
    assert code == 1
    assert "Traceback" in output and "load_problem" in output
    assert "Did you mean `digits`?" in flat(output)


def test_a_search_space_mistake_shows_the_forms_with_an_example_for_that_parameter(runs):
    code, output = runs["space-list"]
    assert code == 1
    last = last_lines(output, 1)[0]
    assert last.startswith("run failed in validate_settings: ProblemError: hyper-parameter lr=[0.01, 0.1]")
    assert '{"loguniform": [low, high]}' in last and '{"uniform": [low, high]}' in last and '{"choice": [' in last
    assert "randint" not in last  # lr is a float: only the float forms
    assert """E.g. --tune '{"space": {"lr": {"loguniform": [0.01, 0.2]}}}' searches it""" in last
    assert """--tune '{"space": {"lr": 0.05}}' fixes it""" in last


def test_a_mistyped_hyper_parameter_gets_a_did_you_mean(runs):
    code, output = runs["space-param-typo"]
    assert code == 1
    last = last_lines(output, 1)[0]
    assert "hyper-parameter 'momentun' is not one problem 'digits' knows" in last
    assert last.endswith("Did you mean `momentum`?")


def test_help_explains_every_input_with_its_default(runs):
    code, output = runs["help"]
    assert code == 0
    text = flat(output)
    for option, words in {
        "--dataset": "for the problem's embedded data",
        "--repo_url": "The DVC repo the experiment is committed to",
        "--base_rev": "The commit the experiment is based on",
        "--exp_name": "The experiment's name",
        "--problem": "a built-in problem (digits, the default, or diabetes)",
        "--gate": "(default: the problem's own, digits test/accuracy >= 0.9, diabetes test/rmse <= 65)",
        "--tune": "max_concurrent_trials 0: trials at once",
        "--train": "The training run with the best hyper-parameters",
        "--seed": "The seed of the train / validation / test split (default 0)",
        "--live_uri": "under which rank 0 copies its DVCLive directory",
        "--tune_cluster": "The search's Ray cluster on Flyte",
        "--train_cluster": "The training's Ray cluster on Flyte",
    }.items():
        assert f"{option} " in text and words in text, (option, words)
    assert "space {}: the search space" in text and "loguniform" in text
    # The workflow's docstring is shown once (its summary), not every input twice.
    assert text.count("The seed of the train / validation / test split") == 1


def test_the_readmes_inputs_table_agrees_with_help(runs):
    """Every input of the README's table is an option, and every `field` value pair it gives is in --help."""
    help_text = flat(runs["help"][1]).replace('"', "")
    readme = (PROJECT_ROOT / "README.md").read_text()
    table = readme.split("Workflow inputs (`tune_train_wf`):", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    from workflows.tune_train import tune_train_wf

    assert sorted(re.match(r"\| `(\w+)`", row).group(1) for row in rows) == sorted(
        tune_train_wf.python_interface.inputs
    )
    for row in rows:
        name = re.match(r"\| `(\w+)`", row).group(1)
        assert f"--{name} " in help_text, name
        if name in ("tune", "train", "tune_cluster", "train_cluster"):
            pairs = re.findall(r"`(\w+)` `?([\w{}.]+)`?", row.split("|")[3])
            assert pairs, row
            for field, value in pairs:
                assert f"{field} {value}" in help_text, (name, field, value)
