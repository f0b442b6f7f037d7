"""Helpers shared by the tests: real git and dvc command lines, a free port, the remote round trip."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    assert 0 <= col("results/dvclive/metrics.json", "accuracy") <= 1, row
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
