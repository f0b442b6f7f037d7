"""flytectl / flyteadmin's part: the protobufs of a `pyflyte package` archive, and where registration puts them.

`pyflyte package` produces the real protobufs; the fast-registration code archive is uploaded to S3 and
`{{ .remote_package_path }}` filled in (`Execution.fast_archive_uri`).
"""

from __future__ import annotations

import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2
from flyteidl.core import tasks_pb2
from google.protobuf.json_format import MessageToDict

from emulator.host import BIN, PROJECT_ROOT
from emulator.pods import IMAGE_APP_DIR

PROJECT, DOMAIN, VERSION = "flytesnacks", "development", "emulated"


def build_package(
    out: Path, image: str, env: dict | None = None, copy: str = "all", source: Path = PROJECT_ROOT
) -> Path:
    """`pyflyte package` of the `workflows` package, code destined for the image's app dir."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / "pyflyte"),
        "--pkgs",
        "workflows",
        "package",
        "--image",
        image,
        "--copy",
        copy,
        "--in-container-source-path",
        IMAGE_APP_DIR,
        "--output",
        str(out),
        "--force",
    ]
    proc = subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"pyflyte package failed:\n{proc.stdout}\n{proc.stderr}")
    return out


def renders_as_json(message, what: str) -> None:
    """flyteadmin's API and the console serve every spec as JSON: one protobuf cannot render (a NaN default, say)
    is one a Flyte backend could not serve. Raise naming the entity."""
    try:
        MessageToDict(message)
    except Exception as e:
        raise ValueError(f"{what} cannot be rendered as JSON, as flyteadmin would serve it: {e}") from e


@dataclass
class Package:
    """The unpacked protobufs of a `pyflyte package` archive, by entity name."""

    dir: Path
    tasks: dict[str, tasks_pb2.TaskTemplate]
    workflows: dict[str, workflow_pb2.WorkflowSpec]
    launch_plans: dict[str, launch_plan_pb2.LaunchPlan]
    fast_archive: Path | None

    @classmethod
    def load(cls, archive: Path, dest: Path) -> Package:
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
        tasks, workflows, lps = {}, {}, {}
        for pb in sorted(dest.glob("*.pb")):
            data = pb.read_bytes()
            if pb.name.endswith("_1.pb"):
                spec = task_pb2.TaskSpec.FromString(data)
                renders_as_json(spec, f"task {spec.template.id.name}")
                tasks[spec.template.id.name] = spec.template
            elif pb.name.endswith("_2.pb"):
                spec = workflow_pb2.WorkflowSpec.FromString(data)
                renders_as_json(spec, f"workflow {spec.template.id.name}")
                workflows[spec.template.id.name] = spec
            elif pb.name.endswith("_3.pb"):
                lp = launch_plan_pb2.LaunchPlan.FromString(data)
                renders_as_json(lp, f"launch plan {lp.id.name}")
                lps[lp.id.name] = lp
        fast = next(iter(dest.glob("fast*.tar.gz")), None)
        return cls(dest, tasks, workflows, lps, fast)

    @classmethod
    def serialize(cls, entity, image: str, dest: Path) -> Package:
        """The protobufs `pyflyte package --copy none` would hold for one workflow (and its tasks) or one task,
        serialized in this process by flytekit's own translator: no subprocess, no code archive."""
        from collections import OrderedDict

        from flytekit.configuration import ImageConfig, SerializationSettings
        from flytekit.models.admin.workflow import WorkflowSpec
        from flytekit.models.task import TaskSpec
        from flytekit.tools.translator import get_serializable

        mapping: OrderedDict = OrderedDict()
        get_serializable(mapping, SerializationSettings(image_config=ImageConfig.from_images(image)), entity)
        tasks, workflows = {}, {}
        for model in mapping.values():
            if isinstance(model, TaskSpec):
                renders_as_json(model.to_flyte_idl(), f"task {model.template.id.name}")
                template = model.template.to_flyte_idl()
                tasks[template.id.name] = template
            elif isinstance(model, WorkflowSpec):
                spec = model.to_flyte_idl()
                renders_as_json(spec, f"workflow {spec.template.id.name}")
                workflows[spec.template.id.name] = spec
        return cls(dest, tasks, workflows, {}, None)

    def custom(self, task_name: str) -> dict:
        return MessageToDict(self.tasks[task_name].custom)
