"""Transient bridge errors as the exception Flyte retries.

On a cluster, flytekit's entrypoint writes a task's exception to `error.pb`; flytepropeller retries
the task (its `retries=`) only when that error is RECOVERABLE, which for user code means
`flytekit.exceptions.user.FlyteRecoverableException`. Any other exception, a PushError included, is
written NON_RECOVERABLE and the task fails for good. So the bridge's tasks run inside
`recoverable_on_transient()`: a transient error (`dvc_bridge.errors.is_transient`: S3 or git
unreachable or throttled, a push that ran out of retries or lost a ref race) leaves as a
FlyteRecoverableException raised from it, with the same message; wrong input (a missing repo, an
invalid or taken experiment name, a DVC remote that is not configured, refused credentials) leaves
unchanged and is not retried.

    with recoverable_on_transient():
        ref = record_experiment(...)

A retry is safe: the bridge pushes data before the experiment's ref and finds its own experiment by
the execution id, so a retried commit lands exactly once.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

from flytekit.exceptions.user import FlyteRecoverableException

from dvc_bridge.errors import is_transient


def as_recoverable(exc: BaseException) -> FlyteRecoverableException:
    """The FlyteRecoverableException for a transient error: its type and message, nothing added."""
    return FlyteRecoverableException(f"{type(exc).__name__}: {exc}")


@contextmanager
def recoverable_on_transient() -> Iterator[None]:
    """Re-raise a transient bridge error as FlyteRecoverableException (from it); let everything else through."""
    try:
        yield
    except FlyteRecoverableException:
        raise
    except Exception as e:
        if not is_transient(e):
            raise
        raise as_recoverable(e) from e


# Ray's errors for a cluster that went away under the driver: nodes, actors, workers or objects lost.
# Imported lazily: this module is also imported where Ray is not.
_LOST_CLUSTER_ERRORS = (
    "NodeDiedError",
    "ActorDiedError",
    "ActorUnavailableError",
    "WorkerCrashedError",
    "LocalRayletDiedError",
    "ObjectLostError",  # OwnerDiedError, ObjectReconstructionFailedError, ObjectFetchTimedOutError too
    "RaySystemError",
    "RpcError",
)


def lost_cluster(error: BaseException) -> Optional[BaseException]:
    """The Ray error in `error` (its causes, Ray Train's per-worker and controller failures) that says the
    cluster was lost, or None. An actor whose own __init__ raised is the user's error, not a loss."""
    import ray.exceptions
    from ray.train import ControllerError, WorkerGroupError

    kinds = tuple(getattr(ray.exceptions, name) for name in _LOST_CLUSTER_ERRORS)
    seen, todo = set(), [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kinds) and not (isinstance(e, ray.exceptions.RayActorError) and e.actor_init_failed):
            return e
        if isinstance(e, WorkerGroupError):
            todo.extend(e.worker_failures.values())
        if isinstance(e, ControllerError):
            todo.append(e.controller_failure)
        todo.extend([e.__cause__, e.__context__])
    return None


@contextmanager
def recoverable_on_lost_cluster() -> Iterator[None]:
    """Re-raise a Ray driver's error that says its cluster (nodes, actors, objects) was lost as a
    FlyteRecoverableException (from it), so Flyte retries the task (its `retries=`), and the retry resumes from
    the task's storage home (tasks/flyte/home.py). Everything else, wrong input included, leaves unchanged."""
    try:
        yield
    except FlyteRecoverableException:
        raise
    except Exception as e:
        cause = lost_cluster(e)
        if cause is None:
            raise
        first = (str(cause).strip().splitlines() or [""])[0][:300]
        raise FlyteRecoverableException(
            f"the Ray cluster was lost ({type(cause).__name__}: {first}); a retry resumes from the last checkpoint"
        ) from e
