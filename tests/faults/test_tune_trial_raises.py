"""A Tune trial that raises: the search finishes with the other trials and the table shows the failure."""

from __future__ import annotations

import pytest

from tasks.ray_tune import run_tune
from tasks.settings import TuneSettings


@pytest.mark.slow
def test_tune_trial_that_raises_leaves_the_search_to_the_others(tmp_path, ray_cluster, digits):
    """A batch size of 0 reaches the trials (set after validation, as a deserialized object could carry it):
    the trials that draw it raise in the trial process; the others complete and the best comes from them."""
    settings = TuneSettings(num_samples=3, max_epochs=1, grace_period=1, batch_sizes=[64], seed=0)
    settings.batch_sizes = [64, 0]  # past __post_init__: only the trial's own check stands in the way
    outcome = run_tune(digits, settings, str(tmp_path / "ray"))

    trials = outcome.trials
    assert len(trials) == settings.num_samples
    failed, ok = trials[trials["status"] == "error"], trials[trials["status"] != "error"]
    assert len(failed) >= 1 and len(ok) >= 1, trials.to_string()
    assert set(failed["batch_size"]) == {0} and set(ok["batch_size"]) == {64}
    for text in failed["error"]:
        assert "batch_size=0 is not valid" in text, text
    assert (ok["status"] == "completed").all() and (ok["epochs"] == 1).all()
    assert (ok["error"] == "").all()
    assert outcome.best.batch_size == 64
    assert outcome.best_accuracy == ok["accuracy"].max() > 0.5
    assert set(outcome.history["trial_id"]) == set(ok["trial_id"])
