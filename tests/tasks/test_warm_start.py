"""Warm starts from the DVC history: three real earlier experiments (real git, real DVC, saved by the bridge) in
a target repo; the two on this run's data version seed the Optuna searcher with the trials that fit its space,
and what is left out is said plainly."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from support import git

from compat.ray import optuna_study
from dvc_bridge.bridge import record_experiment, resolve_target
from dvc_bridge.history import read_history
from dvc_bridge.live import EpochLogger
from tasks.problem import defaults, load_problem, search_space, space_document
from tasks.ray_glue.searchers import make_search
from tasks.record import experiment
from tasks.record.history import HISTORY_FILES, warm_start
from tasks.training.settings import TuneSettings

PROBLEM = load_problem("diabetes")
SHA, OTHER_SHA = "ab" * 32, "cd" * 32
# The space the earlier runs searched and this run searches (given, so the problem's own default may change).
SPACE = {
    "lr": {"loguniform": [0.003, 0.03]},
    "weight_decay": {"loguniform": [1e-6, 1e-2]},
    "hidden": {"choice": [16, 32, 64]},
    "layers": {"randint": [1, 2]},
    "dropout": {"uniform": [0.0, 0.2]},
    "batch_size": {"choice": [16, 32]},
}


def _earlier_run(tmp, name: str, target: str, sha: str, space: dict, rows: list[dict]) -> None:
    """One earlier run of the diabetes problem, recorded by the bridge as a DVC experiment of `target`."""
    tmp.mkdir(parents=True)
    torch.save(PROBLEM.build_model(defaults(PROBLEM)).state_dict(), tmp / "model.pth")
    live = EpochLogger(tmp / "dvclive", resume=False)
    live.log_epoch({"val/rmse": 60.0})
    live.log_summary({"test/rmse": 61.0})
    live.close()
    pd.DataFrame(rows).assign(status="completed", epochs=2, error="").to_csv(tmp / "trials.csv", index=False)
    (tmp / "trials.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    record = experiment.describe_run(
        PROBLEM,
        params=experiment.params_document(
            "diabetes",
            {"source": "embedded:sklearn-diabetes", "seed": 0, "sha256": sha, "dvc_rev": ""},
            {"num_samples": len(rows), "search": "random", "space": space},
            {"epochs": 2},
        ),
        best=defaults(PROBLEM),
        trials_csv=tmp / "trials.csv",
        trials_png=tmp / "trials.png",
        model=tmp / "model.pth",
        live_dir=tmp / "dvclive",
        val={"val/rmse": 60.0},
        test={"test/rmse": 61.0},
        run_info={"execution_id": name},
        gate=0.0,  # never promoted: only experiment refs
    )
    record_experiment(resolve_target(target), name, record, tmp / "work")


def _trial(lr, hidden, layers, rmse, **more):
    return {"trial_id": f"t{lr}", "lr": lr, "weight_decay": 1e-4, "hidden": hidden, "layers": layers,
            "dropout": 0.1, "batch_size": 32, **more, "val/rmse": rmse}  # fmt: skip


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory):
    """A scaffolded DVC repo with three earlier experiments: exp-a and exp-b on data version SHA, exp-c on another."""
    from tasks.scaffold import scaffold

    tmp = tmp_path_factory.mktemp("warm")
    repo = tmp / "target"
    scaffold(repo)
    full = space_document(search_space(PROBLEM, SPACE))
    _earlier_run(tmp / "a", "exp-a", str(repo), SHA, full, [
        _trial(0.01, 64, 2, 58.5), _trial(0.02, 32, 1, 56.25), _trial(0.03, 256, 2, 54.0),  # hidden 256: not a choice now
    ])  # fmt: skip
    fixed_batch = {**full, "batch_size": 16}  # exp-b held batch_size at 16: its trials.csv has no such column
    rows_b = [
        {k: v for k, v in _trial(lr, 64, 2, rmse).items() if k != "batch_size"}
        for lr, rmse in ((0.005, 57.0), (0.025, 59.5))
    ]
    _earlier_run(tmp / "b", "exp-b", str(repo), SHA, fixed_batch, rows_b)
    _earlier_run(tmp / "c", "exp-c", str(repo), OTHER_SHA, full, [_trial(0.01, 64, 2, 50.0), _trial(0.02, 64, 2, 51.0)])
    return repo


def test_warm_start_takes_the_fitting_trials_of_the_experiments_on_this_data_version(history_repo, tmp_path):
    space = search_space(PROBLEM, SPACE)
    revisions = read_history(resolve_target(str(history_repo)), HISTORY_FILES, tmp_path)
    assert [r.name for r in revisions] == ["exp-a", "exp-b", "exp-c"]
    history = warm_start(PROBLEM, "diabetes", SHA, space, revisions)

    assert history.sources == {"exp-a": 2, "exp-b": 2}
    assert history.scores == [58.5, 56.25, 57.0, 59.5]
    assert history.points[1] == {"lr": 0.02, "weight_decay": 1e-4, "hidden": 32, "layers": 1, "dropout": 0.1,
                                 "batch_size": 32}  # fmt: skip
    assert [p["batch_size"] for p in history.points[2:]] == [16, 16]  # what exp-b held fixed, read from its space
    assert any("1 trials of exp-a: hidden outside this run's space ({'choice': [16, 32, 64]})" in x
               for x in history.left_out), history.left_out  # fmt: skip
    assert any(f"2 trials of exp-c: data version {OTHER_SHA[:12]}, not this run's {SHA[:12]}" in x
               for x in history.left_out), history.left_out  # fmt: skip
    said = "\n".join(history.describe())
    assert "4 earlier trials seed the search (2 from exp-a, 2 from exp-b)" in said and "left out" in said

    # The Optuna searcher starts with them as completed trials (its study: a private attribute of OptunaSearch).
    plan = make_search(TuneSettings(search="optuna", warm_start=True), space, "val/rmse", "min", 2, history)
    study = optuna_study(plan.search_alg)
    assert [t.value for t in study.get_trials(deepcopy=False)] == history.scores
    assert study.best_trial.params["hidden"] == 32


def test_a_narrower_space_leaves_out_the_trials_outside_it_and_a_git_url_reads_the_same(history_repo, tmp_path):
    """Read through a git URL (a bare remote, fetched with its experiment refs), for a space that fixes
    layers=1 and searches fewer widths."""
    git("clone", "--quiet", "--mirror", str(history_repo), str(tmp_path / "remote.git"))  # experiment refs too
    url = f"file://{tmp_path / 'remote.git'}"
    revisions = read_history(resolve_target(url), HISTORY_FILES, tmp_path / "w")
    assert sorted(r.name for r in revisions) == ["exp-a", "exp-b", "exp-c"]
    narrower = {"lr": {"loguniform": [0.003, 0.05]}, "hidden": {"choice": [32, 64]}, "layers": 1}
    space = search_space(PROBLEM, {**narrower, "weight_decay": 1e-4, "dropout": 0.1})
    history = warm_start(PROBLEM, "diabetes", SHA, space, revisions)
    # Only exp-a's second trial had layers 1 (and the other hyper-parameters at the fixed values or inside the space).
    assert history.sources == {"exp-a": 1} and history.points == [{"lr": 0.02, "hidden": 32}], history
    assert any("exp-b: layers outside this run's space (fixed at 1)" in x for x in history.left_out), history.left_out


def test_the_search_history_task_reads_the_target_repo_only_for_a_warm_start(history_repo, tmp_path):
    """The Flyte task (run in-process, as a local run runs it) between check_target and the tune task."""
    from flytekit.types.file import FlyteFile

    from tasks.flyte.contracts import Dataset, RunTarget
    from tasks.flyte.tasks import search_history

    (tmp_path / "data.npz").write_bytes(b"not read")
    data = Dataset(
        file=FlyteFile(str(tmp_path / "data.npz")), sha256=SHA, n_train=310, n_val=66, n_test=66,
        source="embedded:sklearn-diabetes", problem="diabetes",
    )  # fmt: skip
    run = RunTarget(repo=str(history_repo), exp_name="next", baseline_rev="HEAD")
    warm = search_history(run=run, data=data, settings=TuneSettings(search="optuna", warm_start=True, space=SPACE))
    assert warm.sources == {"exp-a": 2, "exp-b": 2} and len(warm.scores) == 4
    assert any("exp-c" in line for line in warm.left_out)
    missing = RunTarget(repo=str(tmp_path / "no-such-repo"), exp_name="next", baseline_rev="HEAD")
    cold = search_history(run=missing, data=data, settings=TuneSettings(search="optuna"))
    assert cold.points == [] and cold.sources == {}  # no warm start: the repo is not even opened
