"""Where a benchmark runs: sizes, a scratch environment, the S3 server, and how loaded the machine is.

Every benchmarked process gets a fresh HOME (so Flyte's local cache is cold and Ray's auth token
is private), its own RAY_TMPDIR, DVC site cache and git identity, all under one scratch directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = Path(os.environ.get("BENCH_OUT", PROJECT_ROOT / "bench" / "out"))
BIN = Path(sys.executable).parent
WORKER_HOOKS = PROJECT_ROOT / "bench" / "worker_hooks"
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


@dataclass(frozen=True)
class RunSize:
    """Workflow inputs of one size: the `--tune` / `--train` JSON of `pyflyte run` (empty: the defaults)."""

    name: str
    tune: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)

    def pyflyte_args(self) -> list[str]:
        args = []
        if self.tune:
            args += ["--tune", json.dumps(self.tune)]
        if self.train:
            args += ["--train", json.dumps(self.train)]
        return args


DEFAULT = RunSize("default")
TUTORIAL = RunSize("tutorial", {"num_samples": 50, "max_epochs": 10}, {"epochs": 10, "num_workers": 2})
# A given space replaces the problem's search (what it leaves out is fixed at its default): the quick
# size searches lr and momentum as the default space does, with the batch size fixed at 64. The
# default and tutorial sizes pass no space, so they search the problem's full default space.
QUICK_SPACE = {"lr": {"loguniform": [0.01, 0.2]}, "momentum": {"uniform": [0.5, 0.95]}, "batch_size": 64}
QUICK_SIZE = RunSize(
    "quick", {"num_samples": 2, "max_epochs": 1, "space": QUICK_SPACE}, {"epochs": 2, "num_workers": 2}
)
BRIDGE_MB = [1, 4, 16] if QUICK else [10, 100, 500]


def sizes() -> tuple[RunSize, RunSize]:
    """(the end-to-end run, the tutorial-size run); quick mode shrinks both to one tiny size."""
    return (QUICK_SIZE, QUICK_SIZE) if QUICK else (DEFAULT, TUTORIAL)


def scratch(name: str) -> Path:
    """A fresh scratch directory (short path: Ray's socket paths must stay under ~107 bytes)."""
    return Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))


def isolated_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a benchmarked process: cold caches, private Ray, fixed git identity."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    (root / "ray").mkdir(exist_ok=True)
    gitconfig = root / "gitconfig"
    gitconfig.write_text("[user]\n\tname = bench\n\temail = bench@example.invalid\n[init]\n\tdefaultBranch = main\n")
    env = {
        **os.environ,
        "HOME": str(home),
        "RAY_TMPDIR": str(root / "ray"),
        "DVC_SITE_CACHE_DIR": str(root / "dvc-site-cache"),
        "DVC_NO_ANALYTICS": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        # worker_hooks: a sitecustomize that marks steps inside every Python process (when BENCH_MARKS is set)
        "PYTHONPATH": os.pathsep.join(
            p for p in [str(WORKER_HOOKS), str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")] if p
        ),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    for name in ("BENCH_QUICK", "VIRTUAL_ENV_PROMPT"):
        env.pop(name, None)
    return env


def use_env(env: dict[str, str]) -> None:
    """Make this process's own environment the isolated one (for in-process benchmarks)."""
    os.environ.clear()
    os.environ.update(env)


def cleanup(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)


def remote_target(root: Path, endpoint: str, bucket: str) -> str:
    """Like the tests' `remote_target` fixture: a bare git remote whose DVC remote is the bucket."""
    from tasks.scaffold import scaffold

    seed = root / f"seed-{bucket}"
    scaffold(seed, remote=f"s3://{bucket}/dvc", endpoint=endpoint)
    bare = root / f"{bucket}.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(seed), str(bare)], check=True)
    return f"file://{bare}"


def machine_load() -> dict:
    """Load averages and what else is running: figures measured on a busy machine are noisy."""
    import psutil

    l1, l5, l15 = os.getloadavg()
    return {
        "loadavg_1_5_15": [round(l1, 2), round(l5, 2), round(l15, 2)],
        "cpus": os.cpu_count(),
        "cpu_percent_1s": psutil.cpu_percent(interval=1.0),
        "mem_available_gib": round(psutil.virtual_memory().available / 1024**3, 1),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(name: str, doc: dict) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def read_json(name: str) -> dict:
    return json.loads((OUT_DIR / f"{name}.json").read_text())


def dump(obj) -> dict:
    return asdict(obj)
