"""One storage home per task across its attempts, found through Flyte's intra-task checkpoint.

Each attempt of a Flyte task gets a new raw-output prefix, so Ray storage put under it would be
invisible to the next attempt. Instead the first attempt picks a home (under its own raw-output
prefix) and writes it into its checkpoint (`flytekit.current_context().checkpoint`, written to
`<raw>/_flytecheckpoints`); every later attempt reads the previous attempt's checkpoint (propeller
passes it as `--prev-checkpoint`; recovery mode passes the failed execution's), uses the same home
and writes it into its own checkpoint again, so attempt N+2 finds it through attempt N+1. A RayJob
that KubeRay re-submits within one attempt keeps that attempt's raw-output prefix, hence its home.

Ray Train and Ray Tune resume from what they find in the home (tasks/ray_glue/train.py, resume.py).

Locally (`pyflyte run`) the checkpoint has no source: every run is a first attempt with a new home
(a fresh directory under the process's raw-output prefix, which all local tasks and runs share), so a
local rerun starts from nothing; Flyte's local cache returns a finished task's output without running it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Optional

import flytekit
from flytekit.core.checkpointer import Checkpoint
from flytekit.exceptions.user import FlyteDataNotFoundException

log = logging.getLogger(__name__)

FORMAT = "flyte-ray-dvc/storage-home/1"


class HomeError(RuntimeError):
    """The previous attempt's checkpoint holds something that is not a storage home."""


@dataclass(frozen=True)
class StorageHome:
    uri: str  # the prefix under which the task's Ray storage lives, the same in every attempt
    resumed: bool  # True when found through a previous attempt's (or a recovered execution's) checkpoint

    def encode(self) -> bytes:
        return json.dumps({"format": FORMAT, "home": self.uri}).encode()

    @classmethod
    def decode(cls, data: bytes) -> StorageHome:
        try:
            doc = json.loads(data)
            assert doc["format"] == FORMAT and isinstance(doc["home"], str) and doc["home"]
        except (ValueError, KeyError, TypeError, AssertionError):
            raise HomeError(
                f"the previous attempt's Flyte checkpoint holds {data[:80]!r}, not a storage home ({FORMAT}): "
                "it was written by other code; run the task as a new execution (not a recovery of this one)"
            ) from None
        return cls(uri=doc["home"], resumed=True)


def previous_home(checkpoint: Optional[Checkpoint]) -> Optional[StorageHome]:
    """The home the previous attempt wrote, or None: no previous attempt, or it died before writing one
    (then it had started no Ray work either). Anything else that cannot be read is raised, never skipped:
    a new home would silently throw away the work already done."""
    if checkpoint is None or not checkpoint.prev_exists():
        return None
    try:
        data = checkpoint.read()
    except (FlyteDataNotFoundException, FileNotFoundError):  # nothing was ever written there
        return None
    return StorageHome.decode(data) if data else None


def storage_home(
    default_prefix: Optional[str] = None, checkpoint: Optional[Checkpoint] = None, task: str = "task"
) -> StorageHome:
    """This task's storage home: the previous attempt's, else `default_prefix` (default: this attempt's
    raw-output prefix). Written into this attempt's checkpoint before any Ray work starts."""
    if checkpoint is None or default_prefix is None:
        ctx = flytekit.current_context()
        checkpoint = checkpoint or _checkpoint_of(ctx)
        default_prefix = default_prefix or _attempt_prefix(ctx.raw_output_prefix)
    home = previous_home(checkpoint) or StorageHome(uri=default_prefix, resumed=False)
    if checkpoint is not None:
        checkpoint.write(home.encode())
    if home.resumed:
        print(f"{task}: resuming from the storage of an earlier attempt, {home.uri}", flush=True)
    return home


def _attempt_prefix(raw_output_prefix: str) -> str:
    """This attempt's own prefix. On Flyte the raw-output prefix is unique per attempt (and kept when KubeRay
    re-submits the job within it); a local process shares one among all its tasks and runs, so each gets its own."""
    from tasks.flyte.clusters import is_local_execution

    if is_local_execution():
        return f"{raw_output_prefix.rstrip('/')}/local-{uuid.uuid4().hex}"
    return raw_output_prefix


def _checkpoint_of(ctx) -> Optional[Checkpoint]:
    try:
        return ctx.checkpoint
    except NotImplementedError:  # flytekit's word for "this platform gave the task no checkpoint"
        log.warning("Flyte gave this task no checkpoint: a retry of it will start from nothing")
        return None
