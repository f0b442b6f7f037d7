"""The simple reference model every run is scored beside: fit on the train split, its one setting chosen on
validation, scored once on test with the problem's own metrics, so `test/<metric>` and
`baseline/test/<metric>` compare like for like.

Class targets: a logistic regression (C chosen on validation); real targets: a ridge regression (alpha chosen
on validation). A problem may declare its own (`Problem.baseline`: a `Baseline`). scikit-learn, torch, numpy.

Data never loaded whole (streamed shards): `score_baseline_streamed` fits from sums over one pass of the train
split: the same ridge regressions for real targets (exactly: centred sums), the class prior (the majority class)
for classes; a problem's own baseline needs its data in memory and is not scored there, nor is a ridge over more
than MAX_STREAMED_RIDGE_FEATURES inputs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from dvc_bridge.direction import best_of, higher_is_better
from tasks.problem import Baseline, Problem, TorchMetric, metric_key
from tasks.training.loop import evaluate

PREFIX = "baseline"  # baseline/val/<metric>, baseline/test/<metric>


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def logistic_regression(c: float, classes: int) -> Baseline:
    def fit(x, y):
        from sklearn.linear_model import LogisticRegression

        with warnings.catch_warnings():  # a few iterations are enough for a reference; no convergence noise
            warnings.simplefilter("ignore")
            model = LogisticRegression(C=c, max_iter=60, tol=1e-3).fit(_flat(x), y)

        def predict(x):
            proba = np.full((len(x), classes), 1e-12)
            proba[:, model.classes_] = np.maximum(model.predict_proba(_flat(x)), 1e-12)
            return np.log(proba)  # log-probabilities: the cross-entropy of logits is then the true log-loss

        return predict

    return Baseline(f"logistic regression (C={c:g})", fit)


def ridge_regression(alpha: float) -> Baseline:
    def fit(x, y):
        from sklearn.linear_model import Ridge

        model = Ridge(alpha=alpha).fit(_flat(x), y)
        return lambda x: model.predict(_flat(x))

    return Baseline(f"ridge regression (alpha={alpha:g})", fit)


def candidates(problem: Problem) -> list[Baseline]:
    """The problem's own baseline, or the default family whose one setting validation chooses."""
    if problem.baseline is not None:
        return [problem.baseline]
    if problem.schema.target == "class":
        return [logistic_regression(c, problem.schema.classes) for c in (0.1,)]
    return [ridge_regression(a) for a in RIDGE_ALPHAS]


RIDGE_ALPHAS = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def scores_of(problem: Problem, outputs: np.ndarray, y: np.ndarray, split: str) -> dict[str, float]:
    """The problem's loss and metrics on `outputs`, as the training loop computes them for the model."""
    out, target = torch.as_tensor(np.asarray(outputs, dtype=np.float32)), torch.as_tensor(y)
    scores = {metric_key(split, "loss"): float(problem.loss()(out, target))}
    for m in problem.metrics:
        if isinstance(m, TorchMetric):  # not a sum: the metric object over all rows at once
            metric = m.make()
            metric.update(*m.inputs(out, target))
            scores[metric_key(split, m.name)] = float(metric.compute())
        else:
            scores[metric_key(split, m.name)] = float(m.finish(float(m.batch_sum(out, target)) / max(len(y), 1)))
    return scores


@dataclass
class BaselineScores:
    name: str  # what was fitted, e.g. "ridge regression (alpha=0.03)"
    scores: dict[str, float]  # baseline/val/<metric>, baseline/test/<metric> (and their loss)
    why_none: str = ""  # when scores is empty: why no baseline was scored, for the log


def score_baseline(problem: Problem, splits) -> BaselineScores:
    """Fit each candidate on train, keep the best on validation (the problem's selecting metric), score it on test."""
    key, better = metric_key("val", problem.select), (max if higher_is_better(problem.mode) else min)
    fitted = []
    for candidate in candidates(problem):
        predict = candidate.fit(splits.x_train, splits.y_train)
        val = scores_of(problem, predict(splits.x_val), splits.y_val, "val")
        if math.isfinite(val[key]):
            fitted.append((val[key], candidate, predict, val))
    _, chosen, predict, val = better(fitted, key=lambda t: t[0])
    test = scores_of(problem, predict(splits.x_test), splits.y_test, "test")
    return BaselineScores(chosen.name, {f"{PREFIX}/{k}": v for k, v in {**val, **test}.items()})


def _linear(weight: torch.Tensor, bias: torch.Tensor, regression: bool) -> nn.Module:
    """A fitted linear baseline as a module (flattened input), so `evaluate` scores it as it scores the model."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return nn.Sequential(nn.Flatten(), layer, *([nn.Flatten(0)] if regression else []))


# A ridge from sums holds a features x features matrix (float64) and solves it once an alpha: wider inputs would
# take a worker's memory (20,000 features: 3.2 GB) for a reference model.
MAX_STREAMED_RIDGE_FEATURES = 4096


def _class_prior(problem: Problem, train: Iterable) -> list[tuple]:
    """The class prior of one pass's labels: logits that are the log class frequencies for every row."""
    counts = torch.zeros(problem.schema.classes, dtype=torch.float64)
    for _, y in train:
        counts += torch.bincount(torch.as_tensor(y).long(), minlength=problem.schema.classes).double()
    if not counts.sum():
        return []
    prior = torch.log(torch.clamp(counts / counts.sum(), min=1e-12)).float()
    weight = torch.zeros(problem.schema.classes, int(np.prod(problem.schema.feature_shape)))
    return [(f"class prior (majority class {int(counts.argmax())})", _linear(weight, prior, False))]


def _ridges(train: Iterable) -> list[tuple]:
    """A ridge regression per alpha from one pass's sums, centred: scikit-learn's Ridge with an intercept."""
    n, sx, sy, xtx, xty = 0, 0.0, 0.0, 0.0, 0.0
    for x, y in train:
        x, y = torch.as_tensor(x).reshape(len(x), -1).double(), torch.as_tensor(y).double()
        n, sx, sy = n + len(y), sx + x.sum(0), sy + y.sum()
        xtx, xty = xtx + x.T @ x, xty + x.T @ y
    if not n:
        return []
    mean_x, mean_y = sx / n, sy / n
    cxx, cxy = xtx - n * torch.outer(mean_x, mean_x), xty - n * mean_x * mean_y
    fitted = []
    for alpha in RIDGE_ALPHAS:
        w = torch.linalg.solve(cxx + alpha * torch.eye(len(cxx), dtype=torch.float64), cxy)
        bias = (mean_y - mean_x @ w).reshape(1)
        fitted.append((f"ridge regression (alpha={alpha:g})", _linear(w.reshape(1, -1).float(), bias.float(), True)))
    return fitted


def score_baseline_streamed(problem: Problem, batches: Callable[[str], Iterable]) -> BaselineScores:
    """`score_baseline` for data never loaded whole: `batches(split)` yields a split's (x, y) tensors, read anew for
    each pass (train once, validation once a candidate, test once). Scores nothing, saying why, for a problem's own
    baseline (it fits in memory), inputs too wide for a ridge from sums, or an empty split."""
    width = int(np.prod(problem.schema.feature_shape))
    if problem.baseline is not None:
        return BaselineScores("", {}, f"the problem's own baseline ({problem.baseline.name}) is fitted in memory")
    if problem.schema.target == "real" and width > MAX_STREAMED_RIDGE_FEATURES:
        return BaselineScores("", {}, f"{width} features: over {MAX_STREAMED_RIDGE_FEATURES} for a ridge from sums")
    key, better = metric_key("val", problem.select), (max if higher_is_better(problem.mode) else min)
    scored = []
    fit = _class_prior(problem, batches("train")) if problem.schema.target == "class" else _ridges(batches("train"))
    for name, module in fit:
        sums = evaluate(module, batches("val"), problem, sync=False)
        val = sums.scores(problem, "val")
        if sums.count and math.isfinite(val[key]):
            scored.append((val[key], name, module, val))
    if not scored:
        return BaselineScores("", {}, "no training rows, or no validation rows to choose on")
    _, name, module, val = better(scored, key=lambda t: t[0])
    test = evaluate(module, batches("test"), problem, sync=False)
    if not test.count:
        return BaselineScores("", {}, "no test rows")
    scores = {**val, **test.scores(problem, "test")}
    return BaselineScores(name, {f"{PREFIX}/{k}": v for k, v in scores.items()})


def gate_with_baseline(problem: Problem, threshold: float, baseline: Mapping[str, float]) -> float:
    """The gate's threshold when the run must also beat the baseline: the stricter of the two."""
    b = baseline.get(f"{PREFIX}/{metric_key('test', problem.select)}")
    if b is None or not math.isfinite(b):
        return threshold
    return best_of(problem.mode, (threshold, b))  # the stricter: the better of the two by the metric's direction


def baseline_line(problem: Problem, scores: Mapping[str, float]) -> str:
    """The baseline's validation and test score of the selecting metric, for a log line."""
    keys = [f"{PREFIX}/{metric_key(split, problem.select)}" for split in ("val", "test")]
    return ", ".join(f"{k} {scores[k]:.4f}" for k in keys if k in scores)
