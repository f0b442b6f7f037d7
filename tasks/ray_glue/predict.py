"""Batch prediction with Ray Data: a registered model scores every sample of a data set, batch by batch.

The features go into Ray's object store once; `ray.data.range(n).map_batches(Scorer, ...)` hands each
Scorer actor (the model built and loaded once per actor) batches of row ids, which it gathers from that
one copy and scores. Rows come back with their ids, so predictions line up with the data whatever order
the batches finish in. Kept simple and correct for data that fits in memory.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import ray
import torch

from tasks.problem import load_problem
from tasks.training.loop import EvalSums

SPLIT = "data"  # the metrics' prefix: "data/accuracy", "data/loss"


class Scorer:
    """A Ray Data actor: the problem's model with the registered weights, scoring batches of row ids."""

    def __init__(self, problem: str, hp: dict[str, Any], weights: bytes, x: ray.ObjectRef) -> None:
        self.problem = load_problem(problem)
        self.model = self.problem.build_model(hp)
        self.model.load_state_dict(torch.load(io.BytesIO(weights), weights_only=True))
        self.model.eval()
        self.x = ray.get(x)  # the object store's copy, read in place

    @torch.no_grad()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = batch["id"]
        out = self.model(torch.from_numpy(self.x[rows]))
        result = {"row": rows, "output": out.numpy().astype(np.float32)}
        if self.problem.schema.target == "class":
            probs = torch.softmax(out, dim=1)
            confidence, label = probs.max(dim=1)
            result.update(prediction=label.numpy(), confidence=confidence.numpy())
        else:
            result["prediction"] = out.reshape(len(rows), -1)[:, 0].numpy()
        return result


@dataclass
class Scored:
    columns: dict[str, np.ndarray]  # row, prediction (, confidence) (, target): one entry per sample, in row order
    metrics: dict[str, float]  # "data/loss", "data/<metric>" when the data has targets


def run_predict(
    x: np.ndarray,
    y: Optional[np.ndarray],
    problem: str,
    hp: dict[str, Any],
    weights: bytes,
    *,
    batch_size: int = 256,
    concurrency: int = 1,
) -> Scored:
    """Score every row of `x` with Ray Data on the connected Ray cluster; the problem's metrics when `y` is given."""
    p = load_problem(problem)
    n = len(x)
    ds = ray.data.range(n, override_num_blocks=max(1, min(n // max(batch_size, 1), 4 * concurrency)))
    scored = ds.map_batches(
        Scorer,
        fn_constructor_kwargs={"problem": problem, "hp": hp, "weights": weights, "x": ray.put(x)},
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=1,
    )
    parts = list(scored.iter_batches(batch_size=None, batch_format="numpy"))
    got = {k: np.concatenate([b[k] for b in parts]) for k in parts[0]} if parts else {}
    order = np.argsort(got["row"], kind="stable") if got else np.array([], dtype=np.int64)
    got = {k: v[order] for k, v in got.items()}
    if len(got.get("row", ())) != n or not np.array_equal(got["row"], np.arange(n)):
        raise RuntimeError(f"batch prediction returned {len(got.get('row', ()))} rows for {n} samples")
    output = got.pop("output")
    metrics: dict[str, float] = {}
    if y is not None:
        got["target"] = y
        out, target = torch.from_numpy(output), torch.from_numpy(y)
        sums = EvalSums(
            loss_sum=float(p.loss()(out, target)) * n,
            count=n,
            sums={m.name: float(m.batch_sum(out, target)) for m in p.metrics},
        )
        metrics = sums.scores(p, SPLIT)
    return Scored(columns=got, metrics=metrics)
