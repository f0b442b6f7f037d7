"""The reusable Ray Tune callback: every trial logged with DVCLive, one directory per trial (real Ray Tune)."""

from __future__ import annotations

import csv
import json

import yaml
from support import ray_cluster  # noqa: F401  (the session's local Ray cluster)

from tasks.ray_glue.tune_dvclive import DVCLiveTrials


def test_each_trial_gets_its_own_dvclive_directory_with_params_and_one_step_per_result(tmp_path, ray_cluster):  # noqa: F811
    from ray import tune

    def _trainable(config):  # nested: Ray ships it by value (this test module is not importable on workers)
        from ray import tune

        for epoch in range(1, 4):
            tune.report({"epoch": epoch, "val/accuracy": config["lr"] * epoch, "train/loss": 1 / epoch})

    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": 1}),
        param_space={"lr": tune.grid_search([0.1, 0.2]), "tag": "x"},
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "ray"),
            verbose=0,
            callbacks=[DVCLiveTrials(tmp_path / "trials", params=["lr"], metrics=["val/accuracy", "train/loss"])],
        ),
    )
    grid = tuner.fit()
    dirs = sorted((tmp_path / "trials").iterdir())
    assert len(dirs) == 2 == len(grid)
    seen = {}
    for d in dirs:
        params = yaml.safe_load((d / "params.yaml").read_text())
        assert set(params) == {"lr"}  # only the keys asked for
        rows = list(csv.DictReader((d / "plots/metrics/val/accuracy.tsv").read_text().splitlines(), delimiter="\t"))
        assert [int(r["step"]) for r in rows] == [0, 1, 2]
        assert [float(r["accuracy"]) for r in rows] == [params["lr"] * e for e in (1, 2, 3)]
        assert not (d / "plots/metrics/epoch.tsv").exists()
        summary = json.loads((d / "metrics.json").read_text())
        assert summary["step"] == 2 and summary["train"]["loss"] == 1 / 3
        seen[params["lr"]] = d.name
    assert set(seen) == {0.1, 0.2}
    assert set(seen.values()) == {r.metrics["trial_id"] for r in grid}
