"""A pod: the task's container command run as a process with the pod's environment only.

That is the image's variables, Flyte's execution variables, `FLYTE_AWS_*` for the blob store, and the secrets the
task template requests, as Flyte's webhook would inject them (`Execution._base_env`), its own HOME, TMPDIR and a
fresh copy of what the image holds in /home/flyte/app (the Dockerfile's COPY lines). The one rewrite: the in-image
path /home/flyte/app becomes that pod's directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from emulator.host import BIN, PROJECT_ROOT

IMAGE_APP_DIR = "/home/flyte/app"  # the Dockerfile's WORKDIR, where the code lives in the image


def image_app_paths(dockerfile: Path = PROJECT_ROOT / "Dockerfile") -> list[str]:
    """What the final image stage copies from the build context into its WORKDIR (COPY src dst)."""
    stages = re.split(r"(?im)^FROM\s", dockerfile.read_text())
    paths = []
    for line in stages[-1].splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            paths.extend(w.rstrip("/") for w in words[1:-1] if not w.startswith("--"))
    return paths


def copy_file(src: Path, dst: Path) -> None:
    """shutil.copy2, keeping a sparse file sparse (a test's large file costs no disk in every pod)."""
    st = src.stat()
    if st.st_blocks * 512 >= st.st_size:
        shutil.copy2(src, dst)
        return
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.truncate(st.st_size)
        pos = 0
        while True:
            try:
                pos = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            end = os.lseek(fin.fileno(), pos, os.SEEK_HOLE)
            fin.seek(pos)
            fout.seek(pos)
            fout.write(fin.read(end - pos))
            pos = end
    shutil.copystat(src, dst)


@dataclass
class Pod:
    """One emulated container: its own directory (HOME, TMPDIR, the image's app dir) and environment."""

    name: str
    root: Path
    env: dict[str, str]

    @property
    def app(self) -> Path:
        return self.root / "app"

    @classmethod
    def create(cls, name: str, parent: Path, base_env: dict[str, str], app_files: dict[str, Path] | None = None) -> Pod:
        """`app_files`: more files the image would hold in its app dir ({path in the app dir: source}), e.g. a
        test's own workflow module."""
        root = parent / name
        for sub in ("home", "tmp", "app"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        files = {rel: PROJECT_ROOT / rel for rel in image_app_paths()}
        files.update(app_files or {})
        for rel, src in files.items():
            if src.is_dir():
                shutil.copytree(src, root / "app" / rel, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                (root / "app" / rel).parent.mkdir(parents=True, exist_ok=True)
                copy_file(src, root / "app" / rel)
        env = {
            **base_env,
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "PYTHONPATH": str(root / "app"),
            "DVC_SITE_CACHE_DIR": str(root / "tmp" / "dvc-site-cache"),
        }
        return cls(name, root, env)

    def args(self, template_args: list[str]) -> list[str]:
        return [a.replace(IMAGE_APP_DIR, str(self.app)) for a in template_args]

    def run(self, template_args: list[str], log: Path, timeout_s: float | None = None) -> bool:
        """The container's command (its in-image paths rewritten) in the pod's directory and environment, its output
        in `log`; whether it exited 0. `timeout_s`: the execution deadline (else 900 s)."""
        with open(log, "wb") as out:
            proc = subprocess.run(
                self.args(template_args),
                cwd=self.app,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout_s or 900,
            )
        return proc.returncode == 0


def image_env() -> dict[str, str]:
    """The image's ENV (Dockerfile) plus what this machine needs; nothing from the caller's environment."""
    return {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        "DVC_NO_ANALYTICS": "1",
        "RAY_AUTH_MODE": "disabled",  # no Ray token authentication between the emulated nodes
    }


def fill_template(args: list[str], values: dict[str, str]) -> list[str]:
    """Fill flytepropeller's `{{.input}}`-style placeholders (spaces inside the braces allowed)."""

    def sub(arg: str) -> str:
        return re.sub(r"\{\{\s*\.?(\w+)\s*\}\}", lambda m: values.get(m.group(1), m.group(0)), arg)

    filled = [sub(a) for a in args]
    left = [a for a in filled if "{{" in a]
    if left:
        raise ValueError(f"unfilled placeholders in the container args: {left}")
    return filled


def env_of(container: dict, resolve: dict[str, str]) -> dict[str, str]:
    """A container's env as the kubelet gives it: values, and valueFrom fields resolved from `resolve`."""
    out = {}
    for e in container.get("env", []):
        if "value" in e:
            out[e["name"]] = e["value"]
        else:
            ref = e["valueFrom"].get("fieldRef", {}).get("fieldPath") or e["valueFrom"]["resourceFieldRef"]["resource"]
            out[e["name"]] = resolve.get(ref, "")
    return out
