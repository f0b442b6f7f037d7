"""The RayJob the Flyte Ray plugin builds for a `ray` task, and what KubeRay makes of it: no process is started here.

`rayjob_manifest`: head, worker and submitter pods copied from the task pod, the groups' pod specs merged on,
`include-dashboard`, `dashboard-host`, `node-ip-address`, `disable-usage-stats` added to start params that lack them,
the container args joined as the entrypoint, `runtimeEnvYAML` passed through. Then what KubeRay runs in each pod
(`kuberay_start_params`: `num-cpus`, `memory`, `num-gpus` from the container limits when absent, `--block`, its flag
syntax: `kuberay_flags`, `node_commands`) and in the submitter pod (`submit_command`). `emulator.raycluster` runs it.

Read from flyteorg/flyte v1.16.8 flyteplugins/go/tasks/plugins/k8s/ray/ray.go and config.go (BuildResource,
constructRayJob, build{Head,Worker,Submitter}PodTemplate, mergeCustomPodSpec), flytek8s MergeOverlayPodSpecOntoBase
and utils/secrets/marshaler.go; KubeRay ray-operator v1.5.1 (the version Flyte 1.16.8 pins)
controllers/ray/common/pod.go (setMissingRayStartParams, generateRayStartCommand, convertParamMap) and job.go
(BuildJobSubmitCommand).
"""

from __future__ import annotations

import json
import math
import shlex

from flyteidl.core import tasks_pb2
from google.protobuf.json_format import MessageToDict
from kubernetes.utils import parse_quantity

from emulator.packaging import DOMAIN, PROJECT

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


def quantity_value(q: str) -> int:
    """A Kubernetes quantity as KubeRay reads it (`Quantity.Value()`: rounded up to an integer)."""
    try:
        value = parse_quantity(str(q).strip())
    except ValueError as e:
        raise ValueError(f"not a Kubernetes quantity: {q!r}") from e
    return math.ceil(value)


def flyte_start_params(params: dict | None, head: bool) -> dict[str, str]:
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


def _overlay_pod(pod_spec: dict, k8s_pod: dict | None) -> dict:
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

    def node_pod(container_name: str, extra_env: list[dict], k8s_pod: dict | None, ports: bool = True) -> dict:
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


def ray_entrypoint(args: list[str]) -> str:
    """The RayJob entrypoint as the Flyte Ray plugin builds it: the args joined, empty ones as ''."""
    return " ".join(a if a else "''" for a in args)


def plain_dumper():
    import yaml

    class PlainDumper(yaml.SafeDumper):
        def ignore_aliases(self, data):  # each pod template written out in full, no &id001 anchors
            return True

    return PlainDumper
