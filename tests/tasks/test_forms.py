"""The training forms' contract: metrics that are not sums exact across DDP shards, refusals that name the fix."""

from __future__ import annotations

import dataclasses
import sys
import textwrap

import pytest
import torch
from forms_for_tests import BLOBS, blobs, evaluate_shards_per_worker, fixed_model
from support import ray_cluster  # noqa: F401  (shared fixture)

from tasks.problem import ProblemError
from tasks.training.contract import LoopContext
from tasks.training.loop import evaluate, make_loader
from tasks.training.settings import TrainSettings, TuneSettings


def test_a_torchmetric_over_two_ray_train_workers_equals_one_process_over_the_whole_split(tmp_path, ray_cluster):  # noqa: F811
    """AUROC and macro-F1 (torchmetrics) and accuracy (a sum) over 2 DDP workers' uneven shards (51 + 50 samples)
    are the values one process computes over all 101: torchmetrics gathers the states, sums are all-reduced."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    result = TorchTrainer(
        evaluate_shards_per_worker,
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="exact", storage_path=str(tmp_path)),
    ).fit()
    over_shards = result.metrics
    data = blobs()
    whole = evaluate(fixed_model(), make_loader(data["x"], data["y"], 512, shuffle=False), BLOBS).scores(BLOBS, "val")

    assert over_shards["world"] == 2
    for name in ("val/auroc", "val/f1_macro", "val/accuracy", "val/loss"):
        assert over_shards[name] == pytest.approx(whole[name], abs=1e-6), name
    # The check can fail: rank 0's slice alone gives other values, so the gathering is what makes them exact.
    assert over_shards["alone/val/auroc"] != pytest.approx(whole["val/auroc"], abs=1e-6)
    assert over_shards["alone/val/f1_macro"] != pytest.approx(whole["val/f1_macro"], abs=1e-6)
    assert 0.0 < whole["val/auroc"] < 1.0 and 0.0 < whole["val/f1_macro"] < 1.0


def test_a_problem_with_two_training_forms_is_refused():
    with pytest.raises(ProblemError, match="sets both lightning_module and train_loop; set one"):
        dataclasses.replace(BLOBS, lightning_module=lambda hp: None, train_loop=lambda ctx: None)


def test_a_problem_lacking_what_its_optimizer_reads_is_refused_naming_it():
    """The default optimizer reads `lr`: a problem without it is refused when declared, not in a trial."""
    without_lr = {"batch_size": BLOBS.hyperparams["batch_size"]}
    with pytest.raises(ProblemError, match=r"its optimizer reads hyper-parameter 'lr', which the problem does not"):
        dataclasses.replace(BLOBS, hyperparams=without_lr)
    # A problem that trains itself builds its own optimizer: nothing is required of it.
    assert dataclasses.replace(BLOBS, hyperparams=without_lr, train_loop=lambda ctx: None).form == "loop"


def test_the_run_is_refused_at_validation_when_the_optimizer_lacks_a_hyper_parameter(tmp_path, monkeypatch):
    """`validate_settings` (the workflow's first task) refuses a problem module whose optimizer reads `momentum`
    it never declares, with the message naming it."""
    from tasks.flyte.tasks import validate_settings

    (tmp_path / "no_momentum.py").write_text(
        textwrap.dedent(
            """
            import dataclasses, torch
            from forms_for_tests import BLOBS
            PROBLEM = dataclasses.replace(
                BLOBS, make_optimizer=lambda params, hp: torch.optim.SGD(params, lr=hp["lr"], momentum=hp["momentum"])
            )
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Exception) as raised:
        validate_settings(problem="no_momentum:PROBLEM", tune=TuneSettings(), train=TrainSettings(), gate=None)
    # A local run ends a refusal as one short line (tasks.flyte.refusals): the refusal is the chain's cause.
    err = raised.value
    while err is not None and not isinstance(err, ProblemError):
        err = err.__cause__ or err.__context__
    assert err is not None, raised.value
    assert "its optimizer reads hyper-parameter 'momentum'" in str(err), err
    assert "KeyError" not in str(err), err
    sys.modules.pop("no_momentum", None)


def test_a_report_without_the_selecting_metric_is_refused_naming_what_to_report():
    data = blobs()
    loader = make_loader(data["x"], data["y"], 8, shuffle=False)
    ctx = LoopContext(
        hp={}, problem=BLOBS, train_loader=loader, val_loader=loader, device=torch.device("cpu"), epochs=1
    )
    with pytest.raises(ProblemError, match=r"the report of epoch 1 lacks \['val/auroc'\]"):
        ctx.report(1, {"train/loss": 1.0, "val/loss": 1.0}, model=fixed_model())
    ctx.report(1, {"train/loss": 1.0, **ctx.evaluate(fixed_model())}, model=fixed_model())
    assert ctx.reported[0]["epoch"] == 1 and set(ctx.reported[0]) >= {"val/auroc", "val/f1_macro", "val/accuracy"}


def test_an_examples_problem_loads_without_the_project_on_sys_path(tmp_path):
    """As under `pyflyte run` from the project root without PYTHONPATH (flytekit puts the root on sys.path only
    while it imports the workflow file): `examples.*` is found in the project root."""
    import os
    import subprocess

    from support import PROJECT_ROOT

    code = (
        f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); import tasks.problem.registry as r; "
        f"sys.path.remove({str(PROJECT_ROOT)!r}); print(r.load_problem('examples.custom_loop:PROBLEM').form)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "loop", proc.stderr[-2000:]
