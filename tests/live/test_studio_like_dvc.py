"""One Flyte run on a DVC-tracked dataset, held against DVC itself (one workflow run serves every point below):

* Studio: one loopback Studio stand-in (DVC_STUDIO_URL, DVC_STUDIO_TOKEN). The reference is a real
  `dvc exp run` of a plain DVCLive script (what DVCLive's docs show) in a clone of the target repo, then
  `dvc exp push`; then the workflow, in process, against the same target and stand-in. The two event
  sequences must agree on the event order, names, baseline, repo URL, paths, steps (each point once) and
  the final rev.
* The change against the baseline in the bridge's log and Deck; record_trials in `dvc exp show`.
* DVC reproduces what Flyte made: after `dvc exp apply`, `dvc exp run` skips the unchanged search,
  retrains on the same data version, and Studio gets DVC's start/done and rank 0's data under the
  experiment's paths.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from studio_standin import StudioStandIn
from support import PROJECT_ROOT, dvc, git

from tasks.training.settings import TrainSettings, TuneSettings

TOKEN = "studio-token-like-dvc"
EPOCHS = 2
# The names the workflow's rank 0 logs per epoch (tasks/ray_glue/train.py), logged by the reference script too.
PER_EPOCH = ["train/loss", "val/loss", "val/accuracy", "lr", "epoch_time_s", "samples_per_s"]

SCRIPT = textwrap.dedent(
    f"""
    from dvclive import Live

    with Live("results/dvclive", dvcyaml=None) as live:
        for step in range({EPOCHS}):
            for i, name in enumerate({PER_EPOCH!r}):
                live.log_metric(name, 0.5 + step / 10 + i / 100)
            live.next_step()
        live.log_metric("test/loss", 0.4, plot=False)
        live.log_metric("test/accuracy", 0.9, plot=False)
    """
)

DVC_YAML = textwrap.dedent(
    """
    stages:
      train:
        cmd: python live_script.py
        deps: [live_script.py]
        outs:
        - results/dvclive:
            cache: false
    metrics: [results/dvclive/metrics.json]
    plots:
    - results/dvclive/plots/metrics:
        x: step
    """
)


def _events(posts: list[dict], name: str) -> list[dict]:
    """The experiment's /api/live bodies and its refs notifications (/webhook/dvc), in arrival order."""
    out = []
    for p in posts:
        body = p["body"]
        if p["path"] == "/api/live" and body["name"] == name:
            out.append(body)
        elif p["path"] == "/webhook/dvc" and any(r.endswith("/" + name) for r in body["refs"].get("pushed", [])):
            out.append({**body, "type": "refs"})
    return out


def _summary(events: list[dict]) -> dict:
    """What Studio joins on and shows, from one experiment's events."""
    live = [e for e in events if e["type"] != "refs"]
    order = [t for i, t in enumerate(e["type"] for e in events) if i == 0 or t != events[i - 1]["type"]]
    data = [e for e in live if e["type"] == "data"]
    points: dict[str, list[int]] = {}
    for e in data:
        for path, plot in e.get("plots", {}).items():
            points.setdefault(path, []).extend(int(pt["step"]) for pt in plot["data"])
    done = next(e for e in live if e["type"] == "done")
    refs = next(e for e in events if e["type"] == "refs")
    return {
        "order": order,
        "names": {e["name"] for e in live},
        "baselines": {e["baseline_sha"] for e in live},
        "repo_urls": {e["repo_url"] for e in live} | {refs["repo_url"]},
        "starts": sum(e["type"] == "start" for e in live),
        "steps": sorted({e["step"] for e in data}),
        "metrics_paths": {p for e in data for p in e.get("metrics", {})},
        "points": points,
        "done_rev": done.get("experiment_rev"),
        "done_metrics": set(done.get("metrics", {})),
        "pushed": refs["refs"]["pushed"],
    }


@pytest.mark.slow
def test_a_flyte_run_is_the_experiment_dvc_and_studio_would_make(tmp_path, local_target, monkeypatch, capfd):
    import time

    from dvc.api import exp_show
    from flytekit import FlyteContextManager

    from workflows.tune_train import tune_train_wf

    studio = StudioStandIn()
    monkeypatch.setenv("DVC_STUDIO_URL", studio.url)
    monkeypatch.setenv("DVC_STUDIO_TOKEN", TOKEN)
    target = str(local_target)
    rng = np.random.default_rng(0)
    np.savez(
        local_target / "digits.npz",
        x=rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8),
        y=np.tile(np.arange(10), 20),
    )
    dvc("add", "digits.npz", cwd=local_target)
    git("add", "digits.npz.dvc", ".gitignore", cwd=local_target)
    git("commit", "--quiet", "-m", "data v1", cwd=local_target)
    baseline = git("rev-parse", "HEAD", cwd=local_target)
    dvc_env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    dvc_exe = str(Path(sys.executable).parent / "dvc")
    git("config", "user.name", "tester", cwd=local_target)  # DVC's own git client reads no GIT_CONFIG_GLOBAL
    git("config", "user.email", "tester@example.invalid", cwd=local_target)

    # The reference: DVC's own `dvc exp run` with DVCLive, then `dvc exp push`.
    ref_repo = tmp_path / "reference"
    git("clone", "--quiet", target, str(ref_repo))
    git("config", "user.name", "tester", cwd=ref_repo)
    git("config", "user.email", "tester@example.invalid", cwd=ref_repo)
    (ref_repo / "live_script.py").write_text(SCRIPT)
    (ref_repo / "dvc.yaml").write_text(DVC_YAML)
    run = subprocess.run(
        [dvc_exe, "exp", "run", "-n", "reference", "train"],
        cwd=ref_repo,
        env=dvc_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    dvc("exp", "push", "--no-cache", "origin", "reference", cwd=ref_repo)

    # The Flyte run, recorded in the same target, on the DVC-tracked dataset.
    started = time.time()
    capfd.readouterr()
    out = tune_train_wf(
        dataset=f"dvc://digits.npz?repo={target}",
        repo_url=target,
        exp_name="flyte-studio",
        gate=0.0,
        tune=TuneSettings(num_samples=1, max_epochs=1, space={"batch_size": 16}, record_trials=True),
        train=TrainSettings(epochs=EPOCHS, num_workers=1),
    )
    log = capfd.readouterr().out

    refs = {
        r.rsplit("/", 1)[1]: r
        for r in git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=local_target).split()
    }
    shas = {r: git("rev-parse", r, cwd=local_target) for r in refs.values()}
    dvc_side, flyte_side = _summary(_events(studio.posts, "reference")), _summary(_events(studio.posts, "flyte-studio"))
    trial_names = [n for n in refs if n.startswith("flyte-studio-")]
    assert len(trial_names) == 1, refs  # record_trials: the one trial beside the run
    for side, name in ((dvc_side, "reference"), (flyte_side, "flyte-studio")):
        assert side["order"] == ["start", "data", "done", "refs"], (name, side["order"])
        assert side["starts"] == 1
        assert side["names"] == {name}
        assert side["baselines"] == {baseline}
        assert side["repo_urls"] == {target}
        assert side["steps"] == list(range(EPOCHS)), side["steps"]
        assert side["metrics_paths"] == {"results/dvclive/metrics.json"}
        assert side["points"] and all(steps == list(range(EPOCHS)) for steps in side["points"].values()), side["points"]
        assert side["pushed"] == [*(refs[t] for t in trial_names if name == "flyte-studio"), refs[name]]
        assert side["done_rev"] == shas[refs[name]]
        assert "results/dvclive/metrics.json" in side["done_metrics"]
    assert (
        set(flyte_side["points"])
        == set(dvc_side["points"])
        == {f"results/dvclive/plots/metrics/{n}.tsv" for n in PER_EPOCH}
    )
    assert out.experiment.commit == flyte_side["done_rev"]

    # The bridge's log and the experiment Deck show the change as `dvc metrics diff` / `dvc params diff` print it.
    base = baseline[:8]
    assert f"dvc metrics diff {base} flyte-studio --md\n| Path" in log, log[-3000:]
    assert f"dvc params diff {base} flyte-studio --md\n| Path" in log
    assert "| results/dvclive/metrics.json | test.accuracy" in log and "| params.yaml" in log
    sandbox = Path(FlyteContextManager.current_context().file_access.local_sandbox_dir)
    decks = "".join(d.read_text() for d in sandbox.rglob("deck.html") if d.stat().st_mtime >= started)
    assert "<code>dvc metrics diff</code> prints them" in decks and "test.accuracy" in decks

    # record_trials: `dvc exp show` lists the trial beside the run, with its hyper-parameters in the same
    # columns as the run's tuned ones, its own validation history and no test score.
    rows = {
        r["Experiment"]: {k.rsplit(":", 1)[-1]: v for k, v in r.items()}
        for r in exp_show(repo=target)
        if r.get("Experiment")
    }
    trial, flyte_row = rows[trial_names[0]], rows["flyte-studio"]
    assert (
        trial["batch_size"] == flyte_row["batch_size"] == 16 and trial["lr"] == flyte_row["lr"]
    )  # one trial: the best
    assert 0 <= trial["val.accuracy"] <= 1 and trial.get("test.accuracy") in (None, "None", "-", "")
    trial_ref = refs[trial_names[0]]
    assert (
        len(git("show", f"{trial_ref}:results/dvclive/plots/metrics/val/accuracy.tsv", cwd=local_target).splitlines())
        == 2
    )
    assert git("show", f"{trial_ref}:results/run.json", cwd=local_target).count('"trial_of": "flyte-studio"') == 1

    # DVC reproduces what Flyte made: apply, then `dvc exp run` skips the search and retrains on the same data.
    dvc("exp", "apply", "flyte-studio", cwd=local_target)
    # The target has no git remote DVC could take Studio's repo URL from: name it, as Studio knows the repo.
    rerun = subprocess.run(
        [dvc_exe, "exp", "run", "-S", f"train.epochs={EPOCHS + 1}", "-n", "rerun"],
        cwd=local_target,
        env={**dvc_env, "DVC_STUDIO_REPO_URL": target},
        capture_output=True,
        text=True,
        timeout=600,
    )
    studio.shutdown()
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "Stage 'tune' didn't change, skipping" in rerun.stdout and "Running stage 'train'" in rerun.stdout
    assert "the version params.yaml records" in rerun.stdout, rerun.stdout[-2000:]  # same data, checked by content
    row = next(
        {k.rsplit(":", 1)[-1]: v for k, v in r.items()} for r in exp_show(repo=target) if r.get("Experiment") == "rerun"
    )
    assert row["data.source"] == f"dvc://digits.npz?repo={target}&rev={baseline}" and row["train.epochs"] == EPOCHS + 1
    rerun_commit = git(
        "rev-parse",
        next(
            r
            for r in git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=local_target).split()
            if r.endswith("/rerun")
        ),
        cwd=local_target,
    )
    # Studio: DVC's own start and done (client dvc), rank 0's data under the experiment's paths, each point once.
    bodies = [p["body"] for p in studio.posts if p["path"] == "/api/live" and p["body"]["name"] == "rerun"]
    assert [(b["type"], b["client"]) for b in bodies if b["type"] != "data"] == [("start", "dvc"), ("done", "dvc")]
    assert bodies[-1]["experiment_rev"] == rerun_commit
    data = [b for b in bodies if b["type"] == "data"]
    assert data and {b["client"] for b in data} == {"dvclive"} and {b["step"] for b in data} == set(range(EPOCHS + 1))
    assert all(k.startswith("results/dvclive/") for b in data for k in [*b.get("plots", {}), *b.get("metrics", {})])
    steps = [
        pt["step"]
        for b in data
        for pt in b.get("plots", {}).get("results/dvclive/plots/metrics/val/accuracy.tsv", {}).get("data", [])
    ]
    assert steps == list(range(EPOCHS + 1))
    assert {p["auth"] for p in studio.posts} == {f"token {TOKEN}"}
