"""KubeRay's part at run time: a real multi-node Ray cluster on this machine, built from a RayJob, and the job run.

One `ray start` per pod with its own directory and the pod template's env; then the submitter's
`ray job submit --address http://127.0.0.1:<dashboard> -- <entrypoint>`, so the task's entrypoint is the job driver
on the head, and flytekit's `ray.init` there uploads the head pod's working directory as Ray does (capped at 512 MiB;
the packages pushed and Ray's size warnings are reported). What one machine cannot share between pods is rewritten:
node IP, ports, temp dirs, the object store size. Before teardown the Ray state API records where the driver and
every actor and task ran; then the emulator kills exactly the processes it started (never `ray stop`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import psutil

from emulator.host import BIN, free_port
from emulator.kuberay import kuberay_flags, kuberay_start_params, plain_dumper, quantity_value, submit_command
from emulator.pods import IMAGE_APP_DIR, Pod, env_of

if TYPE_CHECKING:
    from emulator.run import NodeRun


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
        app_files: dict[str, Path] | None = None,
        allocatable: dict[str, str] | None = None,
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
        # The raylet's registration wait (30 s by default) is a machine's, not a pod's: every "pod" here shares
        # two cores, so a loaded machine gets more time before `ray start` gives up.
        env = {
            "RAY_raylet_start_wait_time_s": "120",
            **pod.env,
            "RAY_TMPDIR": str(node_temp),
            "RAY_ADDRESS": f"127.0.0.1:{self.gcs_port}",
        }
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

    def start(self, timeout: float = 300) -> None:  # a loaded 2-core host needs minutes for 3-4 raylets
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
            for proc, pod in zip(self.procs, self.pods, strict=False):
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


def run_rayjob(
    run: NodeRun,
    pods_dir: Path,
    pod_name: str,
    base_env: dict[str, str],
    submission_id: str,
    timeout_s: float | None = None,
    app_files: dict[str, Path] | None = None,
    allocatable: dict[str, str] | None = None,
    echo: bool = False,
    while_running: Callable[[LocalRayCluster], Callable[[], bool]] | None = None,
) -> bool:
    """One attempt of a `ray` task as KubeRay runs its RayJob (`run.ray.manifest`): the manifest written beside the
    pods, the cluster started (see LocalRayCluster for `base_env`, `app_files`, `allocatable`), the job submitted, where
    it ran recorded, the cluster torn down. Fills `run.ray` and `run.log`; whether the job succeeded. A cluster that
    never becomes ready fails the attempt at the execution deadline (subprocess.TimeoutExpired). `while_running` is
    called once the cluster is up and returns what to call when the job has ended, which says whether the cluster
    was lost meanwhile (the emulator's `--lose-cluster`: then there is no cluster left to ask where things ran)."""
    import yaml

    ray = run.ray
    pods_dir.mkdir(parents=True, exist_ok=True)
    (pods_dir / f"{pod_name}-rayjob.yaml").write_text(yaml.dump(ray.manifest, Dumper=plain_dumper(), sort_keys=False))
    t0 = time.monotonic()
    cluster = LocalRayCluster(ray.manifest, pods_dir, base_env, pod_name, app_files, allocatable)
    try:
        cluster.start()
        ray.seconds_start = time.monotonic() - t0
        ray.pending_pods = dict(cluster.pending)
        if not cluster.ready:
            _wait_for_the_deadline(run, cluster, t0, timeout_s)
        t1 = time.monotonic()
        done = while_running(cluster) if while_running else None
        try:
            code, ray.logs = cluster.submit(submission_id, timeout=timeout_s or 600)
        finally:
            lost = done() if done else False
        ray.seconds_job = time.monotonic() - t1
        run.log = pods_dir / f"{pod_name}-job.log"
        run.log.write_text(ray.logs)
        _report_uploads(run, echo)
        if not lost:
            cluster.record(ray, submission_id)
    finally:
        t2 = time.monotonic()
        cluster.stop()
        ray.seconds_stop = time.monotonic() - t2
    ray.leftover_pids = [p.pid for p in cluster.processes()]
    return code == 0


def _wait_for_the_deadline(run: NodeRun, cluster: LocalRayCluster, t0: float, timeout_s: float | None) -> NoReturn:
    """A cluster with pods that can never be scheduled. KubeRay submits the job only to a ready cluster
    (rayjob_controller.go, Initializing); Flyte reports "cluster is creating" until the node's execution deadline:
    with no timeout the RayJob waits forever."""
    for pod, reason in cluster.pending.items():
        print(f"  {run.node_id} {run.task}: pod {pod} Pending: {reason}", flush=True)
    if not timeout_s:
        raise RuntimeError(
            f"{run.node_id}: pods {sorted(cluster.pending)} can never be scheduled and the "
            "task has no timeout: on Flyte this RayJob would wait forever"
        )
    time.sleep(max(0.0, timeout_s - (time.monotonic() - t0)))  # the deadline passing is the event here
    raise subprocess.TimeoutExpired("ray job submit", timeout_s)


def _report_uploads(run: NodeRun, echo: bool) -> None:
    """The packages the driver pushed (its working_dir) and Ray's size warnings, read from the job's logs; printed
    when `echo`, and always when Ray warned."""
    ray = run.ray
    ray.uploads = [
        (uri, float(mib)) for uri, mib in re.findall(r"Pushing file package '([^']+)' \(([0-9.]+)MiB\)", ray.logs)
    ]
    ray.upload_warnings = list(
        dict.fromkeys(
            re.findall(
                r"(File \S+ is very large \([0-9.]+MiB\)|Package size \([0-9.]+MiB\) exceeds the maximum size of [0-9.]+MiB)",
                ray.logs,
            )
        )
    )
    if echo or ray.upload_warnings:
        for uri, mib in ray.uploads:
            print(
                f"  {run.node_id} {run.task}: the driver uploaded its working_dir as {uri} ({mib:.2f} MiB)", flush=True
            )
        for warning in ray.upload_warnings:
            print(f"  {run.node_id} {run.task}: Ray: {warning}", flush=True)
