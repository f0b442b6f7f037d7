"""flytepropeller's rules: a workflow's nodes in dependency order, each node's input bindings resolved from upstream
outputs (attribute paths included), and which failed attempts are retried.

A failed attempt is retried by propeller's rule (`RetryBudget`): only a RECOVERABLE error document (flytekit writes a
user exception as NON_RECOVERABLE unless it is a FlyteRecoverableException), or an attempt that died without one;
user errors count against the task's `retries`, system errors against propeller's own budget of 3.

Read from flyteorg/flyte: flyteplugins ioutils (error.pb -> ExecutionError: kind = the document's `origin`,
recoverable = its `kind` RECOVERABLE), flytek8s DemystifyFailure (a pod that failed without error.pb: a retryable
failure of kind USER), the Ray plugin (a failed RayJob: a retryable SYSTEM failure), the task handler (no outputs.pb:
retryable), and nodes/executor.go isEligibleForRetry (SYSTEM failures against max-node-retries-system-failures,
the others against the task's retries + 1 attempts; a non-recoverable error is never retried).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgpack
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2
from flyteidl.core import workflow_pb2 as core_workflow_pb2

# --------------------------------------------------------------------------- bindings and node order


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


# --------------------------------------------------------------------------- retries


class TaskFailed(RuntimeError):
    """A node failed and propeller does not retry it: the execution fails."""


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


def read_failure(error_pb: bytes | None, task_type: str = "python-task", exited_ok: bool = False) -> Failure:
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
