"""Writing a record's files into a DVC repo's work tree, and its dvc.yaml declarations. No Flyte or Ray.

What the paths are is the caller's (the project's experiment layout); this module only writes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

PARAMS = "params.yaml"
DVC_YAML = "dvc.yaml"
RUN_INFO = "results/run.json"  # provenance: the execution, data version, scores; lets a retry find its experiment


def write_yaml(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def read_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def write_run_info(root: Path, info: dict) -> None:
    path = root / RUN_INFO
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def place(src: Path, dst: Path) -> None:
    """A file hard-linked (the model can be large) or copied; a directory replaces what was there."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        return
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def declared_outs(root: Path) -> set[str]:
    """Every out that the repo's dvc.yaml declares, in any stage."""
    path = root / DVC_YAML
    stages = read_yaml(path).get("stages", {}) if path.exists() else {}
    return {o if isinstance(o, str) else next(iter(o)) for stage in stages.values() for o in stage.get("outs", [])}


def merge_declarations(root: Path, sections: dict[str, Any]) -> None:
    """Set top-level dvc.yaml sections (metrics, plots) to the record's and add its artifacts to the repo's
    (another problem's model artifact stays declared); stages stay the repo's."""
    if not sections:
        return
    path = root / DVC_YAML
    doc = read_yaml(path) if path.exists() else {}
    for key, value in sections.items():
        doc[key] = (
            {**doc.get(key, {}), **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
        )
    write_yaml(path, doc)
