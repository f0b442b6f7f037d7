"""DVC Studio sees a Flyte run as it sees `dvc exp run` + DVCLive + `dvc exp push`: held against DVC itself.

One loopback Studio stand-in (DVC_STUDIO_URL, DVC_STUDIO_TOKEN). The reference: a real `dvc exp run` of a
plain DVCLive script (what DVCLive's docs show) in a clone of the target repo, then `dvc exp push`. Then the
workflow, in process, against the same target and stand-in. The two event sequences must agree on the
event order, names, baseline, repo URL, paths, steps (each point once) and the final rev.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studio_standin import StudioStandIn
from support import dvc, exp_refs, git
from tasks.settings import TrainSettings, TuneSettings

TOKEN = "studio-token-like-dvc"
EPOCHS = 2
# The names the workflow's rank 0 logs per epoch (tasks/ray_train.py), logged by the reference script too.
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
def test_studio_sees_the_flyte_run_as_it_sees_dvc_exp_run_and_exp_push(tmp_path, remote_target, monkeypatch, capfd):
    import time

    from flytekit import FlyteContextManager

    from workflows.tune_train import tune_train_wf

    studio = StudioStandIn()
    monkeypatch.setenv("DVC_STUDIO_URL", studio.url)
    monkeypatch.setenv("DVC_STUDIO_TOKEN", TOKEN)
    baseline = git("ls-remote", remote_target, "refs/heads/main").split()[0]

    # The reference: DVC's own `dvc exp run` with DVCLive, then `dvc exp push`.
    ref_repo = tmp_path / "reference"
    git("clone", "--quiet", remote_target, str(ref_repo))
    git("config", "user.name", "tester", cwd=ref_repo)  # DVC's own git client reads no GIT_CONFIG_GLOBAL
    git("config", "user.email", "tester@example.invalid", cwd=ref_repo)
    (ref_repo / "live_script.py").write_text(SCRIPT)
    (ref_repo / "dvc.yaml").write_text(DVC_YAML)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run([str(Path(sys.executable).parent / "dvc"), "exp", "run", "-n", "reference"],
                         cwd=ref_repo, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    dvc("exp", "push", "origin", "reference", cwd=ref_repo)

    # The Flyte run, recorded in the same target.
    started = time.time()
    capfd.readouterr()
    out = tune_train_wf(repo_url=remote_target, exp_name="flyte-studio", gate=0.0,
                        tune=TuneSettings(num_samples=1, max_epochs=1, space={"batch_size": 64}, record_trials=True),
                        train=TrainSettings(epochs=EPOCHS, num_workers=1))
    studio.shutdown()
    assert {p["auth"] for p in studio.posts} == {f"token {TOKEN}"}

    remote_refs = {r.rsplit("/", 1)[1]: r for r in exp_refs(remote_target)}
    shas = {r: git("ls-remote", remote_target, r).split()[0] for r in remote_refs.values()}
    dvc_side, flyte_side = _summary(_events(studio.posts, "reference")), _summary(_events(studio.posts, "flyte-studio"))
    trial_names = [n for n in remote_refs if n.startswith("flyte-studio-")]
    assert len(trial_names) == 1, remote_refs  # record_trials: the one trial beside the run
    for side, name in ((dvc_side, "reference"), (flyte_side, "flyte-studio")):
        assert side["order"] == ["start", "data", "done", "refs"], (name, side["order"])
        assert side["starts"] == 1
        assert side["names"] == {name}
        assert side["baselines"] == {baseline}
        assert side["repo_urls"] == {remote_target}
        assert side["steps"] == list(range(EPOCHS)), side["steps"]
        assert side["metrics_paths"] == {"results/dvclive/metrics.json"}
        assert side["points"] and all(steps == list(range(EPOCHS)) for steps in side["points"].values()), side["points"]
        assert side["pushed"] == [*(remote_refs[t] for t in trial_names if name == "flyte-studio"), remote_refs[name]]
        assert side["done_rev"] == shas[remote_refs[name]]
        assert "results/dvclive/metrics.json" in side["done_metrics"]
    assert set(flyte_side["points"]) == set(dvc_side["points"]) == {
        f"results/dvclive/plots/metrics/{n}.tsv" for n in PER_EPOCH}
    assert out.experiment.commit == flyte_side["done_rev"]

    # The bridge's log and the experiment Deck show the change as `dvc metrics diff` / `dvc params diff` print it.
    base = baseline[:8]
    log = capfd.readouterr().out
    assert f"dvc metrics diff {base} flyte-studio --md\n| Path" in log, log[-3000:]
    assert f"dvc params diff {base} flyte-studio --md\n| Path" in log
    assert "| results/dvclive/metrics.json | test.accuracy" in log and "| params.yaml" in log
    sandbox = Path(FlyteContextManager.current_context().file_access.local_sandbox_dir)
    decks = "".join(d.read_text() for d in sandbox.rglob("deck.html") if d.stat().st_mtime >= started)
    assert "<code>dvc metrics diff</code> prints them" in decks and "test.accuracy" in decks

    # record_trials: `dvc exp show` lists the trial beside the run, with its hyper-parameters in the same
    # columns as the run's tuned ones, its own validation history and no test score.
    from dvc.api import exp_show

    clone = tmp_path / "check"
    git("clone", "--quiet", remote_target, str(clone))
    dvc("exp", "pull", "--no-cache", "origin", trial_names[0], cwd=clone)
    dvc("exp", "pull", "--no-cache", "origin", "flyte-studio", cwd=clone)
    rows = {r["Experiment"]: {k.rsplit(":", 1)[-1]: v for k, v in r.items()} for r in exp_show(repo=str(clone))
            if r.get("Experiment")}
    trial, run = rows[trial_names[0]], rows["flyte-studio"]
    assert trial["batch_size"] == run["batch_size"] == 64 and trial["lr"] == run["lr"]  # the one trial is the best
    assert 0 <= trial["val.accuracy"] <= 1 and trial.get("test.accuracy") in (None, "None", "-", "")
    git("fetch", "--quiet", "origin", f"{remote_refs[trial_names[0]]}:refs/check/trial", cwd=clone)
    tsv = git("show", "refs/check/trial:results/dvclive/plots/metrics/val/accuracy.tsv", cwd=clone).splitlines()
    assert len(tsv) == 2  # header + the trial's one epoch
    assert git("show", "refs/check/trial:results/run.json", cwd=clone).count('"trial_of": "flyte-studio"') == 1
