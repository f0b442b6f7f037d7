"""The bridge's errors: one base class, specific subclasses with readable messages.

Each error is either **transient** (something outside the run's inputs failed for now: the S3
endpoint or the git server unreachable or timing out, S3 throttling, a push that lost a race for a
ref; the same run, retried later, may succeed) or **not** (wrong input: a missing or non-DVC repo,
an invalid experiment name, a name another run took, a DVC remote that is not configured, a bucket
that does not exist, credentials that are refused; retrying changes nothing). `is_transient`
decides; `tasks.flyte.recoverable` turns a transient error into the exception Flyte retries.
No Flyte here: this is the pure layer.
"""

from __future__ import annotations

import errno
from typing import Iterator


class BridgeError(RuntimeError):
    """The experiment could not be recorded; the message says why and what to change."""

    transient = False  # True: the same run, retried later, may succeed (see is_transient)


class TransientError(BridgeError):
    """Something the run depends on failed for now (unreachable, throttled, a ref race): retrying may succeed."""

    transient = True


class TargetError(BridgeError):
    """The target repo is missing, unreachable, or not a DVC repo with this project's layout.

    Wrong input, except when the cause is the git server being unreachable (see is_transient)."""


class RemoteError(BridgeError):
    """The DVC remote is missing or unreachable.

    Missing (not configured, no such bucket) is wrong input; unreachable is transient (see is_transient)."""


class ExperimentExistsError(BridgeError):
    """An experiment of that name, from another run, is already in the target repo. Never transient."""


class RegistryError(BridgeError):
    """A model registry request that cannot be met: a stage the repo's .gto does not allow, an artifact, version or
    stage that does not exist (the message lists those that do). Never transient."""


class PushError(TransientError):
    """Pushing data or refs failed after retries. Transient unless the push was refused (credentials, no bucket)."""


# --------------------------------------------------------------------------- what a cause says

# Class names (anywhere in an exception's MRO) of network failures: Python's ConnectionError and
# TimeoutError, botocore's ConnectionError family (EndpointConnectionError, ConnectTimeoutError,
# ReadTimeoutError, ConnectionClosedError), aiohttp's (s3fs) ClientConnectionError and ServerTimeoutError.
_NETWORK_CLASSES = {
    "ConnectionError",
    "TimeoutError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ClientConnectionError",
    "ServerTimeoutError",
    "EndpointConnectionError",
}
# OSError numbers of a busy or unreachable server; s3fs turns S3's SlowDown / 503 into EBUSY, 500 into EREMOTEIO.
_NETWORK_ERRNOS = {
    errno.EBUSY,
    errno.EREMOTEIO,
    errno.ETIMEDOUT,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.EHOSTDOWN,
}
# S3 error codes and HTTP statuses that mean "try again later".
_RETRY_LATER_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "RequestTimeout",
}
_RETRY_LATER_STATUSES = {429, 500, 502, 503, 504}
# S3 error codes that refuse the request for good.
_REFUSED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "NoSuchBucket", "AllAccessDisabled"}
# git's own words (stderr, in GitError messages) for a server it could not reach or that failed for now...
_GIT_NETWORK_WORDS = (
    "could not resolve host",
    "failed to connect",
    "connection refused",
    "connection timed out",
    "timed out",
    "connection reset",
    "returned error: 5",
    "returned error: 429",
    "rpc failed",
    "the remote end hung up unexpectedly",
    "early eof",
    "ssh: connect to host",
    # ...and for a ref another push moved meanwhile (a race: the retry sees the new state)
    "cannot lock ref",
    "failed to update ref",
    "stale info",
    "fetch first",
    "non-fast-forward",
)
# ...and for a refusal that retrying does not change.
_GIT_REFUSED_WORDS = (
    "authentication failed",
    "permission denied",
    "returned error: 401",
    "returned error: 403",
    "returned error: 404",
    "not found",
    "does not appear to be a git repository",
    "does not exist",
)


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from (`__cause__`, else an unsuppressed `__context__`), in order."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _s3_response(exc: BaseException) -> tuple[str, int]:
    """(error code, HTTP status) of a botocore ClientError, else ("", 0)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", 0
    return str(response.get("Error", {}).get("Code", "")), int(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
    )


def _is_git_error(exc: BaseException) -> bool:
    return "GitError" in _names(exc)  # dvc_bridge.gitops.GitError (gitops imports this module, not the reverse)


def _unreachable(exc: BaseException) -> bool:
    """The exception itself says: the server could not be reached, timed out, or asked to retry later."""
    if _names(exc) & _NETWORK_CLASSES:
        return True
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    code, status = _s3_response(exc)
    if code in _RETRY_LATER_CODES or status in _RETRY_LATER_STATUSES:
        return True
    return _is_git_error(exc) and any(w in str(exc).lower() for w in _GIT_NETWORK_WORDS)


def _refused(exc: BaseException) -> bool:
    """The exception itself says: the request was refused for good (credentials, permissions, nothing there)."""
    if isinstance(exc, (PermissionError, FileNotFoundError)) or "NoCredentialsError" in _names(exc):
        return True
    code, status = _s3_response(exc)
    if code in _REFUSED_CODES or status in (401, 403, 404):
        return True
    return _is_git_error(exc) and any(w in str(exc).lower() for w in _GIT_REFUSED_WORDS)


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same run later may succeed.

    * a refusal anywhere in the causes (credentials, permissions, no such bucket or repo): no;
    * a TransientError (PushError): yes, the bridge's own retries ran out against something that failed for now;
    * a TargetError, RemoteError or GitError: yes only if a cause says the server was unreachable, timed out or
      throttled (a typo'd endpoint looks the same as a down one; retrying it costs seconds);
    * ExperimentExistsError and anything else (wrong input, a bug): no.
    """
    chain = list(causes(exc))
    if any(_refused(c) for c in chain):
        return False
    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, (TargetError, RemoteError)) or _is_git_error(exc):
        return any(_unreachable(c) for c in chain)
    return False
