"""Problems the tests use, importable by every process of a test run (tests/conftest.py puts this
directory on PYTHONPATH, as an image would put a team's own code)."""

from __future__ import annotations

import os
from dataclasses import replace

from tasks.problems import digits

REFUSED_CHANNELS = 13


def _build_or_raise(hp):
    if hp["channels"] == REFUSED_CHANNELS:
        raise ValueError(f"channels={REFUSED_CHANNELS} is refused by this test problem")
    return digits.build_model(hp)


# The digits problem, except that a model with 13 channels fails to build inside its trial.
FLAKY_DIGITS = replace(digits.PROBLEM, name="flaky-digits", build_model=_build_or_raise)


# Lost-cluster tests: the digits problem, except that once LOST_CLUSTER_HANG_AFTER models were built (counted
# as files in LOST_CLUSTER_MARKERS, one per build, across processes), building one more hangs, and with
# LOST_CLUSTER_HANG_AT_EPOCH=N training hangs when epoch N begins: the attempt's Ray cluster stays busy until
# the test kills it, so what was finished before is exactly known.
def _build_counted(hp):
    import threading
    import uuid
    from pathlib import Path

    markers = os.environ.get("LOST_CLUSTER_MARKERS")
    if markers:
        Path(markers).mkdir(parents=True, exist_ok=True)
        (Path(markers) / uuid.uuid4().hex).touch()
        hang_after = int(os.environ.get("LOST_CLUSTER_HANG_AFTER", "-1"))
        if 0 <= hang_after < len(list(Path(markers).iterdir())):
            threading.Event().wait()  # until the cluster is killed
    model = digits.build_model(hp)
    hang_at = int(os.environ.get("LOST_CLUSTER_HANG_AT_EPOCH", "0"))
    if hang_at:
        _hang_when_epoch_starts(model, hang_at)
    return model


def _hang_when_epoch_starts(model, epoch: int) -> None:
    """The model hangs when training epoch `epoch` begins (the loop calls `model.train()` once per epoch;
    DDP passes it on), after the earlier epochs' checkpoints were reported."""
    import threading

    original, started = model.train, []

    def train(mode: bool = True):
        if mode:
            started.append(1)
            if len(started) >= epoch:
                threading.Event().wait()  # until the cluster is killed
        return original(mode)

    model.train = train


COUNTED_DIGITS = replace(digits.PROBLEM, name="counted-digits", build_model=_build_counted)
