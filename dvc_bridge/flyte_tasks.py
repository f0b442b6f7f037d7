"""The bridge's Flyte tasks: check the target before any cluster starts; record the experiment."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import flytekit
from flytekit import Deck, task

from dvc_bridge.bridge import (
    ExperimentRef,
    Materials,
    preflight,
    record_experiment,
    redact_url,
    resolve_target,
    validate_exp_name,
)
from dvc_bridge.errors import TargetError
from dvc_bridge.gitops import Git
from dvc_bridge.summary import summary_html
from tasks import secrets
from tasks.contracts import Dataset, RunTarget, TrainResult, TuneResult
from tasks.flyte_tasks import DECK_FIELDS
from tasks.settings import TrainSettings, TuneSettings


def default_exp_name(execution_id: str) -> str:
    """flyte-<execution id>; a local run (whose id is just 'local') gets a timestamp instead."""
    if execution_id and execution_id != "local":
        return f"flyte-{execution_id}"
    return f"local-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


@task(secret_requests=secrets.BRIDGE_SECRETS)
def check_target(repo_url: str, exp_name: str, base_rev: str) -> RunTarget:
    """Reachable, a DVC repo, a DVC remote when the target is a URL; fixes the experiment's name and baseline."""
    secrets.export(secrets.BRIDGE_SECRETS)
    if redact_url(repo_url) != repo_url:
        raise TargetError(
            f"repo_url {redact_url(repo_url)!r} carries credentials in the URL, where logs and outputs would show "
            f"them: drop the user:password part and put the token in the {secrets.GIT_TOKEN.env_var} secret."
        )
    execution_id = flytekit.current_context().execution_id.name
    name = exp_name or default_exp_name(execution_id)
    validate_exp_name(name)
    target = resolve_target(repo_url)
    with tempfile.TemporaryDirectory(prefix="frd-preflight-") as d:
        baseline = preflight(target, Git(), Path(d), base_rev)
    # A retry of the same run finds its experiment by this id; two local runs must not share one.
    run_id = execution_id if execution_id != "local" else f"local-{uuid.uuid4().hex}"
    return RunTarget(repo=target.url, exp_name=name, baseline_rev=baseline, run_id=run_id)


@task(retries=2, secret_requests=secrets.BRIDGE_SECRETS, enable_deck=True, deck_fields=DECK_FIELDS)
def commit_experiment(
    repo: RunTarget,
    min_accuracy: float,
    data: Dataset,
    tuned: TuneResult,
    trained: TrainResult,
    tune: TuneSettings,
    train: TrainSettings,
    seed: int,
) -> ExperimentRef:
    """Write the run into its own clone of `repo` as a DVC experiment; push data, then the ref."""
    secrets.export(secrets.BRIDGE_SECRETS)
    ctx = flytekit.current_context()
    execution_id = repo.run_id or ctx.execution_id.name
    name = repo.exp_name
    version = {"source": data.source, "sha256": data.sha256, "dvc_rev": data.dvc_rev}
    materials = Materials(
        params={
            "data": {**version, "seed": seed},
            "tune": asdict(tune),
            "train": asdict(train),
        },
        best=asdict(tuned.best),
        trials_csv=Path(tuned.trials_csv.download()),
        trials_png=Path(tuned.trials_png.download()),
        model=Path(trained.model.download()),
        live_dir=Path(trained.dvclive.download()),
        accuracy=trained.accuracy,
        run_info={
            "execution_id": execution_id,
            "project": ctx.execution_id.project,
            "domain": ctx.execution_id.domain,
            "data": {**version, "n_train": data.n_train, "n_test": data.n_test},
            "tune_best_accuracy": tuned.best_accuracy,
            "accuracy": trained.accuracy,
        },
    )
    workdir = Path(tempfile.mkdtemp(prefix="frd-bridge-", dir=ctx.working_directory))
    ref = record_experiment(
        resolve_target(repo.repo), name, materials, workdir, base_rev=repo.baseline_rev, min_accuracy=min_accuracy, git=Git()
    )
    print(f"experiment {ref.name} ({ref.commit[:8]}) in {ref.repo}: {ref.decision}")
    Deck("Experiment", summary_html(ref))
    return ref
