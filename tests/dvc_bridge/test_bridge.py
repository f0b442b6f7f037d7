"""The bridge against real git remotes, real DVC and a real S3 server on loopback (no Ray)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from support import assert_experiment_in_remote, bare_remote, dvc, exp_refs, free_port, git, make_record

from dvc_bridge.bridge import Target, preflight, record_experiment, resolve_target
from dvc_bridge.errors import ExperimentExistsError, PushError, RemoteError, TargetError
from dvc_bridge.gitops import Git
from tasks.record.experiment import MODEL


def test_remote_target_round_trip(tmp_path, remote_target):
    m = make_record(tmp_path / "m", "exec-1")
    ref = record_experiment(resolve_target(remote_target), "exp-one", m, tmp_path / "w")
    assert ref.data_pushed and ref.ref_pushed and ref.promoted
    assert exp_refs(remote_target) == [ref.git_ref]
    assert git("ls-remote", remote_target, f"refs/heads/{ref.branch}").startswith(ref.commit)
    row = assert_experiment_in_remote(remote_target, "exp-one", m.dvc_files[MODEL].read_bytes(), tmp_path)
    assert row["data.sha256"] == "ab" * 32 and row["test.accuracy"] == 0.95
    assert_clean_trees(remote_target, [ref.git_ref, f"refs/heads/{ref.branch}"])
    assert_run_cache_reuses_train(remote_target, "exp-one", m.dvc_files[MODEL].read_bytes(), tmp_path / "rc")


def assert_clean_trees(url: str, refs: list[str]) -> None:
    """On the remote itself: no DVC scratch file (.dvc/tmp/repro.dat ...), cache or local config in any ref's tree."""
    bare = url.removeprefix("file://")
    for ref in refs:
        files = git("ls-tree", "-r", "--name-only", ref, cwd=bare).splitlines()
        assert "results/run.json" in files and "dvc.lock" in files, files
        bad = [f for f in files if f.startswith((".dvc/tmp/", ".dvc/cache/")) or f == ".dvc/config.local"]
        assert not bad, f"{ref}: {bad}"


def assert_run_cache_reuses_train(url: str, name: str, model: bytes, workdir: Path) -> None:
    """A fresh clone (empty cache) with the experiment's params and no dvc.lock or outputs: after
    `dvc fetch --run-cache`, `dvc repro --pull` restores the train stage from the run cache and the
    DVC remote instead of running it (its command would fail here: no project code on the path)."""
    import shutil

    clone = workdir / "clone"
    git("clone", "--quiet", url, str(clone))
    ref = next(r for r in exp_refs(url) if r.endswith("/" + name))
    git("fetch", "--quiet", "origin", f"{ref}:{ref}", cwd=clone)
    git("checkout", "--quiet", "--detach", ref, cwd=clone)  # the experiment's files, no DVC data
    (clone / "dvc.lock").unlink()
    shutil.rmtree(clone / "results/dvclive")
    assert not (clone / MODEL).exists() and not (clone / ".dvc/cache").exists()
    dvc("fetch", "--run-cache", cwd=clone)
    out = dvc("repro", "--pull", "--single-item", "train", cwd=clone)
    assert "Stage 'train' is cached - skipping run, checking out outputs" in out, out
    assert (clone / MODEL).read_bytes() == model
    assert (clone / "results/dvclive/metrics.json").exists()


def test_retry_of_the_same_execution_finds_its_experiment(tmp_path, remote_target):
    target = resolve_target(remote_target)
    first = record_experiment(target, "exp-r", make_record(tmp_path / "m1", "exec-r"), tmp_path / "w1")
    again = record_experiment(target, "exp-r", make_record(tmp_path / "m2", "exec-r"), tmp_path / "w2")
    assert again.commit == first.commit
    assert exp_refs(remote_target) == [first.git_ref]


def test_same_name_from_another_run_is_refused(tmp_path, remote_target):
    target = resolve_target(remote_target)
    first = record_experiment(target, "taken", make_record(tmp_path / "m1", "exec-a"), tmp_path / "w1")
    with pytest.raises(ExperimentExistsError, match="already exists"):
        record_experiment(target, "taken", make_record(tmp_path / "m2", "exec-b", seed=1), tmp_path / "w2")
    assert git("ls-remote", remote_target, first.git_ref).startswith(first.commit)


def test_below_threshold_is_recorded_not_promoted(tmp_path, remote_target):
    m = make_record(tmp_path / "m", "exec-low", accuracy=0.5)
    ref = record_experiment(resolve_target(remote_target), "low", m, tmp_path / "w")
    assert not ref.promoted and "test/accuracy 0.5000 < 0.9000" in ref.decision
    assert exp_refs(remote_target) == [ref.git_ref]
    assert git("ls-remote", remote_target, "refs/heads/exp-low") == ""


def test_local_target_without_remote_keeps_model_in_its_cache(tmp_path, local_target):
    m = make_record(tmp_path / "m", "exec-local")
    ref = record_experiment(resolve_target(str(local_target)), "loc", m, tmp_path / "w")
    assert git("rev-parse", ref.git_ref, cwd=local_target) == ref.commit
    dvc("exp", "apply", "loc", cwd=local_target)
    assert (local_target / "results/train/model.pth").read_bytes() == m.dvc_files[MODEL].read_bytes()
    assert "up to date" in dvc("status", cwd=local_target)


def test_git_url_without_dvc_remote_is_refused(tmp_path, local_target):
    url = bare_remote(local_target, tmp_path / "bare.git")
    with pytest.raises(RemoteError, match="no default DVC remote"):
        preflight(resolve_target(url), Git(), tmp_path / "p")
    with pytest.raises(RemoteError, match="no default DVC remote"):
        record_experiment(resolve_target(url), "x", make_record(tmp_path / "m", "e"), tmp_path / "w")
    assert exp_refs(url) == []


def test_unreachable_s3_fails_clearly_and_leaves_no_ref(tmp_path):
    from tasks.scaffold import scaffold

    seed = tmp_path / "seed"
    scaffold(seed, remote="s3://nowhere/dvc", endpoint=f"http://127.0.0.1:{free_port()}")
    url = bare_remote(seed, tmp_path / "dead.git")
    with pytest.raises(RemoteError, match="unreachable"):
        preflight(resolve_target(url), Git(), tmp_path / "p")
    with pytest.raises(PushError, match="dvc push"):
        record_experiment(resolve_target(url), "dead", make_record(tmp_path / "m", "e"), tmp_path / "w")
    assert exp_refs(url) == []


@pytest.mark.parametrize(
    "repo_url, error",
    [
        ("/nonexistent/repo", "does not exist"),
        ("plain-dir", "is not a git repository: give the top directory of a DVC repo"),
        ("plain-git", "not a DVC repo"),
        ("file:///nonexistent.git", "cannot clone"),
    ],
)
def test_bad_targets_are_refused(tmp_path, repo_url, error):
    if repo_url == "plain-dir":
        (tmp_path / "plain-dir").mkdir()
        repo_url = str(tmp_path / "plain-dir")
    if repo_url == "plain-git":
        repo = tmp_path / "plain"
        git("init", "--quiet", str(repo))
        git("commit", "--quiet", "--allow-empty", "-m", "init", cwd=repo)
        repo_url = str(repo)
    with pytest.raises(TargetError, match=error):
        preflight(resolve_target(repo_url), Git(), tmp_path / "p")


@pytest.mark.parametrize("name", ["has space", "a/b", "x..y", "end.lock", ""])
def test_invalid_experiment_names_are_refused(tmp_path, local_target, name):
    with pytest.raises(TargetError, match="not a valid git ref"):
        record_experiment(Target(str(local_target), True), name, make_record(tmp_path / "m", "e"), tmp_path / "w")


def test_empty_repo_url_outside_git_is_refused(tmp_path):
    with pytest.raises(TargetError, match="pass --repo_url"):
        resolve_target("", cwd=tmp_path)


def _record_in_process(url: str, name: str, tmp: str, seed: int) -> None:
    m = make_record(Path(tmp) / "m", f"exec-{name}", seed=seed)
    record_experiment(resolve_target(url), name, m, Path(tmp) / "w")


def test_two_runs_at_once_both_land_with_their_own_files(tmp_path, remote_target):
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_record_in_process, args=(remote_target, f"par{i}", str(tmp_path / f"p{i}"), i))
        for i in (1, 2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(exp_refs(remote_target)) == 2
    for i in (1, 2):
        ref = next(r for r in exp_refs(remote_target) if r.endswith(f"/par{i}"))
        clone = tmp_path / f"check{i}"
        git("clone", "--quiet", remote_target, str(clone))
        git("fetch", "--quiet", "origin", f"{ref}:{ref}", cwd=clone)
        assert f'"exec-par{i}"' in git("show", f"{ref}:results/run.json", cwd=clone)
        model = tmp_path / f"p{i}" / "m" / "model.pth"
        assert_experiment_in_remote(remote_target, f"par{i}", model.read_bytes(), tmp_path / f"v{i}")


def test_a_record_holding_a_credential_is_refused_and_nothing_is_pushed(tmp_path, local_target, monkeypatch):
    """A file of the record that holds the Studio token (or any credential the bridge sees) never reaches git."""
    monkeypatch.setenv("DVC_STUDIO_TOKEN", "studio-tok-91c3e7")
    m = make_record(tmp_path / "m", "exec-leak")
    (tmp_path / "notes.txt").write_text("token=studio-tok-91c3e7\n")
    m.git_files["results/notes.txt"] = tmp_path / "notes.txt"
    with pytest.raises(TargetError, match="results/notes.txt holds a credential"):
        record_experiment(resolve_target(str(local_target)), "leak", m, tmp_path / "w")
    assert git("for-each-ref", "refs/exps", cwd=local_target) == ""


def test_the_change_against_the_baseline_is_what_dvc_metrics_and_params_diff_print(tmp_path, local_target):
    """The bridge's change tables equal `dvc metrics diff --md` / `dvc params diff --md` run by a user."""
    from dvc_bridge.summary import change_tables, changes_markdown, summary_html

    target = resolve_target(str(local_target))
    first = record_experiment(target, "first", make_record(tmp_path / "m1", "exec-1", accuracy=0.95), tmp_path / "w1")
    m = make_record(tmp_path / "m2", "exec-2", seed=1, accuracy=0.97)
    m.documents["params.yaml"]["train"]["epochs"] = 5
    ref = record_experiment(target, "second", m, tmp_path / "w2", base_rev=first.branch)
    base = ref.baseline_rev[:8]
    tables = change_tables(tmp_path / "w2" / "repo", ref.baseline_rev, ref.commit, a_label=base, b_label="second")
    metrics, params = (t.markdown() for t in tables)
    assert metrics == dvc("metrics", "diff", base, "second", "--md", cwd=local_target).rstrip("\n")
    assert params == dvc("params", "diff", base, "second", "--md", cwd=local_target).rstrip("\n")
    assert "test.accuracy" in metrics and "0.95" in metrics and "0.97" in metrics and "0.02" in metrics
    assert "train.epochs" in params and "| 3 " in params and "| 5 " in params
    text = changes_markdown(tables, "second", base)
    assert f"dvc metrics diff {base} second --md\n| Path" in text
    page = summary_html(ref, changes=tables)
    assert "dvc metrics diff</code> prints them" in page and "train.epochs" in page


def _trials(path: Path, rows: list[tuple[float, int, float]]) -> None:
    lines = ["trial_id,lr,batch_size,status,epochs,val/accuracy,error"]
    lines += [f"t{i},{lr},{bs},completed,1,{acc}," for i, (lr, bs, acc) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def test_dvc_plots_diff_sets_two_searches_side_by_side(tmp_path, local_target):
    """trials.csv is a DVC plot, one scatter of the selecting metric per searched hyper-parameter."""
    import json

    from tasks.problem import load_problem
    from tasks.record import experiment

    digits = load_problem("digits")
    target = resolve_target(str(local_target))
    for name, rows in (("search-a", [(0.01, 32, 0.81), (0.1, 64, 0.9)]), ("search-b", [(0.05, 128, 0.93)])):
        m = make_record(tmp_path / name, f"exec-{name}")
        _trials(tmp_path / name / "trials.csv", rows)  # a search of lr and batch_size (make_record's has none)
        m.dvc_yaml = experiment.declarations(digits, experiment.searched_in(digits, tmp_path / name / "trials.csv"))
        record_experiment(target, name, m, tmp_path / f"w-{name}")
    plots = json.loads(dvc("plots", "diff", "search-a", "search-b", "--json", cwd=local_target))
    plots = plots["data"]
    assert {"tune-lr", "tune-batch_size"} <= set(plots) and "tune-momentum" not in plots  # momentum was not searched
    points = [(v["rev"], v["lr"], v["val/accuracy"]) for v in plots["tune-lr"][0]["content"]["data"]["values"]]
    assert sorted(points) == [("search-a", "0.01", "0.81"), ("search-a", "0.1", "0.9"), ("search-b", "0.05", "0.93")]
