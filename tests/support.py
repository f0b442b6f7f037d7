"""Helpers shared by the tests: real git and dvc command lines, a free port, the remote round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emulator.host import free_port, moto_server  # noqa: F401  (one way to start S3 on loopback, for every test)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def bare_remote(repo: Path, dest: Path) -> str:
    """A bare clone of `repo` at `dest`, as a file:// git URL (the bridge treats it as a remote)."""
    git("clone", "--quiet", "--bare", str(repo), str(dest))
    return f"file://{dest}"


def dvc(*args: str, cwd: Path) -> str:
    exe = Path(sys.executable).parent / "dvc"
    proc = subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed: {proc.stdout}\n{proc.stderr}")
    return proc.stdout


def publish_shards(remote_url: str, clone: Path, problem: str, shards: int, rows: int = 0) -> tuple[str, str]:
    """A problem's data as Parquet shards (`python -m tasks.shards`) under data/<problem> of the repo at
    `remote_url`: `dvc add`ed, pushed to its DVC remote, committed and pushed to git; the clone (and with it the
    only DVC cache of the shards) then deleted. Returns (the directory's .dir md5, the commit)."""
    import shutil

    import yaml

    git("clone", "--quiet", remote_url, str(clone))
    out = f"data/{problem}"
    subprocess.run(
        [sys.executable, "-m", "tasks.shards", problem, str(clone / out), "--shards", str(shards), "--rows", str(rows)],
        check=True,
        cwd=PROJECT_ROOT,
    )
    dvc("add", out, cwd=clone)
    dvc("push", cwd=clone)
    git("add", f"{out}.dvc", "data/.gitignore", cwd=clone)
    git("commit", "--quiet", "-m", f"{problem} as Parquet shards", cwd=clone)
    git("push", "--quiet", "origin", "HEAD", cwd=clone)
    md5 = yaml.safe_load((clone / f"{out}.dvc").read_text())["outs"][0]["md5"].removesuffix(".dir")
    commit = git("rev-parse", "HEAD", cwd=clone)
    shutil.rmtree(clone)  # no local copy, no DVC cache of the shards anywhere
    return md5, commit


def assert_experiment_in_remote(url: str, name: str, model_bytes: bytes, workdir: Path) -> dict:
    """From a fresh clone of the remote: the experiment pulls, shows, applies, restores the model, plots, is clean."""
    from dvc.api import exp_show

    clone = workdir / f"verify-{name}"
    git("clone", "--quiet", url, str(clone))
    dvc("exp", "pull", "origin", name, cwd=clone)
    exps = exp_show(repo=str(clone))
    row = next(r for r in exps if r.get("Experiment") == name)

    def col(source: str, name: str):  # exp_show prefixes a column with its file only when ambiguous
        return row.get(f"{source}:{name}", row.get(name))

    assert len(col("params.yaml", "data.sha256")) == 64, row
    assert col("results/tune/best_params.yaml", "lr") > 0, row
    assert col("results/tune/best_params.yaml", "batch_size") >= 1, row
    assert 0 <= col("results/dvclive/metrics.json", "test.accuracy") <= 1, row
    assert 0 <= col("results/dvclive/metrics.json", "val.accuracy") <= 1, row
    dvc("exp", "apply", name, cwd=clone)
    (clone / "results/train/model.pth").unlink()
    dvc("pull", cwd=clone)
    assert (clone / "results/train/model.pth").read_bytes() == model_bytes
    dvc("plots", "show", "-o", str(workdir / f"plots-{name}"), cwd=clone)
    assert (workdir / f"plots-{name}" / "index.html").exists()
    status = dvc("status", cwd=clone)
    assert "up to date" in status, status
    return row


def own_processes(marker: str) -> list:
    """Descendants of this test process whose command line contains `marker` (never other users' Ray)."""
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if marker in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


def exp_refs(url: str) -> list[str]:
    """The experiment refs (refs/exps/...) on a git remote."""
    out = git("ls-remote", url, "refs/exps/*")
    return [line.split("\t")[1] for line in out.splitlines()]


def make_record(
    tmp: Path,
    execution_id: str,
    seed: int = 0,
    accuracy: float = 0.95,
    gate: float = 0.9,
    sha256: str = "ab" * 32,
    **kw,
):
    """A digits run's outputs as the bridge receives them: a real model, a DVCLive dir, a trials table."""
    import pandas as pd
    import torch

    from dvc_bridge.live import EpochLogger
    from tasks.problem import load_problem
    from tasks.record import experiment

    problem = load_problem("digits")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    torch.save(problem.build_model({"channels": 16, "hidden": 64}).state_dict(), tmp / "model.pth")
    live = EpochLogger(tmp / "dvclive", resume=False)
    for epoch in range(3):
        live.log_epoch({"train/loss": 1.0 / (epoch + 1), "val/accuracy": accuracy - 0.1 * (2 - epoch)})
    live.log_summary({"test/accuracy": accuracy})
    live.close()
    pd.DataFrame({"trial_id": ["a"], "val/accuracy": [0.9]}).to_csv(tmp / "trials.csv", index=False)
    (tmp / "trials.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return experiment.describe_run(
        problem,
        params=experiment.params_document(
            "digits",
            {"source": "embedded", "seed": 0, "sha256": sha256, "dvc_rev": ""},
            {"num_samples": 1},
            {"epochs": 3},
        ),
        best={"lr": 0.05, "momentum": 0.9, "batch_size": 64, "channels": 16, "hidden": 64},
        trials_csv=tmp / "trials.csv",
        trials_png=tmp / "trials.png",
        model=tmp / "model.pth",
        live_dir=tmp / "dvclive",
        val={"val/accuracy": accuracy},
        test={"test/accuracy": accuracy},
        run_info={"execution_id": execution_id},
        gate=gate,
        **kw,  # stage, champion, margin
    )


def assert_refs_have_their_data(url: str, workdir: Path) -> dict[str, Path]:
    """Every branch and experiment ref on the git remote points at a commit whose DVC-tracked data pulls
    from the DVC remote into an empty cache. Returns each ref's checked-out, pulled clone."""
    from dvc.repo import Repo

    refs = [line.split("\t")[1] for line in git("ls-remote", url).splitlines()]
    refs = [r for r in refs if r.startswith(("refs/heads/", "refs/exps/"))]
    clones = {}
    for i, ref in enumerate(refs):
        clone = clones[ref] = workdir / f"refs-have-data-{i}"
        git("clone", "--quiet", "--no-checkout", url, str(clone))
        git("fetch", "--quiet", "origin", f"+{ref}:refs/check/{i}", cwd=clone)
        git("checkout", "--quiet", "--detach", f"refs/check/{i}", cwd=clone)
        if not (clone / "dvc.lock").exists():
            continue  # nothing DVC-tracked at this commit
        try:
            with Repo(str(clone)) as repo:
                repo.pull()
        except Exception as e:
            raise AssertionError(f"{ref} points at data its DVC remote lacks: {type(e).__name__}: {e}") from e
    return clones


# --------------------------------------------------------------------------- fixtures shared by tests/faults and tests/security
# (imported into their conftest modules; a session fixture instantiated twice reuses the one cluster)


@pytest.fixture(scope="session")
def digits():
    """The embedded MNIST digits, split (4000 train, 500 validation, 500 test)."""
    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import load_problem

    problem = load_problem("digits")
    raw, _ = load_raw(parse_source(""), problem)
    return make_splits(raw, problem, seed=0)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of this test process (2 CPUs), started as the Ray tasks start it locally.

    Its session files live in a private temp dir (short path: Ray's socket names have a length limit).
    """
    import os
    import shutil
    import tempfile

    import ray

    from tasks.ray_glue.local import init_local_ray

    started_here = not ray.is_initialized()
    tmp = tempfile.mkdtemp(prefix="frdray", dir="/tmp")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    init_local_ray(num_cpus=2)
    yield ray
    if started_here:
        ray.shutdown()
    if old is None:
        os.environ.pop("RAY_TMPDIR", None)
    else:
        os.environ["RAY_TMPDIR"] = old
    shutil.rmtree(tmp, ignore_errors=True)
