"""The Flyte tasks: a few lines each over the pure logic, the Ray glue and the DVC bridge.

Every task that needs the problem resolves it from its name (`problem` input, or `Dataset.problem`).
The mapping from tune/train outputs to the bridge's generic record is `tasks.record.experiment`.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NamedTuple, Optional

import flytekit
from flytekit import Deck, HashMethod, dynamic, task
from flytekit.deck import DeckField
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

from compat.flytekit import keep_only_this_tasks_timeline
from dvc_bridge.bridge import (
    ExperimentRef,
    has_default_remote,
    preflight,
    record_experiment,
    redact_url,
    resolve_target,
    validate_exp_name,
)
from dvc_bridge.direction import higher_is_better
from dvc_bridge.errors import TargetError
from dvc_bridge.gitops import Git
from dvc_bridge.live import LiveConfig, add_to_summary, live_env
from dvc_bridge.registry import check_margin
from dvc_bridge.storage import fsspec_options
from dvc_bridge.summary import baseline_changes, changes_markdown, metrics_at, studio_url, summary_html
from tasks.data.arrays import DataError, Splits, load_raw, make_splits, parse_source, pin_source
from tasks.data.shards import is_sharded, resolve_to_file
from tasks.flyte import secrets
from tasks.flyte.clusters import TRAIN_CLUSTER, TUNE_CLUSTER, capacity, ray_job_config
from tasks.flyte.contracts import Dataset, RunTarget, SearchHistory, TrainResult, TuneResult
from tasks.flyte.home import storage_home
from tasks.flyte.recoverable import lost_cluster, recoverable_on_lost_cluster, recoverable_on_transient
from tasks.flyte.refusals import shown_short
from tasks.problem import Problem, complete, load_problem, metric_key, search_space, space_document
from tasks.record import experiment
from tasks.reporting import decks as report
from tasks.reporting.lines import next_steps
from tasks.training.baselines import BaselineScores, baseline_line, gate_with_baseline, score_baseline
from tasks.training.capacity import (
    check_data_fits,
    check_settings,
    train_timeout_s,
    tune_concurrency,
    tune_timeout_s,
)
from tasks.training.loop import effective_global_batch
from tasks.training.settings import SettingsError, TrainCluster, TrainSettings, TuneCluster, TuneSettings

# Attempts after the first for the Ray tasks when their cluster is lost (a FlyteRecoverableException from the
# driver); each resumes from the storage home (tasks/flyte/home.py). KubeRay failures count against Flyte's
# separate system-retry budget.
RAY_TASK_RETRIES = 2
# Bump when a change to the code should invalidate cached task outputs.
CACHE_VERSION = "2"
# Decks show our own pages plus inputs, outputs and the timeline; flytekit's default also has a
# "Dependencies" page, which runs `pip` after every task (seconds each, and noise in the log).
DECK_FIELDS = (DeckField.INPUT, DeckField.OUTPUT, DeckField.TIMELINE)


def _workdir(name: str) -> Path:
    path = Path(flytekit.current_context().working_directory) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def gate_threshold(problem: Problem, gate: Optional[float]) -> float:
    return problem.gate if gate is None else gate


@task
@shown_short
def validate_settings(
    problem: str,
    tune: TuneSettings,
    train: TrainSettings,
    gate: Optional[float],
    tune_cluster: TuneCluster = TuneCluster(),
    train_cluster: TrainCluster = TrainCluster(),
) -> bool:
    """Refuse a bad problem, bad settings, a bad search space or a cluster request that can never be met,
    before any Ray cluster starts. Locally the clusters are this machine (CPUs as cgroup and affinity allow)."""
    p = load_problem(problem)
    tune_cluster.validate()
    train_cluster.validate()
    check_settings(p, tune, train, capacity(tune_cluster), capacity(train_cluster))
    if gate is not None and not math.isfinite(gate):
        raise SettingsError(
            f"gate={gate!r} is not valid: give the test {p.select} at which a run is promoted "
            f"({'at least' if higher_is_better(p.mode) else 'at most'} it), or leave it out for {p.gate}."
        )
    return True


class PinnedSource(NamedTuple):
    source: str
    version: str


@task(secret_requests=secrets.CLOUD)  # an s3:// or dvc:// source is read with the team's cloud credentials
@shown_short
def pin_dataset(source: str, problem: str) -> PinnedSource:
    """Never cached: pins the source to what it names now, so the cached preparation sees new data."""
    return PinnedSource(*pin_source(source, load_problem(problem)))


@task(cache=True, cache_version=CACHE_VERSION, secret_requests=secrets.CLOUD)
@shown_short
def prepare_data(
    source: str, version: str, problem: str, seed: int = 0
) -> Annotated[Dataset, HashMethod(lambda d: d.sha256)]:
    """Load, check against the problem's schema, split (train / validation / test) and prepare the data.

    The output is keyed by its content hash; `version` (from `pin_dataset`) is only part of the
    cache key: new content, new preparation.
    """
    p = load_problem(problem)
    if is_sharded(source):
        return _shards_dataset(source, p, problem)
    parsed = parse_source(source)
    raw, rev = load_raw(parsed, p)
    splits = make_splits(raw, p, seed=seed)
    digest = splits.content_hash()
    path = _workdir("data") / f"dataset-{digest[:16]}.npz"
    splits.save(path)
    sizes = splits.sizes()
    return Dataset(
        file=FlyteFile(str(path)),
        sha256=digest,
        n_train=sizes["train"],
        n_val=sizes["val"],
        n_test=sizes["test"],
        source=parsed.describe(p),
        problem=problem,
        dvc_rev=rev,
        nbytes=splits.nbytes(),
    )


def _shards_dataset(source: str, problem: Problem, problem_ref: str) -> Dataset:
    """A directory of Parquet shards: its manifest (schema checked on a sample), nothing loaded whole."""
    if problem.form != "declarative":
        raise DataError(
            f"{source} is a directory of Parquet shards, which streams through the project's own training loop only, "
            f"and problem {problem_ref!r} brings its own ({problem.form}); give it an .npz or a DVC-tracked file "
            "(loaded in memory), or declare the problem's model, loss and optimizer instead of its loop."
        )
    manifest, path = resolve_to_file(source, problem, problem_ref, _workdir("data"))
    return Dataset(
        file=FlyteFile(str(path)),
        sha256=manifest.sha256,
        n_train=0,
        n_val=0,
        n_test=0,
        source=manifest.source,
        problem=problem_ref,
        dvc_rev=manifest.dvc_rev,
        shards=manifest,
    )


def _in_object_store(data: Dataset):
    """The splits put once into the task's Ray object store, the driver keeping no copy of its own:
    one copy per node, which every trial and worker reads in place. Streamed data: its manifest only."""
    import ray

    if data.shards is not None:
        return data.shards
    return ray.put(Splits.load(data.file.download()))


def _streamed_baseline(data: Dataset, run) -> BaselineScores:
    """The streamed data's baseline (`run`: tasks.ray_glue.baseline.run_streamed_baseline). A lost cluster is the
    retry's (training then resumes past its last epoch); any other failure leaves the run without a baseline, said
    in the log, rather than failing a training that has finished."""
    try:
        return run(data.shards, data.problem)
    except Exception as e:
        if lost_cluster(e) is not None:
            raise
        cause = getattr(e, "cause", None) or e  # a Ray task's error: the one its function raised
        return BaselineScores("", {}, f"its fit failed: {type(cause).__name__}: {str(cause)[:300]}")


def _show_first(deck: Deck) -> None:
    """Open the task's Deck page on `deck`, with only this task's pages and Timeline rows.

    flytekit shows pages in the order they were added (the first is open), and adds its Timeline
    before the task body runs. A local run also keeps every earlier task's pages and Timeline rows
    in one list; each task there ends with a "dispatch execute" row, after which this task's begin.
    """
    keep_only_this_tasks_timeline(flytekit.current_context().decks, deck)


@task(
    task_config=TUNE_CLUSTER,
    retries=RAY_TASK_RETRIES,
    timeout=timedelta(seconds=tune_timeout_s(TuneSettings(), TuneCluster())),  # a run's own: tune_on_cluster
    cache=True,
    cache_version=CACHE_VERSION,
    enable_deck=True,
    deck_fields=DECK_FIELDS,
    secret_requests=secrets.CLOUD,  # trials stream sharded data from the DVC remote or s3://
)
@shown_short
def tune_hyperparameters(
    data: Dataset,
    settings: TuneSettings,
    cluster: TuneCluster = TuneCluster(),
    history: SearchHistory = SearchHistory(),
) -> TuneResult:
    """Ray Tune search (random, grid or Optuna) with ASHA early stopping on the task's own Ray cluster; trials
    ranked on validation.

    `cluster` is the size this task's RayJob was given (`tune_on_cluster`): as many trials run at once as
    its largest size holds, so with autoscaling the pending trials are the demand the autoscaler sees.
    `history`: with warm_start, the earlier experiments' trials that seed the searcher (`search_history`).
    """
    from tasks.ray_glue.storage import ray_storage
    from tasks.ray_glue.tune import run_tune

    settings.validate()
    problem = load_problem(data.problem)
    # The same storage in every attempt: a retry after a lost cluster resumes the search (tasks/flyte/home.py).
    storage_path, fs = ray_storage(storage_home(task="tune_hyperparameters").uri, "ray")
    cap = capacity(cluster)
    out = _workdir("tune")
    trials_live = out / "trials-dvclive" if settings.record_trials else None
    notes = history.describe() if settings.warm_start else []
    for line in notes:
        print(line, flush=True)
    with recoverable_on_lost_cluster():
        outcome = run_tune(
            _in_object_store(data),
            data.problem,
            settings,
            storage_path,
            fs,
            concurrency=tune_concurrency(settings, cap),
            startup_timeout_s=cluster.startup_timeout_s,
            where=cap.where,
            trials_live_dir=trials_live,
            warm=history if settings.warm_start else None,
        )
    outcome.trials.to_csv(out / "trials.csv", index=False)
    space = space_document(search_space(problem, settings.space))
    labels = report.trial_labels(outcome.trials, outcome.searched)
    report.trials_plot(outcome.history, out / "trials.png", outcome.metric, labels)
    page = report.trials_page(
        outcome.trials,
        outcome.history,
        metric=outcome.metric,
        mode=problem.mode,
        searched=outcome.searched,
        space=space,
        best=outcome.best,
        best_score=outcome.best_score,
        trials_png=out / "trials.png",
        workdir=_workdir("tune-report"),
        searcher=settings.search,
        notes=notes,
    )
    _show_first(Deck("Trials", page))
    return TuneResult(
        best=outcome.best,
        metric=outcome.metric,
        best_score=outcome.best_score,
        space=space,
        trials_csv=FlyteFile(str(out / "trials.csv")),
        trials_png=FlyteFile(str(out / "trials.png")),
        trials_live=FlyteDirectory(str(trials_live)) if trials_live is not None and trials_live.is_dir() else None,
    )


def live_config(run: RunTarget, live_uri: str, raw_output_prefix: str) -> LiveConfig:
    """Where rank 0 mirrors DVCLive (default: this execution's raw output) and the DVC / Studio env it logs with.

    Read at run time; the Studio token comes from the environment or Flyte's secret store and
    travels to rank 0 in memory only.
    """
    mirror = f"{live_uri.rstrip('/')}/{run.exp_name}" if live_uri else f"{raw_output_prefix.rstrip('/')}/dvclive"
    env = live_env(run.exp_name, run.baseline_rev, run.repo)
    token = secrets.read(secrets.STUDIO_TOKEN)
    if token:
        env[secrets.STUDIO_TOKEN.env_var] = token
    return LiveConfig(
        mirror_uri=mirror,
        storage_options=fsspec_options(mirror, credentials=False),
        env=env,
        repo_path=experiment.LIVE_DIR,  # Studio's paths: the experiment's, not the worker's temp dir
    )


@task(
    task_config=TRAIN_CLUSTER,
    retries=RAY_TASK_RETRIES,
    timeout=timedelta(seconds=train_timeout_s(TrainSettings(), TrainCluster())),  # a run's own: train_on_cluster
    cache=True,
    cache_version=CACHE_VERSION,
    # Where the run is recorded and watched does not change what is trained.
    cache_ignore_input_vars=("run", "live_uri", "cluster"),
    secret_requests=secrets.TRAIN_SECRETS,
    enable_deck=True,
    deck_fields=DECK_FIELDS,
)
@shown_short
def train_model(
    data: Dataset,
    params: dict[str, Any],
    settings: TrainSettings,
    run: RunTarget,
    live_uri: str,
    cluster: TrainCluster = TrainCluster(),
) -> TrainResult:
    """Ray Train TorchTrainer (DDP) with the tuned hyper-parameters, a checkpoint every epoch, test scored once.

    Rank 0 logs each epoch with DVCLive and mirrors it to `live_uri`/<experiment> (default: under
    this execution's raw-output prefix) while training runs.
    """
    from tasks.ray_glue.baseline import run_streamed_baseline
    from tasks.ray_glue.storage import ray_storage
    from tasks.ray_glue.train import run_train

    settings.validate()
    problem = load_problem(data.problem)
    hp = complete(problem, params)
    ctx = flytekit.current_context()
    live = live_config(run, live_uri, ctx.raw_output_prefix)
    print(
        f"live metrics (DVCLive metrics.json, plots/metrics/*) are copied each epoch to {live.mirror_uri}", flush=True
    )
    global_batch = effective_global_batch(hp["batch_size"], settings.num_workers)
    if global_batch != hp["batch_size"]:
        print(
            f"batch_size {hp['batch_size']} does not divide over {settings.num_workers} workers: "
            f"training with a global batch of {global_batch}",
            flush=True,
        )
    # The same storage and run name in every attempt: a retry after a lost cluster resumes training from the
    # last checkpoint (tasks/flyte/home.py).
    storage_path, fs = ray_storage(storage_home(task="train_model").uri, "ray")
    with recoverable_on_lost_cluster():
        outcome = run_train(
            _in_object_store(data),
            data.problem,
            hp,
            settings,
            _workdir("train"),
            storage_path,
            fs,
            live=live,
            startup_timeout_s=cluster.startup_timeout_s,
            where=capacity(cluster).where,
            run_name="train",
        )
        # The reference model on the same splits, recorded beside the model's scores (baseline/test/<metric>).
        # Streamed shards: fitted from sums over one pass, on a worker of this cluster, after training.
        if data.shards is None:
            baseline = score_baseline(problem, Splits.load(data.file.download()))
        else:
            baseline = _streamed_baseline(data, run_streamed_baseline)
    val = {k: v for k, v in outcome.final.items() if k.startswith("val/")}
    select = metric_key("val", problem.select)
    if baseline.scores:
        add_to_summary(outcome.live_dir, baseline.scores)
        print(f"baseline {baseline.name}: {baseline_line(problem, baseline.scores)}", flush=True)
    else:
        print(f"baseline: none ({baseline.why_none})", flush=True)
    curves = _workdir("train-report") / "curves.png"
    report.curves_plot(outcome.history, curves, select, outcome.test.get(metric_key("test", problem.select)))
    page = report.training_page(
        outcome.history,
        metric=select,
        mode=problem.mode,
        val=val,
        test=outcome.test,
        params=hp,
        curves_png=curves,
        live_uri=live.mirror_uri,
        global_batch=global_batch,
        workers=settings.num_workers,
        baseline=baseline.scores,
        baseline_name=baseline.name,
    )
    _show_first(Deck("Training", page))
    return TrainResult(
        model=FlyteFile(str(outcome.model_path)),
        dvclive=FlyteDirectory(str(outcome.live_dir)),
        val=val,
        test=outcome.test,
        global_batch_size=global_batch,
        history=outcome.history,
        live_uri=live.mirror_uri,
        baseline=baseline.scores,
        baseline_name=baseline.name,
    )


@task(retries=2, secret_requests=secrets.BRIDGE_SECRETS)
def search_history(run: RunTarget, data: Dataset, settings: TuneSettings) -> SearchHistory:
    """With tune.warm_start: the trials of the earlier experiments in the target repo for the same problem and
    data version that fit this search's space (`tasks.record.history`); otherwise nothing, the repo unread."""
    if not settings.warm_start:
        return SearchHistory()
    from dvc_bridge.history import read_history
    from tasks.record.history import HISTORY_FILES, warm_start

    secrets.export(secrets.BRIDGE_SECRETS)
    problem = load_problem(data.problem)
    workdir = Path(tempfile.mkdtemp(prefix="frd-history-", dir=flytekit.current_context().working_directory))
    with recoverable_on_transient():
        revisions = read_history(resolve_target(run.repo), HISTORY_FILES, workdir, git=Git())
    history = warm_start(problem, data.problem, data.sha256, search_space(problem, settings.space), revisions)
    for line in history.describe():
        print(line, flush=True)
    return history


@dynamic
@shown_short
def tune_on_cluster(
    data: Dataset, settings: TuneSettings, cluster: TuneCluster, history: SearchHistory = SearchHistory()
) -> TuneResult:
    """The search on a RayJob of the requested size, with a Flyte timeout derived from the settings.

    Flyte's way to size a task per run: at run time this step emits `tune_hyperparameters` with its
    task config (the RayJob: worker group, autoscaling, GPUs) and timeout overridden. Run locally,
    the overrides have nothing to act on (the cluster is this machine) and the task simply runs.
    Data the task's driver could never hold is refused here, before the RayJob exists.
    """
    if data.shards is None:  # streamed data is never held whole by a driver
        check_data_fits(data.nbytes, capacity(cluster))
    return tune_hyperparameters(data=data, settings=settings, cluster=cluster, history=history).with_overrides(
        task_config=ray_job_config(cluster),
        timeout=timedelta(seconds=tune_timeout_s(settings, cluster)),
        interruptible=cluster.interruptible,
    )


@dynamic
@shown_short
def train_on_cluster(
    data: Dataset, params: dict[str, Any], settings: TrainSettings, run: RunTarget, live_uri: str, cluster: TrainCluster
) -> TrainResult:
    """Training on a RayJob of the requested size, with a Flyte timeout derived from the settings (see tune_on_cluster)."""
    if data.shards is None:  # streamed data is never held whole by a driver
        check_data_fits(data.nbytes, capacity(cluster))
    return train_model(
        data=data, params=params, settings=settings, run=run, live_uri=live_uri, cluster=cluster
    ).with_overrides(
        task_config=ray_job_config(cluster),
        timeout=timedelta(seconds=train_timeout_s(settings, cluster)),
        interruptible=cluster.interruptible,
    )


def default_exp_name(execution_id: str) -> str:
    """flyte-<execution id>; a local run (whose id is just 'local') gets a timestamp instead."""
    if execution_id and execution_id != "local":
        return f"flyte-{execution_id}"
    return f"local-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


@task(retries=2, secret_requests=secrets.BRIDGE_SECRETS)
@shown_short
def check_target(
    repo_url: str,
    exp_name: str,
    base_rev: str,
    dataset: str = "",
    live_uri: str = "",
    stage: str = "",
    champion: str = "",
    margin: float = 0.0,
) -> RunTarget:
    """Reachable, a DVC repo, a DVC remote when the target is a URL, the registry stages valid for its `.gto`;
    fixes the experiment's name and baseline.

    On a cluster, also refuses the inputs that name this machine (an empty or local repo_url, a local or file://
    dataset or live_uri): `tasks.flyte.remote_checks`.
    """
    from tasks.flyte.clusters import is_local_execution
    from tasks.flyte.remote_checks import check_remote_inputs

    if not is_local_execution():
        check_remote_inputs(repo_url, dataset, live_uri)
    secrets.export(secrets.BRIDGE_SECRETS)
    check_margin(margin)
    if redact_url(repo_url) != repo_url:
        raise TargetError(
            f"repo_url {redact_url(repo_url)!r} carries credentials in the URL, where logs and outputs would show "
            f"them: drop the user:password part and put the token in the {secrets.GIT_TOKEN.env_var} secret."
        )
    execution_id = flytekit.current_context().execution_id.name
    name = exp_name or default_exp_name(execution_id)
    validate_exp_name(name)
    target = resolve_target(repo_url)
    with tempfile.TemporaryDirectory(prefix="frd-preflight-") as d, recoverable_on_transient():
        baseline = preflight(target, Git(), Path(d), base_rev, outs=[experiment.MODEL], stages=[stage, champion])
    # A retry of the same run finds its experiment by this id; two local runs must not share one.
    run_id = execution_id if execution_id != "local" else f"local-{uuid.uuid4().hex}"
    return RunTarget(repo=target.url, exp_name=name, baseline_rev=baseline, run_id=run_id)


@task(retries=2, secret_requests=secrets.BRIDGE_SECRETS, enable_deck=True, deck_fields=DECK_FIELDS)
@shown_short
def commit_experiment(
    repo: RunTarget,
    gate: Optional[float],
    data: Dataset,
    tuned: TuneResult,
    trained: TrainResult,
    tune: TuneSettings,
    train: TrainSettings,
    seed: int,
    stage: str = "staging",
    champion: str = "",
    margin: float = 0.0,
    beat_baseline: Optional[bool] = None,
) -> ExperimentRef:
    """Write the run into its own clone of `repo` as a DVC experiment; push data, then the ref, then (promoted)
    the branch and the model's GTO version and `stage` tags; then tell DVC Studio (when its token is set) the
    experiment is done, with the pushed commit. `champion`: compare with the model in this stage first.

    `beat_baseline`: promote only a run whose test score is also at least as good as the baseline's."""
    secrets.export(secrets.BRIDGE_SECRETS)
    ctx = flytekit.current_context()
    problem = load_problem(data.problem)
    execution_id = repo.run_id or ctx.execution_id.name
    version = data.version()
    threshold = gate_threshold(problem, gate)
    if beat_baseline:
        threshold = gate_with_baseline(problem, threshold, trained.baseline)  # the gate alone without a baseline
        which = " (the gate, and the baseline's score)" if trained.baseline else ", the gate alone: no baseline scored"
        print(f"gate: test/{problem.select} must pass {threshold:.4f}{which}", flush=True)
    record = experiment.describe_run(
        problem,
        params=experiment.params_document(
            data.problem, {**version, "seed": seed}, {**asdict(tune), "space": tuned.space}, asdict(train)
        ),
        best=tuned.best,
        trials_csv=Path(tuned.trials_csv.download()),
        trials_png=Path(tuned.trials_png.download()),
        model=Path(trained.model.download()),
        live_dir=Path(trained.dvclive.download()),
        val=trained.val,
        test=trained.test,
        run_info={
            "execution_id": execution_id,
            "project": ctx.execution_id.project,
            "domain": ctx.execution_id.domain,
            "data": {**version, "n_train": data.n_train, "n_val": data.n_val, "n_test": data.n_test},
            "tune": {"metric": tuned.metric, "best_score": tuned.best_score},
            "global_batch_size": trained.global_batch_size,
            "baseline": {"name": trained.baseline_name, **trained.baseline},
        },
        gate=threshold,
        # record_trials: every Tune trial also as its own experiment beside the run's
        trials_live=Path(tuned.trials_live.download()) if tuned.trials_live is not None else None,
        exp_name=repo.exp_name,
        stage=stage,
        champion=champion,
        margin=margin,
    )
    workdir = Path(tempfile.mkdtemp(prefix="frd-bridge-", dir=ctx.working_directory))
    with recoverable_on_transient():
        ref = record_experiment(
            resolve_target(repo.repo), repo.exp_name, record, workdir, base_rev=repo.baseline_rev, git=Git()
        )
    print(f"experiment {ref.name} ({ref.commit[:8]}) in {ref.repo}: {ref.decision}")
    if record.siblings:
        print(
            f"record_trials: saved {len(record.siblings)} trials as experiments beside it: {', '.join(record.siblings)}"
        )
    # The change against the baseline, as `dvc metrics diff` / `dvc params diff --md` print it (what CML posts).
    changes = baseline_changes(workdir / "repo", ref)
    if changes is not None:
        print(changes_markdown(changes, ref.name, ref.baseline_rev[:8]), flush=True)
    print(next_steps(ref.name, ref.repo, has_remote=has_default_remote(workdir / "repo")), flush=True)
    names = [metric_key(split, name) for name in (problem.select, "loss") for split in ("val", "test")]
    names += [f"baseline/{metric_key('test', problem.select)}"]
    scored = {**trained.val, **trained.test, **trained.baseline}
    page = summary_html(
        ref,
        scores={k: scored[k] for k in names if k in scored},
        # record_experiment's clone (workdir/repo) holds the baseline commit, for a URL target too.
        baseline_metrics=metrics_at(workdir / "repo", ref.baseline_rev, experiment.LIVE_METRICS),
        modes={
            **{metric_key(split, problem.select): problem.mode for split in ("val", "test")},
            f"baseline/{metric_key('test', problem.select)}": problem.mode,
        },
        studio_url=studio_url(bool(secrets.read(secrets.STUDIO_TOKEN))),
        metrics_path=experiment.LIVE_METRICS,
        changes=changes,
    )
    _show_first(Deck("Experiment", page))
    return ref
