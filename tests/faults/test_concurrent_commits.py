"""Two workflows commit to the same repo at the same time: both experiments land, each with only its own files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from commit_only_wf import stand_in_accuracy, stand_in_model
from support import assert_refs_have_their_data, exp_refs, git

PYFLYTE = str(Path(sys.executable).parent / "pyflyte")
WORKFLOW = Path(__file__).with_name("commit_only_wf.py")

# A pre-push hook, put in place through git's environment: each bridge waits at its experiment-ref push
# until the other one is there too, so the two pushes (and the data pushes before them) really overlap.
BARRIER = """#!/bin/sh
while read local_ref local_sha remote_ref remote_sha; do
  case "$remote_ref" in
    refs/exps/*)
      touch "$FRD_TEST_BARRIER/arrived/$$"
      i=0
      while [ "$(ls "$FRD_TEST_BARRIER/arrived" | wc -l)" -lt 2 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
      if [ "$(ls "$FRD_TEST_BARRIER/arrived" | wc -l)" -ge 2 ]; then touch "$FRD_TEST_BARRIER/met/$$";
      else touch "$FRD_TEST_BARRIER/gave-up/$$"; fi;;
  esac
done
exit 0
"""


@pytest.mark.slow
def test_two_workflows_commit_to_one_repo_at_once_each_with_only_its_own_files(tmp_path, remote_target):
    hooks, barrier = tmp_path / "hooks", tmp_path / "barrier"
    hooks.mkdir()
    for d in ("arrived", "met", "gave-up"):
        (barrier / d).mkdir(parents=True)
    (hooks / "pre-push").write_text(BARRIER)
    (hooks / "pre-push").chmod(0o755)
    env = dict(
        os.environ,
        GIT_CONFIG_COUNT="1",
        GIT_CONFIG_KEY_0="core.hooksPath",
        GIT_CONFIG_VALUE_0=str(hooks),
        FRD_TEST_BARRIER=str(barrier),
    )
    runs = {}
    for seed in (1, 2):
        cwd = tmp_path / f"run{seed}"
        cwd.mkdir()
        runs[seed] = subprocess.Popen(
            [
                PYFLYTE,
                "run",
                str(WORKFLOW),
                "commit_only_wf",
                "--repo_url",
                remote_target,
                "--exp_name",
                f"par{seed}",
                "--seed",
                str(seed),
            ],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {seed: proc.communicate(timeout=300) for seed, proc in runs.items()}
    for seed, proc in runs.items():
        assert proc.returncode == 0, results[seed][1][-3000:]
    assert not list((barrier / "gave-up").iterdir()), "a bridge waited 60 s at its ref push and the other never came"
    assert len(list((barrier / "met").iterdir())) == 2, "both bridges should have met at their ref push"

    refs = exp_refs(remote_target)
    assert sorted(r.rsplit("/", 1)[1] for r in refs) == ["par1", "par2"]
    clones = assert_refs_have_their_data(remote_target, tmp_path)
    run_ids: dict[int, str] = {}
    for seed in (1, 2):
        ref = next(r for r in refs if r.endswith(f"/par{seed}"))
        clone = clones[ref]
        assert (clone / "results/train/model.pth").read_bytes() == stand_in_model(seed)
        run_ids[seed] = json.loads((clone / "results/run.json").read_text())["execution_id"]
        assert run_ids[seed].startswith("local-")  # a local run's own id, not a name another run could reuse
        params = yaml.safe_load((clone / "params.yaml").read_text())
        assert params["data"]["seed"] == seed and params["data"]["source"] == f"stand-in-{seed}"
        metrics = json.loads((clone / "results/dvclive/metrics.json").read_text())
        assert metrics["test"]["accuracy"] == pytest.approx(stand_in_accuracy(seed))
        # Only the files an experiment writes changed against the baseline (not DVC's .dvc/tmp/repro.dat, which
        # `exp save` adds and the bridge drops: it holds the Studio token), and none of them mentions the other run.
        changed = git("diff", "--name-only", "HEAD~1", "HEAD", cwd=clone).splitlines()
        expected = {"params.yaml", "dvc.lock", "dvc.yaml"}
        assert changed and all(p in expected or p.startswith("results/") for p in changed), changed
        other = 3 - seed
        for path in changed:
            text = (clone / path).read_bytes()
            assert f"par{other}".encode() not in text and f"stand-in-{other}".encode() not in text, path
    assert run_ids[1] != run_ids[2]
