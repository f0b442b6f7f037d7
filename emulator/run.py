"""The run itself: an execution of a serialized workflow, launch plan or task, node by node, attempt by attempt.

flytepropeller's part: walks the workflow's nodes (`emulator.propeller`), writes each node's `inputs.pb`, fills the
container template (`{{.input}}`, `{{.outputPrefix}}`, ...), runs each attempt as a pod (`emulator.pods`) or, for a
`ray` task, as the RayJob Flyte's plugin creates (`emulator.kuberay`, run by `emulator.raycluster`), and reads
`outputs.pb` / `error.pb` back, retrying by propeller's rule. Every path is in S3 (`emulator.blobstore`).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flyteidl.core import dynamic_job_pb2, literals_pb2, tasks_pb2
from flyteidl.core import workflow_pb2 as core_workflow_pb2

from emulator.blobstore import BlobStore
from emulator.chaos import ClusterLoss, Watch
from emulator.kuberay import rayjob_manifest
from emulator.literals import datetime_literal
from emulator.packaging import DOMAIN, PROJECT, VERSION, Package, renders_as_json
from emulator.pods import Pod, fill_template, image_env
from emulator.propeller import (
    MAX_SYSTEM_RETRIES,
    WORKFLOW_INPUTS,
    Failure,
    RetryBudget,
    TaskFailed,
    read_failure,
    resolve_binding,
    topological,
)
from emulator.raycluster import RayRun, run_rayjob


@dataclass
class Attempt:
    """One attempt of a node: its FLYTE_ATTEMPT_NUMBER, and for a failed one why it was or was not retried."""

    number: int
    log: Path | None
    failure: Failure | None = None  # None: it succeeded
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
    log: Path | None = None
    ray: RayRun | None = None
    history: list[Attempt] = field(default_factory=list)
    lost_cluster_at: int | None = None  # the progress at which --lose-cluster killed its first attempt's cluster


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
    before_attempt: Callable[[NodeRun, int], None] | None = None
    # Paths every pod sees at the same place, declared to the tasks in FRD_SHARED_PATHS (tasks/remote_checks.py), as
    # a shared volume in a real pod template would be. All emulated pods share this machine's temp dir, where the
    # tests' git remotes live; a path elsewhere (a laptop checkout) stays refused as a cluster would refuse it.
    shared_paths: tuple[str, ...] = (tempfile.gettempdir(),)
    max_system_retries: int = MAX_SYSTEM_RETRIES  # propeller's `max-node-retries-system-failures`
    # What each Kubernetes node offers ({"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "0"}); pods requesting more
    # stay Pending. None: every pod fits (the default).
    node_allocatable: dict[str, str] | None = None
    # Whole clusters to lose, as a spot reclaim would (`--lose-cluster train_model:2`, emulator.chaos).
    lose_clusters: tuple[ClusterLoss, ...] = ()

    # ----------------------------------------------------------------- entry points

    def run_launch_plan(
        self, name: str, inputs: dict[str, literals_pb2.Literal], kickoff_time: dt.datetime | None = None
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

    def _run_template(self, template, inputs, subs, prefix: str, tasks: dict | None = None) -> literals_pb2.LiteralMap:
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

    def fast_archive_uri(self) -> str:
        """flytectl's part of fast registration: the code archive uploaded once, its URI in the args."""
        archive = self.package.fast_archive
        if archive is None:
            return ""
        uri = self.store.uri("fast", VERSION, archive.name)
        if not self.store.exists(uri):
            self.store.put(uri, archive.read_bytes())
        return uri

    # ----------------------------------------------------------------- one node: its attempts and propeller's retries

    def _run_task(
        self,
        node_id: str,
        task_name: str,
        inputs: dict[str, literals_pb2.Literal],
        template: tasks_pb2.TaskTemplate | None = None,
        timeout_s: float | None = None,
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
            ok, timed_out = self._attempt(run, task, meta, attempt, timeout_s)
            outputs_uri = f"{run.output_prefix}/outputs.pb"
            futures_uri = f"{run.output_prefix}/futures.pb"
            if ok and not self.store.exists(outputs_uri) and self.store.exists(futures_uri):
                return self._dynamic_node(run, attempt, started, futures_uri, outputs_uri)
            if ok and self.store.exists(outputs_uri):
                return self._succeeded(run, attempt, started, outputs_uri)
            self._retry_or_fail(run, attempt, budget, self._failure(run, task, ok, timed_out, timeout_s))
        raise AssertionError("unreachable")

    def _attempt(
        self, run: NodeRun, task: tasks_pb2.TaskTemplate, meta: str, attempt: int, timeout_s: float | None
    ) -> tuple[bool, bool]:
        """One attempt of a node: its paths, the container args filled, its pod (or RayJob) run. (exited 0, timed out)"""
        run.attempts = attempt + 1
        run.output_prefix = self.store.uri(meta, str(attempt))
        run.raw_prefix = self._raw_prefix(run, attempt)
        args = fill_template(
            list(task.container.args),
            {
                "input": run.inputs,
                "outputPrefix": run.output_prefix,
                "rawOutputDataPrefix": run.raw_prefix,
                "checkpointOutputPrefix": f"{run.raw_prefix}/_flytecheckpoints",
                # propeller passes the previous attempt's checkpoint prefix (a first attempt: none)
                "prevCheckpointPrefix": f"{self._raw_prefix(run, attempt - 1)}/_flytecheckpoints" if attempt else "",
                "remote_package_path": self.fast_archive_uri(),
            },
        )
        pod_name = f"{run.node_id}-{attempt}"
        if self.before_attempt:
            self.before_attempt(run, attempt)
        try:
            if task.type == "ray":
                ok = self._run_ray(run, task, args, pod_name, timeout_s)
            else:
                ok = self._run_pod(run, task, args, pod_name, timeout_s)
        except subprocess.TimeoutExpired:  # the job is aborted (the RayJob deleted), the attempt fails
            return False, True
        return ok, False

    def _raw_prefix(self, run: NodeRun, attempt: int) -> str:
        """An attempt's raw-output prefix: new for every attempt, as propeller makes it."""
        return self.store.uri("data", self.name, f"{run.node_id}-{attempt}")

    def _losing(self, run: NodeRun):
        """`while_running` for run_rayjob: the cluster loss asked for this task's first attempt, if any."""
        loss = next((x for x in self.lose_clusters if x.matches(run.task)), None)
        if loss is None or run.attempts > 1:
            return None

        def watch(cluster):
            w = Watch(loss, self.store, self.store.uri("data", self.name, f"{run.node_id}-"), cluster.processes)
            w.start()

            def done() -> bool:
                w.stop()
                run.lost_cluster_at = w.lost_at
                return w.lost_at is not None

            return done

        return watch

    def _run_pod(self, run: NodeRun, task, args: list[str], pod_name: str, timeout_s: float | None = None) -> bool:
        pod = Pod.create(
            pod_name, self.workdir / "pods", self._base_env(task, run.node_id, run.attempts - 1), self.app_files
        )
        run.log = pod.root / "pod.log"
        return pod.run(args, run.log, timeout_s)

    def _run_ray(self, run: NodeRun, task, args: list[str], pod_name: str, timeout_s: float | None = None) -> bool:
        run.ray = RayRun()
        run.ray.manifest = self.rayjob(task, args, run.node_id, run.attempts - 1)
        return run_rayjob(
            run,
            self.workdir / "pods",
            pod_name,
            self._base_env(task, run.node_id, run.attempts - 1),
            f"{self.name}-{pod_name}",
            timeout_s,
            app_files=self.app_files,
            allocatable=self.node_allocatable,
            echo=self.echo,
            while_running=self._losing(run),
        )

    def _succeeded(self, run: NodeRun, attempt: int, started: float, outputs_uri: str) -> literals_pb2.LiteralMap:
        run.history.append(Attempt(attempt, run.log))
        run.seconds = time.monotonic() - started
        if self.echo:
            detail = (
                f" (cluster up {run.ray.seconds_start:.1f} s, job {run.ray.seconds_job:.1f} s, "
                f"down {run.ray.seconds_stop:.1f} s)"
                if run.ray
                else ""
            )
            print(f"  {run.node_id} {run.task}: {run.seconds:.1f} s{detail}", flush=True)
        return literals_pb2.LiteralMap.FromString(self.store.get(outputs_uri))

    def _failure(
        self, run: NodeRun, task: tasks_pb2.TaskTemplate, ok: bool, timed_out: bool, timeout_s: float | None
    ) -> Failure:
        """What propeller makes of the attempt that just failed."""
        error_uri = f"{run.output_prefix}/error.pb"
        if timed_out:  # propeller's execution deadline: a retryable user error
            # Flyte's own message; why the pods are Pending shows in their events (printed above, kubectl describe).
            return Failure(True, False, "TimeoutExpired", f"task execution timeout [{timeout_s:g}s] expired")
        return read_failure(self.store.get(error_uri) if self.store.exists(error_uri) else None, task.type, ok)

    def _retry_or_fail(self, run: NodeRun, attempt: int, budget: RetryBudget, failure: Failure) -> None:
        """Record a failed attempt; return if propeller retries it, else raise TaskFailed."""
        retried, reason = budget.after(failure)
        record = Attempt(attempt, run.log, failure, retried, reason)
        run.history.append(record)
        print(
            f"  {run.node_id} {run.task}: attempt {attempt} (FLYTE_ATTEMPT_NUMBER={attempt}) failed: {failure.summary}; "
            + (f"retried as attempt {attempt + 1}: " if retried else "not retried: ")
            + reason,
            flush=True,
        )
        if not retried:
            raise TaskFailed(
                f"node {run.node_id} ({run.task}) failed after {run.attempts} attempt(s): {failure.summary}\n"
                f"not retried: {reason}\nerror.pb message (end):\n{failure.message[-2000:]}\n"
                f"log: {run.log}\n{run.log.read_text()[-4000:] if run.log else ''}"
            )

    # ----------------------------------------------------------------- a dynamic node

    def _dynamic_node(
        self, run: NodeRun, attempt: int, started: float, futures_uri: str, outputs_uri: str
    ) -> literals_pb2.LiteralMap:
        """A @dynamic task compiled a workflow at run time: propeller runs its nodes, with the tasks as the spec gives
        them (its overrides applied), and its outputs are the dynamic node's."""
        run.history.append(Attempt(attempt, run.log))
        run.seconds = time.monotonic() - started
        spec = dynamic_job_pb2.DynamicJobSpec.FromString(self.store.get(futures_uri))
        renders_as_json(spec, f"the dynamic job of node {run.node_id}")
        result = self._run_dynamic(run.node_id, spec)
        self.store.put(outputs_uri, result.SerializeToString())  # propeller writes the dynamic node's outputs
        return result

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
