"""Problems the tests use, importable by every process of a test run (tests/conftest.py puts this
directory on PYTHONPATH, as an image would put a team's own code)."""

from __future__ import annotations

from dataclasses import replace

from tasks.problems import digits

REFUSED_CHANNELS = 13


def _build_or_raise(hp):
    if hp["channels"] == REFUSED_CHANNELS:
        raise ValueError(f"channels={REFUSED_CHANNELS} is refused by this test problem")
    return digits.build_model(hp)


# The digits problem, except that a model with 13 channels fails to build inside its trial.
FLAKY_DIGITS = replace(digits.PROBLEM, name="flaky-digits", build_model=_build_or_raise)
