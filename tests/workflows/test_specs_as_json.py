"""Every spec `pyflyte package` yields renders as JSON, as flyteadmin's API and the Flyte console render it.

protobuf's JSON has no NaN or infinity: a float default such as `score: float = nan` in an output
dataclass lands in the type's schema and makes the whole task or workflow spec unrenderable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2
from google.protobuf.json_format import MessageToDict
from support import PROJECT_ROOT

from dvc_bridge.bridge import ExperimentRef

PARSERS = {"_1.pb": task_pb2.TaskSpec, "_2.pb": workflow_pb2.WorkflowSpec, "_3.pb": launch_plan_pb2.LaunchPlan}


@pytest.fixture(scope="module")
def specs(tmp_path_factory) -> dict[str, object]:
    """file name -> parsed spec, of a real `pyflyte package --copy none` of the project's workflows."""
    out = tmp_path_factory.mktemp("package")
    pyflyte = Path(sys.executable).parent / "pyflyte"
    cmd = [str(pyflyte), "--pkgs", "workflows", "package", "--image", "localhost:30000/frd:json", "--copy", "none"]
    proc = subprocess.run(
        [*cmd, "--output", str(out / "package.tgz"), "--force"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "HOME": str(out)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with tarfile.open(out / "package.tgz") as tar:
        tar.extractall(out / "unpacked", filter="data")
    found = {}
    for pb in sorted((out / "unpacked").glob("*.pb")):
        kind = next(parser for suffix, parser in PARSERS.items() if pb.name.endswith(suffix))
        found[pb.name] = kind.FromString(pb.read_bytes())
    return found


def test_every_task_workflow_and_launch_plan_spec_renders_as_json(specs):
    kinds = {type(spec).__name__ for spec in specs.values()}
    assert kinds == {"TaskSpec", "WorkflowSpec", "LaunchPlan"}, kinds
    names = " ".join(specs)
    assert "commit_experiment" in names and "tune_train_wf" in names
    for name, spec in specs.items():
        try:
            rendered = json.dumps(MessageToDict(spec), allow_nan=False)
        except Exception as e:  # SerializeToJsonError, ValueError: what flyteadmin's JSON gateway would answer
            pytest.fail(f"{name} cannot be rendered as JSON: {e}")
        assert rendered


def test_the_experiment_refs_default_score_is_not_nan():
    assert ExperimentRef("n", "c", "b", "r", "u", False, False).score is None
