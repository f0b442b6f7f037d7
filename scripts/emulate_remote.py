"""Run a serialized workflow the way a Flyte cluster with KubeRay would, on this one machine.

There is no Flyte backend or Kubernetes here, so this plays their parts and nothing else:

* **flytectl / flyteadmin**: `pyflyte package` produces the real protobufs; the fast-registration
  code archive is uploaded to S3 and `{{ .remote_package_path }}` filled in.
* **flytepropeller**: walks the workflow's nodes, resolves each node's input bindings from
  upstream outputs (attribute paths included), writes `inputs.pb`, fills the container template
  (`{{.input}}`, `{{.outputPrefix}}`, ...) and reads `outputs.pb` / `error.pb` back. A failed
  attempt is retried by propeller's rule (`RetryBudget`): only a RECOVERABLE error document
  (flytekit writes a user exception as NON_RECOVERABLE unless it is a FlyteRecoverableException),
  or an attempt that died without one; user errors count against the task's `retries`, system
  errors against propeller's own budget of 3. Every path is in S3 (a moto server on loopback).
* **a pod**: the task's container command run as a process with the pod's environment only
  (the image's variables, Flyte's execution variables, `FLYTE_AWS_*` for the blob store, and the
  secrets the task template requests, as Flyte's webhook would inject them), its own HOME, TMPDIR
  and a fresh copy of what the image holds in /home/flyte/app (the Dockerfile's COPY lines).
  The one rewrite: the in-image path /home/flyte/app becomes that pod's directory.
* **the Flyte Ray plugin and KubeRay** for `ray` tasks: the RayJob the plugin builds from the task's spec
  (`rayjob_manifest`: head, worker and submitter pods copied from the task pod, the groups' pod specs merged on,
  `include-dashboard`, `dashboard-host`, `node-ip-address`, `disable-usage-stats` added to start params that lack
  them, the container args joined as the entrypoint, `runtimeEnvYAML` passed through), then what KubeRay runs in
  each pod (`kuberay_start_params`: `num-cpus`, `memory`, `num-gpus` from the container limits when absent,
  `--block`, its flag syntax): a real multi-node Ray cluster, one `ray start` per pod with its own directory and the
  pod template's env; then the submitter's `ray job submit --address http://127.0.0.1:<dashboard> -- <entrypoint>`,
  so the task's entrypoint is the job driver on the head, and flytekit's `ray.init` there uploads the head pod's
  working directory as Ray does (capped at 512 MiB; the packages pushed and Ray's size warnings are reported).
  What one machine cannot share between pods is rewritten: node IP, ports, temp dirs, the object store size.
  Before teardown the Ray state API records where the driver and every actor and task ran; then the emulator kills
  exactly the processes it started (never `ray stop`). `--print-rayjob` prints the RayJob of each Ray task.

Not emulated: Flyte's cache (every task runs), scheduling (a launch plan is run once with a given
kickoff time), resource requests/limits (Ray sees the logical CPUs of rayStartParams; Kubernetes
would also enforce the pod limits), image pulls, KubeRay's autoscaler and TTL.

    python scripts/emulate_remote.py --repo-url file:///path/to/bare.git      # starts its own S3
    python scripts/emulate_remote.py --print-rayjob                          # the RayJobs, nothing run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import boto3
import msgpack
import psutil
from flyteidl.admin import launch_plan_pb2, task_pb2, workflow_pb2
from flyteidl.core import dynamic_job_pb2, errors_pb2, execution_pb2, literals_pb2, tasks_pb2
from flyteidl.core import workflow_pb2 as core_workflow_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IMAGE_APP_DIR = "/home/flyte/app"  # the Dockerfile's WORKDIR, where the code lives in the image
PROJECT, DOMAIN, VERSION = "flytesnacks", "development", "emulated"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the package


def build_package(
    out: Path, image: str, env: Optional[dict] = None, copy: str = "all", source: Path = PROJECT_ROOT
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


@dataclass
class Package:
    """The unpacked protobufs of a `pyflyte package` archive, by entity name."""

    dir: Path
    tasks: dict[str, tasks_pb2.TaskTemplate]
    workflows: dict[str, workflow_pb2.WorkflowSpec]
    launch_plans: dict[str, launch_plan_pb2.LaunchPlan]
    fast_archive: Optional[Path]

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
                tasks[spec.template.id.name] = spec.template
            elif pb.name.endswith("_2.pb"):
                spec = workflow_pb2.WorkflowSpec.FromString(data)
                workflows[spec.template.id.name] = spec
            elif pb.name.endswith("_3.pb"):
                lp = launch_plan_pb2.LaunchPlan.FromString(data)
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
                template = model.template.to_flyte_idl()
                tasks[template.id.name] = template
            elif isinstance(model, WorkflowSpec):
                spec = model.to_flyte_idl()
                workflows[spec.template.id.name] = spec
        return cls(dest, tasks, workflows, {}, None)

    def custom(self, task_name: str) -> dict:
        return MessageToDict(self.tasks[task_name].custom)


# --------------------------------------------------------------------------- S3 on loopback


@dataclass
class BlobStore:
    """The Flyte blob store: one bucket on an S3 endpoint."""

    endpoint: str
    bucket: str
    access_key: str = "emulator"
    secret_key: str = "emulator"

    def __post_init__(self) -> None:
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
        )

    def pod_env(self) -> dict[str, str]:
        """What Flyte's default env vars give every task pod for its blob store."""
        return {
            "FLYTE_AWS_ENDPOINT": self.endpoint,
            "FLYTE_AWS_ACCESS_KEY_ID": self.access_key,
            "FLYTE_AWS_SECRET_ACCESS_KEY": self.secret_key,
        }

    def uri(self, *parts: str) -> str:
        return "s3://" + "/".join([self.bucket, *parts])

    def _split(self, uri: str) -> tuple[str, str]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return bucket, key

    def put(self, uri: str, data: bytes) -> None:
        bucket, key = self._split(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, uri: str) -> bytes:
        bucket, key = self._split(uri)
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def exists(self, uri: str) -> bool:
        bucket, key = self._split(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
            return True
        except self.client.exceptions.ClientError:
            return False

    def keys(self, prefix_uri: str) -> list[str]:
        bucket, prefix = self._split(prefix_uri)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", [])]


# --------------------------------------------------------------------------- pods


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
    def create(
        cls, name: str, parent: Path, base_env: dict[str, str], app_files: Optional[dict[str, Path]] = None
    ) -> Pod:
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


def ray_entrypoint(args: list[str]) -> str:
    """The RayJob entrypoint as the Flyte Ray plugin builds it: the args joined, empty ones as ''."""
    return " ".join(a if a else "''" for a in args)


# --------------------------------------------------------------------------- the RayJob Flyte builds, the pods KubeRay makes
# Read from flyteorg/flyte v1.16.8 flyteplugins/go/tasks/plugins/k8s/ray/ray.go and config.go (BuildResource,
# constructRayJob, build{Head,Worker,Submitter}PodTemplate, mergeCustomPodSpec), flytek8s MergeOverlayPodSpecOntoBase
# and utils/secrets/marshaler.go; KubeRay ray-operator v1.5.1 (the version Flyte 1.16.8 pins)
# controllers/ray/common/pod.go (setMissingRayStartParams, generateRayStartCommand, convertParamMap) and job.go
# (BuildJobSubmitCommand).

# config.go's defaults: includeDashboard true, dashboardHost 0.0.0.0, enableUsageStats false, ipAddress $MY_POD_IP.
FLYTE_HEAD_START_DEFAULTS = {
    "include-dashboard": "true",
    "node-ip-address": "$MY_POD_IP",
    "dashboard-host": "0.0.0.0",
    "disable-usage-stats": "true",
}
FLYTE_WORKER_START_DEFAULTS = {"node-ip-address": "$MY_POD_IP", "disable-usage-stats": "true"}
FLYTE_DEFAULT_TTL = 3600  # config.go ttlSecondsAfterFinished, used when the task does not ask for shutdown
KUBERAY_GCS_PORT, KUBERAY_DASHBOARD_PORT, KUBERAY_METRICS_PORT, KUBERAY_AGENT_PORT = 6379, 8265, 8080, 52365
RESOURCE_NAMES = {"CPU": "cpu", "MEMORY": "memory", "GPU": "nvidia.com/gpu", "EPHEMERAL_STORAGE": "ephemeral-storage"}
SECRET_LABEL, SECRET_ANNOTATION_PREFIX = "inject-flyte-secrets", "flyte.secrets/s"
_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity_value(q: str) -> int:
    """A Kubernetes quantity as KubeRay reads it (`Quantity.Value()`: rounded up to an integer)."""
    m = _QUANTITY.match(str(q).strip())
    if not m or m.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    value = float(m.group(1)) * _SUFFIX[m.group(2)]
    return int(value) if value == int(value) else int(value) + 1


def flyte_start_params(params: Optional[dict], head: bool) -> dict[str, str]:
    """The task's rayStartParams as given, plus what the Flyte plugin adds when absent (it never sets num-cpus)."""
    out = dict(params or {})
    for key, value in (FLYTE_HEAD_START_DEFAULTS if head else FLYTE_WORKER_START_DEFAULTS).items():
        out.setdefault(key, value)
    return out


def kuberay_start_params(params: dict[str, str], head: bool, resources: dict, head_address: str = "") -> dict[str, str]:
    """rayStartParams completed as KubeRay does for one node: address (workers), dashboard-host (head), metrics and agent
    ports, block; num-cpus (limit, else request), memory (limit) and num-gpus (a *gpu limit) when absent."""
    out = dict(params)
    if not head:
        out.setdefault("address", head_address or f"<head service>:{KUBERAY_GCS_PORT}")
    else:
        out.setdefault("dashboard-host", "0.0.0.0")
    out.setdefault("metrics-export-port", str(KUBERAY_METRICS_PORT))
    out["block"] = "true"
    out.setdefault("dashboard-agent-listen-port", str(KUBERAY_AGENT_PORT))
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    if "num-cpus" not in out:
        cpu = limits.get("cpu") or requests.get("cpu")
        if cpu and quantity_value(cpu):
            out["num-cpus"] = str(quantity_value(cpu))
    if "memory" not in out and limits.get("memory") and quantity_value(limits["memory"]):
        out["memory"] = str(quantity_value(limits["memory"]))
    for key in sorted(limits):
        if "num-gpus" not in out and key.endswith("gpu") and quantity_value(limits[key]):
            out["num-gpus"] = str(quantity_value(limits[key]))
    return out


def kuberay_flags(params: dict[str, str]) -> list[str]:
    """convertParamMap: sorted; a "true" value is a bare switch, "false" drops it, except include-dashboard/log-color."""
    flags = []
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false") and key not in ("log-color", "include-dashboard"):
            if value.lower() == "true":
                flags.append(f"--{key}")
        else:
            flags.append(f"--{key}={value}")
    return flags


def _resources(res: tasks_pb2.Resources) -> dict:
    out = {}
    for kind, entries in (("requests", res.requests), ("limits", res.limits)):
        values = {RESOURCE_NAMES.get(tasks_pb2.Resources.ResourceName.Name(e.name), e.name): e.value for e in entries}
        if values:
            out[kind] = values
    return out


def _merge(base: dict, overlay: dict) -> dict:
    """mergo.Merge(WithOverride, WithAppendSlice) on JSON-shaped values: maps merged key by key, lists appended."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and key != "containers":
            out[key] = out[key] + value
        elif value not in (None, "", [], {}):
            out[key] = value
    return out


def _overlay_pod(pod_spec: dict, k8s_pod: Optional[dict]) -> dict:
    """MergeOverlayPodSpecOntoBase: the group's pod spec onto the task's, containers merged by name."""
    overlay = (k8s_pod or {}).get("podSpec") or {}
    merged = _merge(pod_spec, {k: v for k, v in overlay.items() if k != "containers"})
    merged["containers"] = [
        _merge(c, next((o for o in overlay.get("containers", []) if o.get("name") == c["name"]), {}))
        for c in pod_spec["containers"]
    ]
    return merged


def secret_metadata(task: tasks_pb2.TaskTemplate) -> dict:
    """What Flyte puts on every pod of a task that requests secrets, for its webhook: names only, never values."""
    import base64

    from google.protobuf import text_format

    if not task.security_context.secrets:
        return {}
    alphabet = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "abcdefghijklmnopqrstuvwxyz123456")
    annotations = {
        f"{SECRET_ANNOTATION_PREFIX}{i}": base64.b32encode(text_format.MessageToString(sec).encode())
        .decode()
        .translate(alphabet)
        .rstrip("=")
        for i, sec in enumerate(task.security_context.secrets)
    }
    return {"labels": {SECRET_LABEL: "true"}, "annotations": annotations}


def rayjob_manifest(task: tasks_pb2.TaskTemplate, args: list[str], pod_env: dict[str, str], name: str) -> dict:
    """The RayJob the Flyte Ray plugin creates for one attempt of a `ray` task: head, worker and submitter pods are
    copies of the task pod (image, env, resources, secret labels and annotations) with the groups' pod specs merged
    on; the head and worker start params completed as the plugin does; the container args joined as the entrypoint."""
    custom = MessageToDict(task.custom)
    cluster = custom.get("rayCluster", {})
    task_pod = {
        "containers": [
            {
                "name": "primary",
                "image": task.container.image,
                "args": list(args),
                "env": [{"name": k, "value": v} for k, v in sorted(pod_env.items())],
                "resources": _resources(task.container.resources),
            }
        ]
    }
    meta = {"name": name, "namespace": f"{PROJECT}-{DOMAIN}", **secret_metadata(task)}

    def node_pod(container_name: str, extra_env: list[dict], k8s_pod: Optional[dict], ports: bool = True) -> dict:
        spec = json.loads(json.dumps(task_pod))
        c = spec["containers"][0]
        c.update(name=container_name, args=[])
        c["env"] = c["env"] + extra_env
        if ports:
            c["ports"] = [
                {"name": "redis", "containerPort": KUBERAY_GCS_PORT},
                {"name": "head", "containerPort": 10001},
                {"name": "dashboard", "containerPort": KUBERAY_DASHBOARD_PORT},
            ]
        return {"metadata": dict(meta), "spec": _overlay_pod(spec, k8s_pod)}

    pod_ip = {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    head_spec = cluster.get("headGroupSpec") or {}
    head = {
        "rayStartParams": flyte_start_params(head_spec.get("rayStartParams"), head=True),
        "serviceType": "NodePort",
        "enableIngress": False,
        "template": node_pod("ray-head", [pod_ip], head_spec.get("k8sPod")),
    }
    worker_env = [
        {"name": "RAY_DISABLE_DOCKER_CPU_WARNING", "value": "1"},
        {"name": "TYPE", "value": "worker"},
        *(
            {"name": n, "valueFrom": {"resourceFieldRef": {"containerName": "ray-worker", "resource": r}}}
            # sic: Flyte 1.16.8 points MEMORY_* at the cpu fields
            for n, r in (
                ("CPU_REQUEST", "requests.cpu"),
                ("CPU_LIMITS", "limits.cpu"),
                ("MEMORY_REQUESTS", "requests.cpu"),
                ("MEMORY_LIMITS", "limits.cpu"),
            )
        ),
        {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        pod_ip,
    ]
    workers = []
    for group in cluster.get("workerGroupSpec", []):
        replicas = int(group.get("replicas", 0))
        template = node_pod("ray-worker", worker_env, group.get("k8sPod"))
        template["spec"]["containers"][0]["lifecycle"] = {
            "preStop": {"exec": {"command": ["/bin/sh", "-c", "ray stop"]}}
        }
        workers.append(
            {
                "groupName": group.get("groupName", ""),
                "replicas": replicas,
                "minReplicas": min(int(group.get("minReplicas", 0)), replicas),
                "maxReplicas": max(int(group.get("maxReplicas", 0)), replicas),
                "rayStartParams": flyte_start_params(group.get("rayStartParams"), head=False),
                "template": template,
            }
        )
    shutdown = bool(custom.get("shutdownAfterJobFinishes"))
    submitter = json.loads(json.dumps(task_pod))
    spec = {
        "entrypoint": ray_entrypoint(args),
        "shutdownAfterJobFinishes": True,  # config.go default, or the task's own True
        "ttlSecondsAfterFinished": int(custom.get("ttlSecondsAfterFinished", 0)) if shutdown else FLYTE_DEFAULT_TTL,
        "rayClusterSpec": {
            "headGroupSpec": head,
            "workerGroupSpecs": workers,
            "enableInTreeAutoscaling": bool(cluster.get("enableAutoscaling", False)),
        },
        "submitterPodTemplate": {"metadata": dict(meta), "spec": submitter},
    }
    runtime_env = custom.get("runtimeEnvYaml") or custom.get("runtimeEnvYAML")
    if runtime_env:
        spec["runtimeEnvYAML"] = runtime_env
    elif custom.get("runtimeEnv"):  # the deprecated base64 JSON, converted as the plugin does
        import base64

        import yaml

        spec["runtimeEnvYAML"] = yaml.safe_dump(json.loads(base64.b64decode(custom["runtimeEnv"])))
    return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": meta, "spec": spec}


def node_commands(manifest: dict) -> dict[str, str]:
    """The `ray start` command KubeRay generates for each pod of a RayJob (head, then each worker group)."""
    cluster = manifest["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    out = {
        "ray-head": " ".join(
            [
                "ray",
                "start",
                "--head",
                *kuberay_flags(
                    kuberay_start_params(
                        head["rayStartParams"], True, head["template"]["spec"]["containers"][0].get("resources", {})
                    )
                ),
            ]
        )
    }
    for group in cluster["workerGroupSpecs"]:
        out[f"ray-worker ({group['groupName']})"] = " ".join(
            [
                "ray",
                "start",
                *kuberay_flags(
                    kuberay_start_params(
                        group["rayStartParams"], False, group["template"]["spec"]["containers"][0].get("resources", {})
                    )
                ),
            ]
        )
    return out


def submit_command(manifest: dict, dashboard: str, submission_id: str) -> list[str]:
    """The submitter's `ray job submit` (KubeRay's K8sJobMode, without its status/logs shell around it)."""
    cmd = ["ray", "job", "submit", "--address", dashboard]
    runtime_env = manifest["spec"].get("runtimeEnvYAML")
    if runtime_env:
        import yaml

        cmd += ["--runtime-env-json", json.dumps(yaml.safe_load(runtime_env))]
    return [*cmd, "--submission-id", submission_id, "--", *shlex.split(manifest["spec"]["entrypoint"].strip())]


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


# --------------------------------------------------------------------------- a Ray cluster from a RayJob spec


def start_params(params: dict[str, str]) -> list[str]:
    """rayStartParams as KubeRay passes them to `ray start` (see kuberay_flags)."""
    return kuberay_flags(params)


@dataclass
class Placement:
    """Where one Ray actor or task ran."""

    kind: str  # "actor" | "task"
    name: str
    node_id: str
    cpus: float


@dataclass
class RayRun:
    """What a Ray task's cluster did: its nodes, where work ran, the job's logs and status."""

    head_node_id: str = ""
    nodes: list[dict] = field(default_factory=list)  # node_id, is_head, CPU
    placements: list[Placement] = field(default_factory=list)
    job_status: str = ""
    logs: str = ""
    seconds_start: float = 0.0
    seconds_job: float = 0.0
    seconds_stop: float = 0.0
    leftover_pids: list[int] = field(default_factory=list)  # processes still alive after teardown
    manifest: dict = field(default_factory=dict)  # the RayJob emulated (rayjob_manifest)
    start_commands: dict[str, list[str]] = field(default_factory=dict)  # pod name -> the `ray start` args it ran
    driver_node_id: str = ""  # where the job's driver (the task's entrypoint) ran
    uploads: list[tuple[str, float]] = field(default_factory=list)  # runtime_env packages the driver pushed: (URI, MiB)
    upload_warnings: list[str] = field(default_factory=list)  # Ray's warnings about what it packaged
    pending_pods: dict[str, str] = field(default_factory=dict)  # pod -> why the scheduler could not place it

    def on_head(self) -> list[Placement]:
        return [p for p in self.placements if p.node_id == self.head_node_id]


class LocalRayCluster:
    """A transient multi-node Ray cluster on this machine, shaped by a RayJob spec's `rayCluster`."""

    def __init__(
        self,
        manifest: dict,
        pods_dir: Path,
        base_env: dict[str, str],
        name: str,
        app_files: Optional[dict[str, Path]] = None,
        allocatable: Optional[dict[str, str]] = None,
    ):
        """`manifest`: the RayJob (rayjob_manifest); each pod runs what KubeRay would start in it, with the env of its
        pod template (the task pod's, plus what the plugin adds per role) over `base_env` (the image's and the task
        pod's environment as the emulator gives it, secrets included)."""
        self.manifest = manifest
        self.spec = manifest["spec"]["rayClusterSpec"]
        self.name = name
        self.pods_dir = pods_dir
        self.base_env = base_env
        self.app_files = app_files
        # Ray's temp dirs, one per node under this one: unique (it marks this cluster's processes) and
        # short (Ray's socket paths must fit in 107 characters).
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        self.procs: list[subprocess.Popen] = []
        self.pods: list[Pod] = []
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.start_commands: dict[str, list[str]] = {}
        # What one Kubernetes node offers (cpu, memory, nvidia.com/gpu); a pod requesting more stays Pending, as the
        # scheduler leaves it. None: every pod fits.
        self.allocatable = allocatable
        self.pending: dict[str, str] = {}

    @property
    def ready(self) -> bool:
        """KubeRay's RayCluster state `ready`: every pod of the head and the worker groups' replicas running."""
        return not self.pending

    def unschedulable(self, container: dict) -> str:
        """The scheduler's reason a pod with this container cannot be placed ("" if it can)."""
        if self.allocatable is None:
            return ""
        requests = container.get("resources", {}).get("requests", {})
        short = [
            k for k, v in requests.items() if quantity_value(str(v)) > quantity_value(str(self.allocatable.get(k, "0")))
        ]
        return f"0/1 nodes are available: 1 Insufficient {', '.join(sorted(short))}." if short else ""

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _pod(self, name: str, container: dict) -> Pod:
        resources = container.get("resources", {})
        cpu = {f"{k}.cpu": str(quantity_value(v["cpu"])) for k, v in resources.items() if "cpu" in v}
        resolve = {"status.podIP": "127.0.0.1", "metadata.name": f"{self.name}-{name}", **cpu}
        env = {**env_of(container, resolve), **self.base_env}  # real values (the manifest redacts secrets)
        return Pod.create(f"{self.name}-{name}", self.pods_dir, env, self.app_files)

    def _ray_start(self, pod: Pod, params: dict[str, str], local: dict[str, str], head: bool = False) -> None:
        """`ray start` with the params KubeRay derives, and `local` over them: what one machine cannot share between
        its "pods" (IP, ports, temp dir) or hold (the object store)."""
        node_temp = self.temp_dir / f"node{len(self.pods)}"
        local = {
            **local,
            "temp-dir": str(node_temp),
            "node-ip-address": "127.0.0.1",
            "dashboard-agent-listen-port": str(free_port()),
            "dashboard-agent-grpc-port": str(free_port()),
            "runtime-env-agent-port": str(free_port()),
            "metrics-export-port": str(free_port()),
            "object-store-memory": "200000000",
        }
        args = (["--head"] if head else []) + kuberay_flags({**params, **local})
        self.start_commands[pod.name] = args
        log = open(pod.root / "ray-start.log", "wb")
        # RAY_ADDRESS: a pod holds one Ray instance; on this shared machine a node must be told which is its own.
        env = {**pod.env, "RAY_TMPDIR": str(node_temp), "RAY_ADDRESS": f"127.0.0.1:{self.gcs_port}"}
        proc = subprocess.Popen(
            [str(BIN / "ray"), "start", *args],
            cwd=pod.app,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        self.pods.append(pod)

    def start(self, timeout: float = 120) -> None:
        head_spec = self.spec["headGroupSpec"]
        (head_container,) = head_spec["template"]["spec"]["containers"]
        head = self._pod("head", head_container)
        params = kuberay_start_params(head_spec["rayStartParams"], True, head_container.get("resources", {}))
        self._ray_start(
            head,
            params,
            {
                "port": str(self.gcs_port),
                "dashboard-host": "127.0.0.1",
                "dashboard-port": str(self.dashboard_port),
                "ray-client-server-port": str(free_port()),
            },
            head=True,
        )
        self._wait_for_nodes(1, timeout)
        for group in self.spec.get("workerGroupSpecs", []):
            (container,) = group["template"]["spec"]["containers"]
            params = kuberay_start_params(group["rayStartParams"], False, container.get("resources", {}))
            for i in range(int(group.get("replicas", 1))):
                reason = self.unschedulable(container)
                if reason:  # Pending: never started; the cluster never becomes ready
                    self.pending[f"{self.name}-{group['groupName']}-{i}"] = reason
                    continue
                pod = self._pod(f"{group['groupName']}-{i}", container)
                self._ray_start(pod, params, {"address": f"127.0.0.1:{self.gcs_port}"})
        self._wait_for_nodes(len(self.pods), timeout)

    def _alive_nodes(self) -> list:
        from ray.util.state import list_nodes

        return [
            n
            for n in list_nodes(address=self.dashboard, timeout=10, raise_on_missing_output=False)
            if n.state == "ALIVE"
        ]

    def _wait_for_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for proc, pod in zip(self.procs, self.pods):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"ray start for {pod.name} exited:\n{(pod.root / 'ray-start.log').read_text()[-3000:]}"
                    )
            try:
                if len(self._alive_nodes()) >= count:
                    return
            except Exception as e:  # the dashboard is still starting
                last = e
            time.sleep(0.5)
        raise TimeoutError(f"{count} Ray nodes did not come up in {timeout} s (last error: {last})")

    def submit(self, submission_id: str, timeout: float = 600) -> tuple[int, str]:
        """What KubeRay's submitter pod runs: `ray job submit ... -- <entrypoint>` in a shell, waiting for the end.

        The shell splits the entrypoint into words (shlex.split here); `ray job submit` joins them back. The one
        rewrite: the image's app dir in the entrypoint becomes the head pod's.
        """
        submitter = Pod.create(
            f"{self.name}-submitter",
            self.pods_dir,
            {**env_of(self.manifest["spec"]["submitterPodTemplate"]["spec"]["containers"][0], {}), **self.base_env},
            self.app_files,
        )
        cmd = submit_command(self.manifest, self.dashboard, submission_id)
        cmd = [str(BIN / "ray"), *(a.replace(IMAGE_APP_DIR, str(self.pods[0].app)) for a in cmd[1:])]
        proc = subprocess.run(
            cmd, cwd=submitter.app, env=submitter.env, capture_output=True, text=True, timeout=timeout
        )
        return proc.returncode, proc.stdout + proc.stderr

    def record(self, run: RayRun, submission_id: str) -> None:
        """Nodes and where each actor and task of the job ran (Ray state API), before teardown."""
        from ray.job_submission import JobSubmissionClient
        from ray.util.state import list_actors, list_nodes, list_tasks

        nodes = list_nodes(address=self.dashboard, detail=True, limit=1000, raise_on_missing_output=False)
        run.nodes = [
            {
                "node_id": n.node_id,
                "is_head": n.is_head_node,
                "CPU": n.resources_total.get("CPU", 0.0),
                "GPU": n.resources_total.get("GPU", 0.0),
                "memory": n.resources_total.get("memory", 0.0),
            }
            for n in nodes
        ]
        run.head_node_id = next(n.node_id for n in nodes if n.is_head_node)
        run.start_commands = dict(self.start_commands)
        job = JobSubmissionClient(self.dashboard).get_job_info(submission_id)
        run.job_status = str(job.status)
        run.driver_node_id = job.driver_node_id or ""
        if job.job_id is None:  # the entrypoint never connected a driver to the cluster
            return
        job_id = job.job_id
        actors = list_actors(
            address=self.dashboard,
            filters=[("job_id", "=", job_id)],
            detail=True,
            limit=10000,
            raise_on_missing_output=False,
        )
        tasks = list_tasks(
            address=self.dashboard,
            filters=[("job_id", "=", job_id)],
            detail=True,
            limit=10000,
            raise_on_missing_output=False,
        )
        run.placements = [
            Placement("actor", a.class_name, a.node_id, float((a.required_resources or {}).get("CPU", 0)))
            for a in actors
            if a.node_id
        ]
        run.placements += [
            Placement("task", t.name, t.node_id, float((t.required_resources or {}).get("CPU", 0)))
            for t in tasks
            if t.node_id and t.type == "NORMAL_TASK"
        ]

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: the `ray start` trees, and anything naming its private temp dir."""
        found: dict[int, psutil.Process] = {}
        for proc in self.procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(proc.pid)
                found[p.pid] = p
                found.update({c.pid: c for c in p.children(recursive=True)})
        marker = str(self.temp_dir)
        for p in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(marker in part for part in (p.info["cmdline"] or [])):
                    found[p.pid] = p
                    found.update({c.pid: c for c in p.children(recursive=True)})
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self, grace: float = 2) -> None:
        """Kill exactly this cluster's processes: SIGTERM, then SIGKILL what is left after `grace` s."""
        procs = self.processes()
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for p in alive:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(alive, timeout=grace)
        for proc in self.procs:
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
        # Keep each node's Ray logs in its pod directory, then drop the temp dirs.
        for i, pod in enumerate(self.pods):
            with contextlib.suppress(OSError):
                shutil.copytree(self.temp_dir / f"node{i}" / "session_latest" / "logs", pod.root / "ray-logs")
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- literals and bindings


def datetime_literal(value: dt.datetime) -> literals_pb2.Literal:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(dt.UTC).replace(tzinfo=None))
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(datetime=ts)))


def python_literals(values: dict, types: dict) -> dict[str, literals_pb2.Literal]:
    """Python values to Flyte literals with flytekit's TypeEngine, as `pyflyte run` would send them."""
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    ctx = FlyteContextManager.current_context()
    out = {}
    for name, value in values.items():
        lit = TypeEngine.to_literal(ctx, value, types[name], TypeEngine.to_literal_type(types[name]))
        out[name] = lit.to_flyte_idl()
    return out


def to_python(literals: literals_pb2.LiteralMap, types: dict) -> dict:
    from flytekit.core.context_manager import FlyteContextManager
    from flytekit.core.type_engine import TypeEngine
    from flytekit.models.literals import LiteralMap

    ctx = FlyteContextManager.current_context()
    return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(literals), python_types=types)


def resolve_attr_path(lit: literals_pb2.Literal, path) -> literals_pb2.Literal:
    """What flytepropeller does with `tuned.best`: follow an attribute path into a literal."""
    keys = [a.string_value if a.HasField("string_value") else a.int_value for a in path]
    while keys and lit.WhichOneof("value") in ("map", "collection"):
        key = keys.pop(0)
        lit = lit.map.literals[key] if lit.HasField("map") else lit.collection.literals[key]
    if not keys:
        return lit
    binary = lit.scalar.binary
    if binary.tag != "msgpack":
        raise NotImplementedError(f"attribute path {keys} into a {lit.WhichOneof('value')} literal")
    value = msgpack.loads(binary.value, strict_map_key=False)
    for key in keys:
        value = value[key]
    return literals_pb2.Literal(
        scalar=literals_pb2.Scalar(binary=literals_pb2.Binary(value=msgpack.dumps(value), tag="msgpack"))
    )


def resolve_binding(
    data: literals_pb2.BindingData, outputs: dict[str, literals_pb2.LiteralMap]
) -> literals_pb2.Literal:
    kind = data.WhichOneof("value")
    if kind == "scalar":
        return literals_pb2.Literal(scalar=data.scalar)
    if kind == "promise":
        lit = outputs[data.promise.node_id].literals[data.promise.var]
        return resolve_attr_path(lit, data.promise.attr_path) if data.promise.attr_path else lit
    if kind == "collection":
        return literals_pb2.Literal(
            collection=literals_pb2.LiteralCollection(
                literals=[resolve_binding(b, outputs) for b in data.collection.bindings]
            )
        )
    if kind == "map":
        return literals_pb2.Literal(
            map=literals_pb2.LiteralMap(literals={k: resolve_binding(b, outputs) for k, b in data.map.bindings.items()})
        )
    raise NotImplementedError(f"binding of kind {kind!r}")


WORKFLOW_INPUTS = {"", "start-node"}  # flytekit names the workflow's inputs node "", propeller "start-node"


def _upstream(node: core_workflow_pb2.Node) -> set[str]:
    deps = set(node.upstream_node_ids)

    def walk(data: literals_pb2.BindingData) -> None:
        kind = data.WhichOneof("value")
        if kind == "promise":
            deps.add(data.promise.node_id)
        elif kind == "collection":
            for b in data.collection.bindings:
                walk(b)
        elif kind == "map":
            for b in data.map.bindings.values():
                walk(b)

    for b in node.inputs:
        walk(b.binding)
    return deps - WORKFLOW_INPUTS


def topological(nodes) -> list[core_workflow_pb2.Node]:
    pending = {n.id: n for n in nodes}
    done: set[str] = set()
    order = []
    while pending:
        ready = [n for n in pending.values() if _upstream(n) <= done]
        if not ready:
            raise ValueError(f"cycle or unknown dependency among nodes {sorted(pending)}")
        for n in ready:
            order.append(n)
            done.add(n.id)
            del pending[n.id]
    return order


# --------------------------------------------------------------------------- the executor (flytepropeller's part)


class TaskFailed(RuntimeError):
    pass


# --------------------------------------------------------------------------- retries: flytepropeller's rule
# Read from flyteorg/flyte: flyteplugins ioutils (error.pb -> ExecutionError: kind = the document's `origin`,
# recoverable = its `kind` RECOVERABLE), flytek8s DemystifyFailure (a pod that failed without error.pb: a retryable
# failure of kind USER), the Ray plugin (a failed RayJob: a retryable SYSTEM failure), the task handler (no outputs.pb:
# retryable), and nodes/executor.go isEligibleForRetry (SYSTEM failures against max-node-retries-system-failures,
# the others against the task's retries + 1 attempts; a non-recoverable error is never retried).

MAX_SYSTEM_RETRIES = 3  # flytepropeller's `node-config.max-node-retries-system-failures` default


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as flytepropeller reads it."""

    recoverable: bool  # error.pb of kind RECOVERABLE, or no error.pb at all (the process died)
    system: bool  # ExecutionError kind SYSTEM: counted against MAX_SYSTEM_RETRIES, not against the task's retries
    code: str
    message: str

    @property
    def summary(self) -> str:
        """The code, the message's last line (a traceback ends with the exception) and the kind, on one line."""
        lines = [line.strip() for line in self.message.splitlines() if line.strip()]
        last = lines[-1] if lines else ""
        last = last if len(last) <= 300 else last[:297] + "..."
        kind = f"{'recoverable' if self.recoverable else 'non-recoverable'} {'system' if self.system else 'user'} error"
        return f"{self.code}: {last} ({kind})"


def read_failure(error_pb: Optional[bytes], task_type: str = "python-task", exited_ok: bool = False) -> Failure:
    """What propeller makes of a failed attempt: its error.pb (an ErrorDocument) if the task wrote one."""
    if error_pb is not None:
        err = errors_pb2.ErrorDocument.FromString(error_pb).error
        return Failure(
            recoverable=err.kind == errors_pb2.ContainerError.RECOVERABLE,
            system=err.origin == execution_pb2.ExecutionError.SYSTEM,
            code=err.code,
            message=err.message,
        )
    if exited_ok:
        return Failure(True, False, "OutputsNotFound", "the task exited without writing outputs.pb or error.pb")
    if task_type == "ray":
        return Failure(True, True, "RayJobFailed", "the Ray job failed without writing error.pb (the driver died)")
    return Failure(
        True, False, "PodFailed", "the container exited non-zero without writing error.pb (the process died)"
    )


@dataclass
class RetryBudget:
    """flytepropeller's isEligibleForRetry for one node: `retries` + 1 attempts for user errors, a separate
    MAX_SYSTEM_RETRIES for system errors, none for a non-recoverable error."""

    retries: int  # the task's `retries`
    max_system_retries: int = MAX_SYSTEM_RETRIES
    attempts: int = 0  # failed attempts so far
    system_failures: int = 0

    def after(self, failure: Failure) -> tuple[bool, str]:
        """Count one failed attempt; whether propeller runs another one, and why."""
        self.attempts += 1
        if not failure.recoverable:
            return False, "non-recoverable, propeller does not retry it"
        if failure.system:
            eligible = self.system_failures < self.max_system_retries
            self.system_failures += 1
            return eligible, (
                f"system failure {self.system_failures} (propeller retries up to {self.max_system_retries})"
                + ("" if eligible else ": system retries exhausted")
            )
        used, allowed = self.attempts - self.system_failures, self.retries + 1
        return used < allowed, (
            f"user-error attempt {used} of {allowed} (retries={self.retries})"
            + ("" if used < allowed else ": retries exhausted")
        )


@dataclass
class Attempt:
    """One attempt of a node: its FLYTE_ATTEMPT_NUMBER, and for a failed one why it was or was not retried."""

    number: int
    log: Optional[Path]
    failure: Optional[Failure] = None  # None: it succeeded
    retried: bool = False
    reason: str = ""


@dataclass
class NodeRun:
    node_id: str
    task: str
    task_type: str
    inputs: str  # inputs.pb URI
    output_prefix: str
    raw_prefix: str
    attempts: int = 0
    seconds: float = 0.0
    log: Optional[Path] = None
    ray: Optional[RayRun] = None
    history: list[Attempt] = field(default_factory=list)


@dataclass
class Execution:
    """One emulated execution of a serialized workflow or launch plan."""

    package: Package
    store: BlobStore
    workdir: Path
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)  # (group, key) -> value
    name: str = field(default_factory=lambda: "e" + uuid.uuid4().hex[:12])
    launch_plan: str = ""
    workflow: str = ""
    runs: list[NodeRun] = field(default_factory=list)
    echo: bool = False
    app_files: dict[str, Path] = field(default_factory=dict)  # more files in every pod's app dir (see Pod.create)
    # Called before each attempt of a node starts, with the node (its history: the attempts before, and why each
    # failed and was retried) and the attempt number: tests change the world here, e.g. an S3 outage and its end.
    before_attempt: Optional[Callable[[NodeRun, int], None]] = None
    # Paths every pod sees at the same place, declared to the tasks in FRD_SHARED_PATHS (tasks/remote_checks.py), as
    # a shared volume in a real pod template would be. All emulated pods share this machine's temp dir, where the
    # tests' git remotes live; a path elsewhere (a laptop checkout) stays refused as a cluster would refuse it.
    shared_paths: tuple[str, ...] = (tempfile.gettempdir(),)
    max_system_retries: int = MAX_SYSTEM_RETRIES  # propeller's `max-node-retries-system-failures`
    # What each Kubernetes node offers ({"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0"}); pods requesting more
    # stay Pending. None: every pod fits (the default).
    node_allocatable: Optional[dict[str, str]] = None

    # ----------------------------------------------------------------- entry points

    def run_launch_plan(
        self, name: str, inputs: dict[str, literals_pb2.Literal], kickoff_time: Optional[dt.datetime] = None
    ) -> literals_pb2.LiteralMap:
        """Launch a plan as flyteadmin would: its defaults, then the given inputs, then its fixed inputs."""
        lp = self.package.launch_plans[name]
        literals = {k: p.default for k, p in lp.spec.default_inputs.parameters.items() if p.HasField("default")}
        schedule = lp.spec.entity_metadata.schedule
        if schedule.kickoff_time_input_arg:
            if kickoff_time is None:
                raise ValueError(f"launch plan {name} is scheduled: pass the kickoff time its schedule would")
            literals[schedule.kickoff_time_input_arg] = datetime_literal(kickoff_time)
        for key in inputs:
            if key in lp.spec.fixed_inputs.literals:
                raise ValueError(f"input {key!r} is fixed by launch plan {name}")
        literals.update(inputs)
        literals.update(lp.spec.fixed_inputs.literals)
        self.launch_plan = name
        return self.run_workflow(lp.spec.workflow_id.name, literals)

    def run_task(
        self, task_name: str, inputs: dict[str, literals_pb2.Literal], node_id: str = "n0"
    ) -> literals_pb2.LiteralMap:
        """One task as a node of its own: inputs.pb, the container per attempt, propeller's retries; its outputs."""
        return self._run_task(node_id, task_name, inputs)

    def run_workflow(self, name: str, inputs: dict[str, literals_pb2.Literal]) -> literals_pb2.LiteralMap:
        spec = self.package.workflows[name]
        self.workflow = self.workflow or name
        subs = {s.id.name: s for s in spec.sub_workflows}
        return self._run_template(spec.template, inputs, subs, prefix="")

    # ----------------------------------------------------------------- propeller

    def _run_template(
        self, template, inputs, subs, prefix: str, tasks: Optional[dict] = None
    ) -> literals_pb2.LiteralMap:
        tasks = tasks or {}
        declared = template.interface.inputs.variables
        missing, unknown = [k for k in declared if k not in inputs], [k for k in inputs if k not in declared]
        if missing or unknown:
            raise ValueError(f"workflow {template.id.name}: missing inputs {missing}, unknown inputs {unknown}")
        outputs = {k: literals_pb2.LiteralMap(literals=inputs) for k in WORKFLOW_INPUTS}
        for node in topological(template.nodes):
            node_inputs = {b.var: resolve_binding(b.binding, outputs) for b in node.inputs}
            node_id = f"{prefix}{node.id}"
            if node.HasField("task_node"):
                outputs[node.id] = self._run_task(
                    node_id,
                    node.task_node.reference_id.name,
                    node_inputs,
                    template=tasks.get(node.task_node.reference_id.name),
                    timeout_s=node.metadata.timeout.ToSeconds() or None,
                )
            elif node.HasField("workflow_node") and node.workflow_node.HasField("sub_workflow_ref"):
                sub = subs[node.workflow_node.sub_workflow_ref.name]
                outputs[node.id] = self._run_template(sub, node_inputs, subs, prefix=f"{node_id}-", tasks=tasks)
            else:
                raise NotImplementedError(f"node {node_id}: only task and sub-workflow nodes are emulated")
        return literals_pb2.LiteralMap(literals={b.var: resolve_binding(b.binding, outputs) for b in template.outputs})

    def _base_env(self, task: tasks_pb2.TaskTemplate, node_id: str, attempt: int) -> dict[str, str]:
        env = {
            **image_env(),
            **self.store.pod_env(),
            "FLYTE_INTERNAL_EXECUTION_ID": self.name,
            "FLYTE_INTERNAL_EXECUTION_PROJECT": PROJECT,
            "FLYTE_INTERNAL_EXECUTION_DOMAIN": DOMAIN,
            "FLYTE_INTERNAL_EXECUTION_WORKFLOW": self.workflow,
            "FLYTE_INTERNAL_EXECUTION_LAUNCHPLAN": self.launch_plan,
            "FLYTE_INTERNAL_TASK_PROJECT": PROJECT,
            "FLYTE_INTERNAL_TASK_DOMAIN": DOMAIN,
            "FLYTE_INTERNAL_TASK_NAME": task.id.name,
            "FLYTE_INTERNAL_TASK_VERSION": VERSION,
            "FLYTE_ATTEMPT_NUMBER": str(attempt),
        }
        if self.shared_paths:
            env["FRD_SHARED_PATHS"] = os.pathsep.join(self.shared_paths)
        env.update({e.key: e.value for e in task.container.env})  # `pyflyte ... --env`
        for secret in task.security_context.secrets:  # what Flyte's secret webhook injects
            value = self.secrets.get((secret.group, secret.key))
            if value is not None and secret.env_var:
                env[secret.env_var] = value
        return env

    def _run_task(
        self,
        node_id: str,
        task_name: str,
        inputs: dict[str, literals_pb2.Literal],
        template: Optional[tasks_pb2.TaskTemplate] = None,
        timeout_s: Optional[float] = None,
    ) -> literals_pb2.LiteralMap:
        """`template`: the task as a dynamic job spec gives it (overrides applied), else the registered one.
        `timeout_s`: the node's timeout (propeller's execution deadline), else the task's own."""
        task = template or self.package.tasks[task_name]
        timeout_s = timeout_s or task.metadata.timeout.ToSeconds() or None
        meta = f"metadata/propeller/{PROJECT}-{DOMAIN}-{self.name}/{node_id}/data"
        run = NodeRun(node_id, task_name, task.type, self.store.uri(meta, "inputs.pb"), "", "")
        self.runs.append(run)
        self.store.put(run.inputs, literals_pb2.LiteralMap(literals=inputs).SerializeToString())
        started = time.monotonic()
        budget = RetryBudget(task.metadata.retries.retries, self.max_system_retries)
        for attempt in itertools.count():
            run.attempts = attempt + 1
            run.output_prefix = self.store.uri(meta, str(attempt))
            run.raw_prefix = self.store.uri("data", self.name, f"{node_id}-{attempt}")
            args = fill_template(
                list(task.container.args),
                {
                    "input": run.inputs,
                    "outputPrefix": run.output_prefix,
                    "rawOutputDataPrefix": run.raw_prefix,
                    "checkpointOutputPrefix": f"{run.raw_prefix}/_flytecheckpoints",
                    "prevCheckpointPrefix": "",
                    "remote_package_path": self.fast_archive_uri(),
                },
            )
            pod_name = f"{node_id}-{attempt}"
            if self.before_attempt:
                self.before_attempt(run, attempt)
            try:
                if task.type == "ray":
                    ok = self._run_ray(run, task, args, pod_name, timeout_s)
                else:
                    ok = self._run_pod(run, task, args, pod_name, timeout_s)
                timed_out = False
            except subprocess.TimeoutExpired:  # the job is aborted (the RayJob deleted), the attempt fails
                ok, timed_out = False, True
            outputs_uri = f"{run.output_prefix}/outputs.pb"
            futures_uri = f"{run.output_prefix}/futures.pb"
            if ok and not self.store.exists(outputs_uri) and self.store.exists(futures_uri):
                # A @dynamic task compiled a workflow at run time: propeller runs its nodes, with the tasks as the
                # spec gives them (its overrides applied), and its outputs are the dynamic node's.
                run.history.append(Attempt(attempt, run.log))
                run.seconds = time.monotonic() - started
                spec = dynamic_job_pb2.DynamicJobSpec.FromString(self.store.get(futures_uri))
                result = self._run_dynamic(node_id, spec)
                self.store.put(outputs_uri, result.SerializeToString())  # propeller writes the dynamic node's outputs
                return result
            if ok and self.store.exists(outputs_uri):
                run.history.append(Attempt(attempt, run.log))
                run.seconds = time.monotonic() - started
                if self.echo:
                    detail = (
                        f" (cluster up {run.ray.seconds_start:.1f} s, job {run.ray.seconds_job:.1f} s, "
                        f"down {run.ray.seconds_stop:.1f} s)"
                        if run.ray
                        else ""
                    )
                    print(f"  {node_id} {task_name}: {run.seconds:.1f} s{detail}", flush=True)
                return literals_pb2.LiteralMap.FromString(self.store.get(outputs_uri))
            error_uri = f"{run.output_prefix}/error.pb"
            if timed_out:  # propeller's execution deadline: a retryable user error
                # Flyte's own message; why the pods are Pending shows in their events (printed above, kubectl describe).
                failure = Failure(True, False, "TimeoutExpired", f"task execution timeout [{timeout_s:g}s] expired")
            else:
                failure = read_failure(
                    self.store.get(error_uri) if self.store.exists(error_uri) else None, task.type, ok
                )
            retried, reason = budget.after(failure)
            record = Attempt(attempt, run.log, failure, retried, reason)
            run.history.append(record)
            print(
                f"  {node_id} {task_name}: attempt {attempt} (FLYTE_ATTEMPT_NUMBER={attempt}) failed: {failure.summary}; "
                + (f"retried as attempt {attempt + 1}: " if retried else "not retried: ")
                + reason,
                flush=True,
            )
            if not retried:
                raise TaskFailed(
                    f"node {node_id} ({task_name}) failed after {run.attempts} attempt(s): {failure.summary}\n"
                    f"not retried: {reason}\nerror.pb message (end):\n{failure.message[-2000:]}\n"
                    f"log: {run.log}\n{run.log.read_text()[-4000:] if run.log else ''}"
                )
        raise AssertionError("unreachable")

    def _run_dynamic(self, node_id: str, spec: dynamic_job_pb2.DynamicJobSpec) -> literals_pb2.LiteralMap:
        template = core_workflow_pb2.WorkflowTemplate(nodes=spec.nodes, outputs=spec.outputs)
        tasks = {t.id.name: t for t in spec.tasks}
        outputs: dict[str, literals_pb2.LiteralMap] = {}
        for node in topological(template.nodes):
            node_inputs = {b.var: resolve_binding(b.binding, outputs) for b in node.inputs}
            sub_id = f"{node_id}-0-{node.id}"  # propeller's id for a node of a dynamic node
            if not node.HasField("task_node"):
                raise NotImplementedError(f"node {sub_id}: only task nodes are emulated inside a dynamic node")
            name = node.task_node.reference_id.name
            outputs[node.id] = self._run_task(
                sub_id, name, node_inputs, template=tasks.get(name), timeout_s=node.metadata.timeout.ToSeconds() or None
            )
        return literals_pb2.LiteralMap(literals={b.var: resolve_binding(b.binding, outputs) for b in template.outputs})

    def fast_archive_uri(self) -> str:
        """flytectl's part of fast registration: the code archive uploaded once, its URI in the args."""
        archive = self.package.fast_archive
        if archive is None:
            return ""
        uri = self.store.uri("fast", VERSION, archive.name)
        if not self.store.exists(uri):
            self.store.put(uri, archive.read_bytes())
        return uri

    def _run_pod(self, run: NodeRun, task, args: list[str], pod_name: str, timeout_s: Optional[float] = None) -> bool:
        pod = Pod.create(
            pod_name, self.workdir / "pods", self._base_env(task, run.node_id, run.attempts - 1), self.app_files
        )
        run.log = pod.root / "pod.log"
        with open(run.log, "wb") as log:
            proc = subprocess.run(
                pod.args(args), cwd=pod.app, env=pod.env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout_s or 900
            )
        return proc.returncode == 0

    def pod_spec_env(self, task: tasks_pb2.TaskTemplate, node_id: str, attempt: int) -> dict[str, str]:
        """The env in the task pod's spec as Flyte writes it: not the image's own ENV, not the secrets (the webhook
        injects them at admission); credentials the platform config puts there (the blob store's key) redacted."""
        image = image_env()
        secret_vars = {s.env_var for s in task.security_context.secrets}
        env = {
            k: v for k, v in self._base_env(task, node_id, attempt).items() if k not in image and k not in secret_vars
        }
        return {k: "<redacted>" if re.search(r"SECRET|TOKEN|PASSWORD", k) else v for k, v in env.items()}

    def rayjob(self, task: tasks_pb2.TaskTemplate, args: list[str], node_id: str, attempt: int) -> dict:
        """The RayJob Flyte would create for this attempt (args filled, in-image paths)."""
        name = f"{self.name}-{node_id}-{attempt}"[:47]  # the plugin's GeneratedNameMaxLength
        return rayjob_manifest(task, args, self.pod_spec_env(task, node_id, attempt), name)

    def _run_ray(self, run: NodeRun, task, args: list[str], pod_name: str, timeout_s: Optional[float] = None) -> bool:
        ray = run.ray = RayRun()
        ray.manifest = self.rayjob(task, args, run.node_id, run.attempts - 1)
        import yaml

        (self.workdir / "pods").mkdir(parents=True, exist_ok=True)
        (self.workdir / "pods" / f"{pod_name}-rayjob.yaml").write_text(
            yaml.dump(ray.manifest, Dumper=_plain_dumper(), sort_keys=False)
        )
        t0 = time.monotonic()
        cluster = LocalRayCluster(
            ray.manifest,
            self.workdir / "pods",
            self._base_env(task, run.node_id, run.attempts - 1),
            pod_name,
            self.app_files,
            self.node_allocatable,
        )
        try:
            cluster.start()
            ray.seconds_start = time.monotonic() - t0
            ray.pending_pods = dict(cluster.pending)
            if not cluster.ready:
                # KubeRay submits the job only to a ready cluster (rayjob_controller.go, Initializing); Flyte reports
                # "cluster is creating" until the node's execution deadline: with no timeout the RayJob waits forever.
                for pod, reason in cluster.pending.items():
                    print(f"  {run.node_id} {run.task}: pod {pod} Pending: {reason}", flush=True)
                if not timeout_s:
                    raise RuntimeError(
                        f"{run.node_id}: pods {sorted(cluster.pending)} can never be scheduled and the "
                        "task has no timeout: on Flyte this RayJob would wait forever"
                    )
                time.sleep(max(0.0, timeout_s - (time.monotonic() - t0)))  # the deadline passing is the event here
                raise subprocess.TimeoutExpired("ray job submit", timeout_s)
            submission_id = f"{self.name}-{pod_name}"
            t1 = time.monotonic()
            code, ray.logs = cluster.submit(submission_id, timeout=timeout_s or 600)
            ray.seconds_job = time.monotonic() - t1
            run.log = self.workdir / "pods" / f"{pod_name}-job.log"
            run.log.write_text(ray.logs)
            ray.uploads = [
                (uri, float(mib))
                for uri, mib in re.findall(r"Pushing file package '([^']+)' \(([0-9.]+)MiB\)", ray.logs)
            ]
            ray.upload_warnings = list(
                dict.fromkeys(
                    re.findall(
                        r"(File \S+ is very large \([0-9.]+MiB\)|Package size \([0-9.]+MiB\) exceeds the maximum size of [0-9.]+MiB)",
                        ray.logs,
                    )
                )
            )
            if self.echo or ray.upload_warnings:
                for uri, mib in ray.uploads:
                    print(
                        f"  {run.node_id} {run.task}: the driver uploaded its working_dir as {uri} ({mib:.2f} MiB)",
                        flush=True,
                    )
                for warning in ray.upload_warnings:
                    print(f"  {run.node_id} {run.task}: Ray: {warning}", flush=True)
            cluster.record(ray, submission_id)
        finally:
            t2 = time.monotonic()
            cluster.stop()
            ray.seconds_stop = time.monotonic() - t2
        ray.leftover_pids = [p.pid for p in cluster.processes()]
        return code == 0


# --------------------------------------------------------------------------- command line


def secrets_from_env(env=os.environ) -> dict[tuple[str, str], str]:
    """The project's Flyte secrets, valued from this environment's variables of the same names."""
    from tasks.flyte import secrets

    return {
        (s.group, s.key): env[s.env_var]
        for s in [*secrets.BRIDGE_SECRETS, *secrets.TRAIN_SECRETS]
        if env.get(s.env_var)
    }


def _plain_dumper():
    import yaml

    class PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data):  # each pod template written out in full, no &id001 anchors
            return True

    return PlainDumper


def print_rayjobs(package: Package, out=None, bucket: str = "flyte-emulated") -> list[dict]:
    """Print, as YAML, the RayJob Flyte 1.16 would create for each `ray` task of the package (one attempt, args filled
    with an execution's paths; nothing is run or uploaded), each preceded by the `ray start` KubeRay runs per pod."""
    import yaml

    out = out or sys.stdout
    execution = Execution(package, BlobStore("http://127.0.0.1:9", bucket), Path(tempfile.gettempdir()), name="print")
    manifests = []
    for task_name, task in sorted(package.tasks.items()):
        if task.type != "ray":
            continue
        node_id = task_name.rsplit(".", 1)[-1].replace("_", "-")
        meta = f"metadata/propeller/{PROJECT}-{DOMAIN}-{execution.name}/{node_id}/data"
        raw = execution.store.uri("data", execution.name, f"{node_id}-0")
        archive = package.fast_archive
        args = fill_template(
            list(task.container.args),
            {
                "input": execution.store.uri(meta, "inputs.pb"),
                "outputPrefix": execution.store.uri(meta, "0"),
                "rawOutputDataPrefix": raw,
                "checkpointOutputPrefix": f"{raw}/_flytecheckpoints",
                "prevCheckpointPrefix": "",
                "remote_package_path": execution.store.uri("fast", VERSION, archive.name) if archive else "",
            },
        )
        manifest = execution.rayjob(task, args, node_id, 0)
        manifests.append(manifest)
        out.write(
            f"---\n# {task_name}: the RayJob the Flyte Ray plugin creates (one attempt).\n"
            "# KubeRay then starts each pod with:\n"
        )
        for pod, command in node_commands(manifest).items():
            out.write(f"#   {pod}: {command}\n")
        out.write(yaml.dump(manifest, Dumper=_plain_dumper(), sort_keys=False))
    return manifests


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo-url", default="", help="the DVC repo (git URL) to commit to; needs a DVC remote")
    parser.add_argument(
        "--print-rayjob",
        action="store_true",
        help="print the RayJob manifest (YAML) emulated for each Ray task of the package; run nothing",
    )
    parser.add_argument(
        "--package", default="", help="a `pyflyte package` archive to use (default: package the project)"
    )
    parser.add_argument("--launch-plan", default="nightly_retrain")
    parser.add_argument("--kickoff-time", default="", help="ISO time for a scheduled plan (default: now)")
    parser.add_argument(
        "--inputs",
        default='{"tune": {"num_samples": 2, "max_epochs": 1}, "train": {"epochs": 2, "num_workers": 2}}',
        help='JSON launch inputs, e.g. add "problem": "diabetes" or "train_cluster": {"workers": 3}',
    )
    parser.add_argument("--s3-endpoint", default="", help="S3 endpoint of the blob store (default: start moto_server)")
    parser.add_argument("--bucket", default="flyte-emulated")
    parser.add_argument("--workdir", default="", help="where pods and logs go (default: a temp dir)")
    opts = parser.parse_args(argv)

    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="emulate-remote-"))
    if opts.print_rayjob:
        env = {
            **os.environ,
            "HOME": str(workdir / "home"),
            **({"EXPERIMENTS_REPO_URL": opts.repo_url} if opts.repo_url else {}),
        }
        archive = (
            Path(opts.package)
            if opts.package
            else build_package(workdir / "package.tgz", "localhost:30000/flyte-ray-dvc:emulated", env=env)
        )
        print_rayjobs(Package.load(archive, workdir / "package"), bucket=opts.bucket)
        return 0
    if not opts.repo_url:
        parser.error("--repo-url is required to run (not with --print-rayjob)")
    moto = None
    endpoint = opts.s3_endpoint
    if not endpoint:
        port = free_port()
        moto = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = f"http://127.0.0.1:{port}"
        time.sleep(1.5)
    try:
        store = BlobStore(endpoint, opts.bucket)
        with contextlib.suppress(Exception):
            store.client.create_bucket(Bucket=opts.bucket)
        env = {**os.environ, "EXPERIMENTS_REPO_URL": opts.repo_url, "HOME": str(workdir / "home")}
        archive = build_package(workdir / "package.tgz", "localhost:30000/flyte-ray-dvc:emulated", env=env)
        package = Package.load(archive, workdir / "package")
        from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings

        given = json.loads(opts.inputs)
        types = {
            "tune": TuneSettings,
            "train": TrainSettings,
            "tune_cluster": TuneCluster,
            "train_cluster": TrainCluster,
        }
        values = {k: types[k](**v) if k in types else v for k, v in given.items()}
        literals = python_literals(values, {**types, **{k: type(v) for k, v in values.items() if k not in types}})
        kickoff = dt.datetime.fromisoformat(opts.kickoff_time) if opts.kickoff_time else dt.datetime.now(dt.UTC)
        execution = Execution(package, store, workdir, secrets=secrets_from_env(), echo=True)
        print(f"execution {execution.name}: launch plan {opts.launch_plan}, pods and logs in {workdir}", flush=True)
        literals_out = execution.run_launch_plan(opts.launch_plan, literals, kickoff_time=kickoff)
        from workflows.tune_train import TuneTrainOutputs

        out = TuneTrainOutputs(**to_python(literals_out, typing.get_type_hints(TuneTrainOutputs)))
        exp, trained = out.experiment, out.trained
        print(
            f"experiment {exp.name} ({exp.commit[:8]}) in {exp.repo}: data pushed {exp.data_pushed}, "
            f"ref pushed {exp.ref_pushed}; {exp.decision}; model {trained.model.remote_source}"
        )
        return 0
    finally:
        if moto:
            moto.terminate()
            moto.wait(10)


if __name__ == "__main__":
    sys.exit(main())
