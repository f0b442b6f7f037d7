"""The model after the run: one real workflow run registers digits-model in a bare git remote with an S3 DVC
remote on loopback; `gto show` lists it; predict_wf scores data with it by stage and by version; bad input
is refused before any Ray cluster starts."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import PROJECT_ROOT, bare_remote, git, make_record

from dvc_bridge.bridge import record_experiment, resolve_target
from dvc_bridge.errors import RegistryError

BIN = Path(sys.executable).parent
ARTIFACT = "digits-model"


def pyflyte(workflow: str, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(BIN / "pyflyte"), "run", str(PROJECT_ROOT / workflow), name, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def registered(tmp_path_factory, s3_endpoint):
    """One tune_train_wf run (smoke size) committed to a bare git remote whose DVC remote is S3 on loopback."""
    import boto3

    from tasks.scaffold import scaffold

    tmp = tmp_path_factory.mktemp("registered")
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    scaffold(tmp / "seed", remote=f"s3://{bucket}/dvc", endpoint=s3_endpoint)
    url = bare_remote(tmp / "seed", tmp / "remote.git")
    pyflyte(
        "workflows/tune_train.py",
        "tune_train_wf",
        "--repo_url",
        url,
        "--exp_name",
        "registered",
        "--gate",
        "0.5",
        "--tune",
        '{"num_samples": 2, "max_epochs": 1, "space": {"batch_size": 64}}',
        "--train",
        '{"epochs": 2, "num_workers": 2}',
        cwd=tmp,
    )
    clone = tmp / "clone"
    git("clone", "--quiet", url, str(clone))
    git("fetch", "--quiet", "--tags", "origin", cwd=clone)
    run = json.loads(git("show", f"{ARTIFACT}@v0.1.0:results/run.json", cwd=clone))
    return {"url": url, "clone": clone, "tmp": tmp, "run": run}


def predict(registered, model: str, *args: str) -> tuple[pd.DataFrame, dict]:
    proc = pyflyte(
        "workflows/predict.py",
        "predict_wf",
        "--model",
        model,
        "--repo_url",
        registered["url"],
        *args,
        cwd=registered["tmp"],
    )
    path = re.search(r"predictions=(\S+\.parquet)", proc.stdout)
    assert path, proc.stdout[-3000:]
    metrics = json.loads(re.search(r"metrics=(\{[^}]*\})", proc.stdout).group(1).replace("'", '"'))
    return pd.read_parquet(path.group(1)), metrics


@pytest.mark.slow
def test_gto_show_lists_the_run_as_a_version_in_staging(registered):
    out = subprocess.run(
        [str(BIN / "gto"), "show", ARTIFACT, "--json"],
        cwd=registered["clone"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (version,) = json.loads(out)
    assert version["version"] == "v0.1.0" and [s["stage"] for s in version["stages"]] == ["staging"]
    assert git("rev-parse", f"{ARTIFACT}@v0.1.0^{{commit}}", cwd=registered["clone"]) == version["commit_hexsha"]
    assert registered["run"]["test"]["test/accuracy"] > 0.5


@pytest.mark.slow
def test_predictions_by_version_on_the_test_split_equal_the_experiments_test_score(registered):
    """The experiment's own test split (same data, seed and split rule as prepare_data), scored by version."""
    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import load_problem

    problem = load_problem("digits")
    splits = make_splits(load_raw(parse_source(""), problem)[0], problem, seed=0)
    test = registered["tmp"] / "test.npz"
    np.savez(test, x=splits.x_test, y=splits.y_test)
    frame, metrics = predict(registered, f"{ARTIFACT}@v0.1.0", "--dataset", str(test))
    assert list(frame["row"]) == list(range(len(splits.y_test)))
    accuracy = float((frame["prediction"] == frame["target"]).mean())
    assert accuracy == pytest.approx(registered["run"]["test"]["test/accuracy"], abs=1e-6)
    assert metrics["data/accuracy"] == pytest.approx(accuracy)


@pytest.mark.slow
def test_predictions_by_stage_on_the_embedded_digits_match_the_test_score_within_sampling_error(registered):
    frame, metrics = predict(registered, f"{ARTIFACT}#staging")
    assert len(frame) == 5000 and set(frame.columns) == {"row", "prediction", "confidence", "target"}
    assert frame["confidence"].between(0, 1).all()
    p = registered["run"]["test"]["test/accuracy"]
    sigma = math.sqrt(p * (1 - p) / 500)  # the test score's standard error (500 test samples)
    assert abs(metrics["data/accuracy"] - p) <= 4 * sigma + 1e-9, (metrics, p)


@pytest.mark.slow
def test_parquet_shards_are_streamed_into_a_directory_of_parquet_each_row_once(registered):
    """The embedded digits as 3 Parquet shards: scored by Ray Data, written as Parquet parts by the cluster, every
    row once (its file and row hash), the metrics over all of them; the same images as the embedded run."""
    import pyarrow.parquet as pq

    from tasks.data.shard_writer import write_shards
    from tasks.problem import load_problem

    shards = registered["tmp"] / "shards"
    write_shards(load_problem("digits"), shards, 3)
    proc = pyflyte(
        "workflows/predict.py",
        "predict_wf",
        "--model",
        f"{ARTIFACT}#staging",
        "--repo_url",
        registered["url"],
        "--dataset",
        str(shards),
        "--batch_size",
        "512",
        cwd=registered["tmp"],
    )
    parts = Path(re.search(r"parts=([^,)\s]+)", proc.stdout).group(1))
    index = pd.read_parquet(re.search(r"predictions=(\S+\.parquet)", proc.stdout).group(1))
    metrics = json.loads(re.search(r"metrics=(\{[^}]*\})", proc.stdout).group(1).replace("'", '"'))
    frame = pq.read_table(parts).to_pandas()
    assert parts.is_dir() and all(p.suffix == ".parquet" for p in parts.rglob("*") if p.is_file())
    assert list(index["rows"]) == [1666, 1667, 1667] and "n=5000" in proc.stdout and len(frame) == 5000
    assert not frame.duplicated(["file", "row_hash"]).any()
    assert list(frame.groupby("file").size()) == list(index["rows"])
    assert metrics["data/accuracy"] == pytest.approx(float((frame["prediction"] == frame["target"]).mean()))
    p = registered["run"]["test"]["test/accuracy"]
    assert abs(metrics["data/accuracy"] - p) <= 4 * math.sqrt(p * (1 - p) / 500) + 1e-9, (metrics, p)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, message",
    [
        (f"{ARTIFACT}#prod", r"no such stage .* versions v0\.1\.0, stages staging -> v0\.1\.0"),
        (f"{ARTIFACT}@v9.0.0", r"no such version .* versions v0\.1\.0"),
        ("iris-model#staging", r"no such artifact .* digits-model: versions v0\.1\.0"),
        ("digits-model", r"is not a registered model's name: give '<artifact>#<stage>'"),
    ],
)
def test_a_model_that_does_not_exist_is_refused_listing_what_does(registered, model, message):
    from workflows.predict import predict_wf

    with pytest.raises(Exception, match=message):
        predict_wf(model=model, repo_url=registered["url"])


@pytest.mark.slow
def test_data_that_does_not_fit_the_models_schema_is_refused_before_any_cluster(registered):
    import ray

    from workflows.predict import predict_wf

    ray.shutdown()  # the module's training run leaves its local Ray up; this refusal must start none
    bad = registered["tmp"] / "bad.npz"
    np.savez(bad, x=np.zeros((200, 5), dtype=np.float32), y=np.zeros(200))
    with pytest.raises(Exception, match=r"bad\.npz.*x has shape \(200, 5\)"):
        predict_wf(model=f"{ARTIFACT}#staging", repo_url=registered["url"], dataset=str(bad))
    assert not ray.is_initialized()


def test_a_model_whose_problem_cannot_be_imported_is_refused(tmp_path, local_target):
    """Registered by the bridge (no Ray) with a problem this process cannot import."""
    from tasks.flyte.predict import resolve_model

    m = make_record(tmp_path / "m", "exec-gone")
    m.documents["params.yaml"]["problem"] = "team_gone.models:PROBLEM"
    record_experiment(resolve_target(str(local_target)), "gone", m, tmp_path / "w")
    with pytest.raises(RegistryError, match=r"problem 'team_gone.models:PROBLEM', which cannot be imported here"):
        resolve_model(model=f"{ARTIFACT}#staging", repo_url=str(local_target))
    with pytest.raises(RegistryError, match="not a registered model's name"):
        resolve_model(model=f"{ARTIFACT}@latest", repo_url=str(local_target))


def test_a_model_registered_in_a_local_repo_without_a_dvc_remote_resolves_from_its_cache(tmp_path, local_target):
    """`make run` commits to the repo it runs from, which has no DVC remote: the model comes from its DVC cache."""
    from tasks.flyte.predict import resolve_model

    m = make_record(tmp_path / "m", "exec-local")
    record_experiment(resolve_target(str(local_target)), "local", m, tmp_path / "w")
    ref = resolve_model(model=f"{ARTIFACT}#staging", repo_url=str(local_target))
    assert (ref.version, ref.problem) == ("v0.1.0", "digits")
    assert Path(ref.file.download()).read_bytes() == (tmp_path / "m" / "model.pth").read_bytes()


def test_the_nightly_scoring_plan_takes_a_registered_model_and_the_newest_data():
    from workflows.launch_plans import LaunchPlanConfigError, predict_launch_plan

    lp = predict_launch_plan("15 5 * * *", "digits-model#prod", "s3://b/new.npz", "https://g/x.git", name="t_predict")
    assert lp.schedule.cron_schedule.schedule == "15 5 * * *"
    fixed = {k: v.scalar.primitive.string_value for k, v in lp.fixed_inputs.literals.items()}
    assert fixed == {"model": "digits-model#prod", "dataset": "s3://b/new.npz", "repo_url": "https://g/x.git"}
    with pytest.raises(LaunchPlanConfigError, match="is not a registered model's name"):
        predict_launch_plan("15 5 * * *", "digits-model", name="never_built_model")
    with pytest.raises(LaunchPlanConfigError, match="pins rev="):
        predict_launch_plan("15 5 * * *", "digits-model#prod", "dvc://d.npz?repo=https://g/d.git&rev=v1", name="nb")
