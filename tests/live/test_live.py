"""Live metrics: rank-0 DVCLive mirrored to S3 while training runs, and posted to a Studio stand-in.

Real Ray Train (2 DDP workers), real DVCLive, a real S3 server on loopback, and a real HTTP
server on loopback standing in for DVC Studio's API (`DVC_STUDIO_URL`).
"""

from __future__ import annotations

import csv
import json
import threading
import time

import pytest
import ray
from studio_standin import StudioStandIn

from dvc_bridge.live import EpochLogger, LiveConfig, live_env
from tasks.problem import complete, load_problem
from tasks.training.settings import TrainSettings

EPOCHS = 4
TOKEN = "studio-token-for-tests"
EXP = "live-test"
BASELINE = "b" * 40
REPO = "https://git.example.invalid/team/experiments.git"


def _rows(tsv: str) -> list[dict]:
    return list(csv.DictReader(tsv.splitlines(), delimiter="\t"))


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, s3_endpoint):
    """One real training run with the mirror on S3 and Studio pointed at loopback; polls S3 while it runs."""
    import boto3
    import s3fs

    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.ray_glue.local import init_local_ray
    from tasks.ray_glue.storage import fsspec_options
    from tasks.ray_glue.train import run_train

    bucket = "live-metrics"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    studio = StudioStandIn()
    mirror = f"s3://{bucket}/runs/{EXP}"
    env = live_env(EXP, BASELINE, REPO, environ={"DVC_STUDIO_URL": studio.url, "UNRELATED": "x"})
    env["DVC_STUDIO_TOKEN"] = TOKEN
    tmp = tmp_path_factory.mktemp("live")
    init_local_ray()
    digits = load_problem("digits")
    data = make_splits(load_raw(parse_source(""), digits)[0], digits, seed=0)
    settings = TrainSettings(epochs=EPOCHS, num_workers=2)
    result: dict = {}

    def train():
        import os

        os.environ["FLYTE_AWS_ENDPOINT"] = s3_endpoint  # what a pod has; fsspec_options reads it
        live = LiveConfig(
            mirror_uri=mirror,
            storage_options=fsspec_options(mirror, credentials=False),
            env=env,
            repo_path="results/dvclive",
        )
        hp = complete(digits, {"lr": 0.1, "momentum": 0.8, "batch_size": 64})
        result["outcome"] = run_train(ray.put(data), "digits", hp, settings, tmp / "out", str(tmp / "ray"), live=live)

    thread = threading.Thread(target=train)
    thread.start()
    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    seen_while_running: list[dict] = []
    while thread.is_alive():
        fs.invalidate_cache()
        path = f"{bucket}/runs/{EXP}/plots/metrics/val/accuracy.tsv"
        if fs.exists(path):
            rows = _rows(fs.cat(path).decode())
            if rows and thread.is_alive():
                seen_while_running = rows
                break
        time.sleep(0.05)
    thread.join(timeout=600)
    studio.shutdown()
    fs.invalidate_cache()
    final = {p.split(f"runs/{EXP}/", 1)[1]: fs.cat(p).decode() for p in fs.find(f"{bucket}/runs/{EXP}")}
    return {"outcome": result["outcome"], "seen": seen_while_running, "mirror": final, "posts": studio.posts}


@pytest.mark.slow
def test_the_live_uri_holds_a_step_while_training_is_still_running(live_run):
    seen = live_run["seen"]
    assert seen, "no step reached the live URI before training ended"
    # Fewer rows than epochs: a mirror written only when training ends would show all of them at once.
    assert 1 <= len(seen) < EPOCHS
    assert 0 <= float(seen[0]["accuracy"]) <= 1


@pytest.mark.slow
def test_the_mirror_ends_as_the_final_dvclive_directory_one_row_per_epoch(live_run):
    outcome, mirror = live_run["outcome"], live_run["mirror"]
    local = {str(p.relative_to(outcome.live_dir)): p.read_text() for p in outcome.live_dir.rglob("*") if p.is_file()}
    assert mirror == local
    for name in ("val/accuracy", "val/loss", "train/loss", "lr", "epoch_time_s", "samples_per_s"):
        rows = _rows(mirror[f"plots/metrics/{name}.tsv"])
        assert [int(r["step"]) for r in rows] == list(range(EPOCHS)), name
    accuracies = [float(r["accuracy"]) for r in _rows(mirror["plots/metrics/val/accuracy.tsv"])]
    assert accuracies == pytest.approx([m["val/accuracy"] for m in outcome.history])
    summary = json.loads(mirror["metrics.json"])
    assert summary["val"]["accuracy"] == pytest.approx(outcome.final["val/accuracy"])
    assert summary["test"]["accuracy"] == pytest.approx(outcome.test["test/accuracy"])  # once, at the end
    assert not any(k.startswith("plots/metrics/test") for k in mirror)


@pytest.mark.slow
def test_studio_receives_start_and_data_with_the_logged_metrics_and_the_experiments_paths(live_run):
    posts, history = live_run["posts"], live_run["outcome"].history
    assert posts, "the Studio stand-in received nothing"
    assert {p["path"] for p in posts} == {"/api/live"}
    assert {p["auth"] for p in posts} == {f"token {TOKEN}"}
    bodies = [p["body"] for p in posts]
    types = [b["type"] for b in bodies]
    # `done` is the bridge's, with the pushed commit (tests/live/test_studio_like_dvc.py).
    assert types[0] == "start" and types.count("start") == 1 and set(types[1:]) == {"data"}, types
    for b in bodies:  # the identity the bridge saves the experiment under
        assert (b["name"], b["baseline_sha"], b["repo_url"], b["client"]) == (EXP, BASELINE, REPO, "dvclive")
    data = [b for b in bodies if b["type"] == "data"]
    # The client may split one step into several posts (metrics, then plot chunks).
    assert sorted({b["step"] for b in data}) == list(range(EPOCHS))
    assert {k for b in data for k in b.get("plots", {})} >= {"results/dvclive/plots/metrics/val/accuracy.tsv"}
    assert all(k.startswith("results/dvclive/") for b in data for k in [*b.get("plots", {}), *b.get("metrics", {})])
    sent = [
        pt
        for b in data
        for k, v in b.get("plots", {}).items()
        if k.endswith("metrics/val/accuracy.tsv")
        for pt in v["data"]
    ]
    assert [int(pt["step"]) for pt in sent] == list(range(EPOCHS))  # each point exactly once
    assert [pt["accuracy"] for pt in sent] == pytest.approx([m["val/accuracy"] for m in history])
    last_metrics = next(iter(next(b for b in reversed(data) if b.get("metrics"))["metrics"].values()))["data"]
    assert last_metrics["val"]["accuracy"] == pytest.approx(history[-1]["val/accuracy"])


def test_only_dvc_and_studio_variables_reach_rank_0_with_the_experiment_identity():
    env = live_env(
        "e1",
        "c" * 40,
        "https://h/r.git",
        environ={
            "DVC_STUDIO_TOKEN": "t",
            "DVC_STUDIO_URL": "http://s",
            "DVCLIVE_LOGLEVEL": "DEBUG",
            "AWS_SECRET_ACCESS_KEY": "no",
            "GIT_TOKEN": "no",
            "PATH": "/bin",
        },
    )
    assert env == {
        "DVC_STUDIO_TOKEN": "t",
        "DVC_STUDIO_URL": "http://s",
        "DVCLIVE_LOGLEVEL": "DEBUG",
        "DVC_EXP_NAME": "e1",
        "DVC_EXP_BASELINE_REV": "c" * 40,
        "DVC_STUDIO_REPO_URL": "https://h/r.git",
    }
    assert (
        live_env("e1", "", "https://h/r.git", environ={"DVC_STUDIO_REPO_URL": "https://studio/own"})[
            "DVC_STUDIO_REPO_URL"
        ]
        == "https://studio/own"
    )
    assert "tok-3f9a" not in repr(LiveConfig(env={"DVC_STUDIO_TOKEN": "tok-3f9a"}))


@pytest.mark.parametrize("done", [1, 2])
def test_a_resumed_logger_continues_at_the_next_step(tmp_path, done):
    """What a restart from a checkpoint does: the restored directory, then the remaining epochs."""
    first = EpochLogger(tmp_path / "a", resume=False)
    for epoch in range(done):
        first.log_epoch({"accuracy": epoch / 10})
    # The checkpoint holds the directory as it was after `done` epochs; a new worker resumes from it.
    resumed = EpochLogger(tmp_path / "a", resume=True, config=LiveConfig(mirror_uri=str(tmp_path / "mirror")))
    assert resumed.step == done
    for epoch in range(done, 3):
        resumed.log_epoch({"accuracy": epoch / 10})
    resumed.close()
    for root in (tmp_path / "a", tmp_path / "mirror"):
        rows = _rows((root / "plots/metrics/accuracy.tsv").read_text())
        assert [(int(r["step"]), float(r["accuracy"])) for r in rows] == [(0, 0.0), (1, 0.1), (2, 0.2)]


def test_a_mirror_that_cannot_be_written_warns_once_and_training_goes_on(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    logger = EpochLogger(tmp_path / "d", resume=False, config=LiveConfig(mirror_uri=str(blocker / "sub")))
    logger.log_epoch({"accuracy": 0.5})
    logger.log_epoch({"accuracy": 0.6})
    assert len(_rows((tmp_path / "d/plots/metrics/accuracy.tsv").read_text())) == 2
    assert len([r for r in caplog.records if "could not be copied" in r.getMessage()]) == 1


def test_live_config_mirrors_under_the_raw_output_by_default_and_under_live_uri_per_experiment(monkeypatch):
    from tasks.flyte.contracts import RunTarget
    from tasks.flyte.tasks import live_config

    monkeypatch.setenv("DVC_STUDIO_TOKEN", "tok-77aa")
    monkeypatch.setenv("FLYTE_AWS_ENDPOINT", "http://127.0.0.1:9")
    run = RunTarget(repo="https://h/r.git", exp_name="exp-1", baseline_rev="d" * 40)
    default = live_config(run, "", "s3://flyte-bucket/raw/ab12/")
    assert default.mirror_uri == "s3://flyte-bucket/raw/ab12/dvclive"
    assert default.storage_options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9"}}
    assert default.env["DVC_STUDIO_TOKEN"] == "tok-77aa" and default.env["DVC_EXP_NAME"] == "exp-1"
    chosen = live_config(run, "file:///srv/live/", "/tmp/raw")
    assert chosen.mirror_uri == "file:///srv/live/exp-1" and chosen.storage_options == {}


def test_the_experiment_summary_says_how_to_fetch_and_apply():
    from dvc_bridge.bridge import ExperimentRef
    from dvc_bridge.summary import fetch_commands, summary_html

    ref = ExperimentRef(
        name="e<1>",
        commit="c" * 40,
        baseline_rev="b" * 40,
        git_ref="refs/exps/x",
        repo="https://h/r.git",
        data_pushed=True,
        ref_pushed=True,
        metric="test/accuracy",
        score=0.95,
        decision="recorded",
    )
    assert fetch_commands(ref)[1] == "dvc exp pull origin e<1>"
    page = summary_html(ref)
    assert "e&lt;1&gt;" in page and "e<1>" not in page and "0.9500" in page
    local = ExperimentRef(**{**ref.__dict__, "repo": "/srv/repo"})
    assert fetch_commands(local)[0] == "cd /srv/repo"


def test_studio_gets_one_start_and_each_point_once_across_a_restart_under_the_experiments_paths(tmp_path, monkeypatch):
    """What rank 0 posts when its worker restarts from a checkpoint after step 1: no second start, no point again,
    every path the one the directory has in the experiment (results/dvclive/...), never the worker's temp dir."""
    studio = StudioStandIn()
    env = {**live_env(EXP, BASELINE, REPO, environ={"DVC_STUDIO_URL": studio.url}), "DVC_STUDIO_TOKEN": TOKEN}
    for k in env:
        monkeypatch.setenv(k, "")  # restored after the test: EpochLogger sets them in its (worker) process
    config = LiveConfig(env=env, repo_path="results/dvclive")
    first = EpochLogger(tmp_path / "w0" / "dvclive", resume=False, config=config)
    for epoch in range(2):
        first.log_epoch({"val/accuracy": epoch / 10, "train/loss": 1 - epoch / 10})
    first.studio.flush()  # the checkpoint after step 1 holds what was posted
    restored = tmp_path / "w1" / "dvclive"  # another worker, another temp dir
    import shutil

    shutil.copytree(tmp_path / "w0" / "dvclive", restored)
    second = EpochLogger(restored, resume=True, config=config)
    second.log_epoch({"val/accuracy": 0.2, "train/loss": 0.8})
    second.log_summary({"test/accuracy": 0.25})
    second.close()
    studio.shutdown()

    bodies = [p["body"] for p in studio.posts]
    types = [b["type"] for b in bodies]
    assert types.count("start") == 1 and types[0] == "start" and set(types[1:]) == {"data"}, types
    assert {(b["name"], b["baseline_sha"], b["repo_url"]) for b in bodies} == {(EXP, BASELINE, REPO)}
    data = [b for b in bodies if b["type"] == "data"]  # the client posts a step's metrics, then its plots
    steps = [b["step"] for b in data]
    assert steps == sorted(steps) and set(steps) == {0, 1, 2}
    assert {k for b in data for k in b.get("plots", {})} == {
        "results/dvclive/plots/metrics/val/accuracy.tsv",
        "results/dvclive/plots/metrics/train/loss.tsv",
    }
    assert {k for b in data for k in b.get("metrics", {})} == {"results/dvclive/metrics.json"}
    points = [
        (pt["step"], pt["accuracy"])
        for b in data
        for pt in b.get("plots", {}).get("results/dvclive/plots/metrics/val/accuracy.tsv", {}).get("data", [])
    ]
    assert points == [(0, 0.0), (1, 0.1), (2, 0.2)]  # each once, across the restart
    last = next(b for b in reversed(data) if "metrics" in b)  # the final summary, as DVCLive's end() posts it
    assert last["metrics"]["results/dvclive/metrics.json"]["data"]["test"]["accuracy"] == 0.25
    assert not any(str(tmp_path) in json.dumps(b) for b in bodies)
