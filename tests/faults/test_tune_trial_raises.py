"""A Tune trial that raises: the search finishes with the other trials and the table shows the failure."""

from __future__ import annotations

import pytest
import ray
from problems_for_tests import REFUSED_CHANNELS

from tasks.ray_glue.tune import run_tune
from tasks.training.settings import TuneSettings


@pytest.mark.slow
def test_tune_trial_that_raises_leaves_the_search_to_the_others(tmp_path, ray_cluster, digits):
    """The test problem's model fails to build with 13 channels, inside the trial process: the trials that
    draw it fail; the others complete and the best comes from them."""
    space = {"channels": {"choice": [16, REFUSED_CHANNELS]}, "batch_size": 64}
    settings = TuneSettings(num_samples=4, max_epochs=1, grace_period=1, space=space, seed=1)  # seed 1 draws both
    outcome = run_tune(ray.put(digits), "problems_for_tests:FLAKY_DIGITS", settings, str(tmp_path / "ray"))

    trials = outcome.trials
    assert len(trials) == settings.num_samples
    failed, ok = trials[trials["status"] == "error"], trials[trials["status"] != "error"]
    assert len(failed) >= 1 and len(ok) >= 1, trials.to_string()
    assert set(failed["channels"]) == {REFUSED_CHANNELS} and set(ok["channels"]) == {16}
    for text in failed["error"]:
        assert text == f"ValueError: channels={REFUSED_CHANNELS} is refused by this test problem", text
    assert (ok["status"] == "completed").all() and (ok["epochs"] == 1).all()
    assert (ok["error"] == "").all()
    assert outcome.best["channels"] == 16 and outcome.metric == "val/accuracy"
    assert outcome.best_score == ok["val/accuracy"].max() > 0.5
    assert set(outcome.history["trial_id"]) == set(ok["trial_id"])
