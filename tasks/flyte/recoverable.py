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
from typing import Iterator

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
