"""The baseline of streamed data, on a worker of the task's Ray cluster: the shards read with pyarrow, one pass for
the fit and one a candidate for validation, then test once (`tasks.training.baselines.score_baseline_streamed`).
Imports Ray, not Flyte."""

from __future__ import annotations

import ray

from tasks.data.shards import Manifest, iter_samples
from tasks.problem import load_problem
from tasks.training.baselines import BaselineScores, score_baseline_streamed
from tasks.training.loop import EVAL_BATCH, EpochBatches


@ray.remote(num_cpus=1)  # a worker's CPU: the head (0 CPUs on a cluster) computes nothing
def _score(manifest: Manifest, problem_ref: str) -> BaselineScores:
    problem = load_problem(problem_ref)
    return score_baseline_streamed(
        problem, lambda split: EpochBatches(lambda epoch: iter_samples(manifest, problem, split, EVAL_BATCH))
    )


def run_streamed_baseline(manifest: Manifest, problem_ref: str) -> BaselineScores:
    """The baseline's scores on the manifest's splits, computed on the connected cluster (after training: its
    workers are free then)."""
    return ray.get(_score.remote(manifest, problem_ref))
