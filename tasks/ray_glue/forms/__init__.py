"""How a problem trains, run by Ray: a plain loop (`loop`) or a LightningModule (`lightning`), one contract.

The declarative form stays in tasks/ray_glue/tune.py and train.py; `tasks.training.contract.LoopContext`
is the contract the two others share: a `Form` trains through a context and scores the test split once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch.utils.data import DataLoader

from tasks.problem import Problem
from tasks.training.contract import LoopContext


@dataclass
class Form:
    """`train(ctx)` runs the epochs, reporting through `ctx`; `score_test(ctx, loader)` scores the final model on
    this worker's slice of the test split (every worker calls it: the scores are over all slices)."""

    train: Callable[[LoopContext], None]
    score_test: Callable[[LoopContext, DataLoader], dict[str, float]]


def score_with_metrics(ctx: LoopContext, loader: DataLoader) -> dict[str, float]:
    """The problem's loss and metrics of the last reported model (exact across workers)."""
    return ctx.evaluate(ctx.final_model, loader, split="test")


def form_of(problem: Problem, *, ray_train: bool) -> Form:
    """The problem's form; `ray_train`: under Ray Train (DDP over its workers), else one process (a Tune trial)."""
    if problem.lightning_module is not None:
        from tasks.ray_glue.forms.lightning import LightningForm

        runner = LightningForm(problem, ray_train=ray_train)
        return Form(runner.train, runner.score_test)
    if problem.train_loop is not None:
        return Form(problem.train_loop, score_with_metrics)
    raise ValueError(f"problem {problem.name!r} trains declaratively; tasks/ray_glue/tune.py and train.py run it")
