"""The simple reference model every run is scored beside: fitted on train, chosen on validation, scored on test
with the problem's own metrics; recorded in DVCLive's metrics.json; shown in the Deck and the summary; the gate."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from support import ray_cluster  # noqa: F401  (shared fixture)

from dvc_bridge.live import EpochLogger, add_to_summary
from tasks.problem import Baseline
from tasks.reporting.decks import training_page
from tasks.reporting.summary import reference_row
from tasks.training.baselines import gate_with_baseline, score_baseline, score_baseline_streamed
from tasks.training.loop import make_loader


def test_ridge_baseline_is_chosen_on_validation_and_scored_on_test_like_the_model(diabetes_splits, diabetes_problem):
    s = diabetes_splits
    result = score_baseline(diabetes_problem, s)
    assert set(result.scores) == {f"baseline/{split}/{m}" for split in ("val", "test") for m in ("loss", "rmse", "mae")}
    alpha = float(result.name.split("alpha=")[1].rstrip(")"))
    direct = Ridge(alpha=alpha).fit(s.x_train, s.y_train).predict(s.x_test)
    rmse = math.sqrt(np.mean((direct - s.y_test) ** 2))
    assert math.isclose(result.scores["baseline/test/rmse"], rmse, rel_tol=1e-4)
    assert math.isclose(result.scores["baseline/test/loss"], rmse**2, rel_tol=1e-3)  # MSE loss, as the model's
    for other in (1e-3, 10.0):  # no other candidate did better on validation
        val = Ridge(alpha=other).fit(s.x_train, s.y_train).predict(s.x_val)
        assert result.scores["baseline/val/rmse"] <= math.sqrt(np.mean((val - s.y_val) ** 2)) + 1e-6
    assert 40 < result.scores["baseline/test/rmse"] < 70  # the target's std is 77


def test_a_problem_may_declare_its_own_baseline(diabetes_splits, diabetes_problem):
    mean = Baseline("train mean", lambda x, y: lambda xs: np.full(len(xs), float(np.mean(y))))
    problem = dataclasses.replace(diabetes_problem, baseline=mean)
    result = score_baseline(problem, diabetes_splits)
    expected = math.sqrt(np.mean((diabetes_splits.y_train.mean() - diabetes_splits.y_test) ** 2))
    assert result.name == "train mean" and math.isclose(result.scores["baseline/test/rmse"], expected, rel_tol=1e-5)


def test_logistic_baseline_scores_accuracy_and_a_true_log_loss(digits_problem, synthetic):
    from tasks.data.arrays import make_splits

    x, y = synthetic(n=300)
    x[:, 3:103] = 0  # ten pixels lit per class, so a linear reference model can learn the classes
    x[np.arange(len(y))[:, None], 3 + 10 * y[:, None] + np.arange(10)] = 255
    result = score_baseline(digits_problem, make_splits({"x": x, "y": y}, digits_problem, seed=0))
    assert result.name.startswith("logistic regression")
    assert result.scores["baseline/test/accuracy"] > 0.5 and result.scores["baseline/test/loss"] > 0


def _streamed(splits, batch: int = 50):
    """Each split read anew for every pass, in batches, as shards are: never as one array."""
    return lambda split: make_loader(getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}"), batch, shuffle=False)


def test_streamed_ridge_from_one_pass_of_sums_is_the_in_memory_ridge(diabetes_splits, diabetes_problem):
    """Fitted from centred sums over batches, the same alpha is chosen on validation and scores the same as
    scikit-learn's Ridge on the whole arrays."""
    memory = score_baseline(diabetes_problem, diabetes_splits)
    streamed = score_baseline_streamed(diabetes_problem, _streamed(diabetes_splits))
    assert streamed.name == memory.name
    assert set(streamed.scores) == set(memory.scores)
    for key, value in memory.scores.items():
        assert math.isclose(streamed.scores[key], value, rel_tol=1e-4), (key, streamed.scores[key], value)


def test_streamed_class_baseline_is_the_majority_class_of_train(digits_problem, embedded_splits):
    s = embedded_splits
    result = score_baseline_streamed(digits_problem, _streamed(s, 512))
    majority = int(np.bincount(s.y_train).argmax())
    assert result.name == f"class prior (majority class {majority})"
    assert math.isclose(result.scores["baseline/test/accuracy"], float(np.mean(s.y_test == majority)), rel_tol=1e-6)
    prior = np.bincount(s.y_train, minlength=10) / len(s.y_train)
    log_loss = -float(np.mean(np.log(prior[s.y_test])))  # the cross-entropy of the prior: a true log-loss
    assert math.isclose(result.scores["baseline/test/loss"], log_loss, rel_tol=1e-4)


def test_a_problems_own_baseline_is_not_scored_on_streamed_data(diabetes_splits, diabetes_problem):
    mean = Baseline("train mean", lambda x, y: lambda xs: np.full(len(xs), float(np.mean(y))))
    problem = dataclasses.replace(diabetes_problem, baseline=mean)
    result = score_baseline_streamed(problem, _streamed(diabetes_splits))
    assert result.name == "" and result.scores == {}


def test_streamed_baselines_refuse_what_sums_cannot_fit_saying_why(diabetes_splits, diabetes_problem):
    wide = dataclasses.replace(
        diabetes_problem, schema=dataclasses.replace(diabetes_problem.schema, feature_shape=(5000,))
    )
    assert "5000 features: over 4096" in score_baseline_streamed(wide, _streamed(diabetes_splits)).why_none
    empty_val = dataclasses.replace(diabetes_splits, x_val=diabetes_splits.x_val[:0], y_val=diabetes_splits.y_val[:0])
    result = score_baseline_streamed(diabetes_problem, _streamed(empty_val))
    assert result.scores == {} and "no validation rows" in result.why_none


def test_a_streamed_baseline_that_fails_leaves_the_run_without_one_but_a_lost_cluster_goes_to_the_retry(
    ray_cluster,  # noqa: F811
    tmp_path,
    diabetes_problem,
):
    """On a real local Ray cluster: shards that cannot be read fail the fit in its Ray task, and train_model keeps
    its trained model without a baseline, the log saying why; a lost cluster is still raised for Flyte's retry."""
    from types import SimpleNamespace

    from ray.exceptions import NodeDiedError

    from tasks.data.shards import Manifest
    from tasks.flyte.tasks import _streamed_baseline
    from tasks.ray_glue.baseline import run_streamed_baseline

    gone = str(tmp_path / "gone.parquet")
    columns = list(diabetes_problem.rows.columns)
    manifest = Manifest(str(tmp_path), "diabetes", columns, [gone], [10], ["x"], [0.15, 0.15])
    data = SimpleNamespace(shards=manifest, problem="diabetes")
    result = _streamed_baseline(data, run_streamed_baseline)
    assert result.scores == {} and result.why_none.startswith("its fit failed: FileNotFoundError"), result
    assert "gone.parquet" in result.why_none

    def lost(*_):
        raise NodeDiedError("node 10.0.0.3 died")

    with pytest.raises(NodeDiedError):
        _streamed_baseline(data, lost)


def test_gate_must_beat_the_baseline_takes_the_stricter_threshold(diabetes_problem, digits_problem):
    assert gate_with_baseline(diabetes_problem, 65.0, {"baseline/test/rmse": 54.5}) == 54.5  # lower is better
    assert gate_with_baseline(diabetes_problem, 50.0, {"baseline/test/rmse": 54.5}) == 50.0
    assert gate_with_baseline(digits_problem, 0.9, {"baseline/test/accuracy": 0.93}) == 0.93  # higher is better
    assert gate_with_baseline(digits_problem, 0.9, {}) == 0.9


def test_baseline_scores_land_in_dvclive_metrics_beside_the_models(tmp_path):
    live = EpochLogger(tmp_path / "dvclive", resume=False)
    live.log_epoch({"val/rmse": 60.0})
    live.log_summary({"test/rmse": 55.0})
    live.close()
    add_to_summary(tmp_path / "dvclive", {"baseline/test/rmse": 54.5, "baseline/val/rmse": 53.0})
    doc = json.loads((tmp_path / "dvclive/metrics.json").read_text())
    assert doc["test"]["rmse"] == 55.0 and doc["baseline"] == {"test": {"rmse": 54.5}, "val": {"rmse": 53.0}}
    assert doc["val"]["rmse"] == 60.0


def test_deck_and_summary_show_the_baseline_and_the_verdict(tmp_path):
    (tmp_path / "curves.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    page = training_page(
        [{"epoch": 1, "val/rmse": 60.0}],
        metric="val/rmse",
        mode="min",
        val={"val/rmse": 60.0},
        test={"test/rmse": 56.0},
        params={"lr": 0.01},
        curves_png=tmp_path / "curves.png",
        baseline={"baseline/test/rmse": 54.5, "baseline/val/rmse": 53.0},
        baseline_name="ridge regression (alpha=0.01)",
    )
    assert "baseline test/rmse 54.5000: the model does NOT beat it" in page
    assert "baseline test: ridge regression (alpha=0.01)" in page
    row = reference_row({"name": "ridge regression (alpha=0.01)", "baseline/test/rmse": 54.5}, "rmse")
    assert row == [("baseline", "baseline/test/rmse 54.5000   (ridge regression (alpha=0.01), same splits)")]
