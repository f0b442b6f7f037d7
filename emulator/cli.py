"""The command line: `python -m emulator` (or `python scripts/emulate_remote.py`).

python -m emulator --repo-url file:///path/to/bare.git      # starts its own S3
python -m emulator --print-rayjob                          # the RayJobs, nothing run
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import typing
from pathlib import Path

import emulator
from emulator.blobstore import BlobStore
from emulator.chaos import ClusterLoss
from emulator.host import moto_server
from emulator.kuberay import node_commands, plain_dumper
from emulator.literals import python_literals, to_python
from emulator.packaging import DOMAIN, PROJECT, VERSION, Package, build_package
from emulator.pods import fill_template
from emulator.run import Execution

IMAGE = "localhost:30000/flyte-ray-dvc:emulated"


def secrets_from_env(env=os.environ) -> dict[tuple[str, str], str]:
    """The project's Flyte secrets, valued from this environment's variables of the same names."""
    from tasks.flyte import secrets

    return {
        (s.group, s.key): env[s.env_var]
        for s in [*secrets.BRIDGE_SECRETS, *secrets.TRAIN_SECRETS]
        if env.get(s.env_var)
    }


def print_rayjobs(package: Package, out=None, bucket: str = "flyte-emulated") -> list[dict]:
    """Print, as YAML, the RayJob Flyte 1.16 would create for each `ray` task of the package (one attempt, args filled
    with an execution's paths; nothing is run or uploaded), each preceded by the `ray start` KubeRay runs per pod."""
    import yaml

    out = out or sys.stdout
    execution = Execution(package, BlobStore("http://127.0.0.1:9", bucket), Path(tempfile.gettempdir()), name="print")
    manifests = []
    for task_name, task in sorted(package.tasks.items()):
        if task.type != "ray":
            continue
        node_id = task_name.rsplit(".", 1)[-1].replace("_", "-")
        meta = f"metadata/propeller/{PROJECT}-{DOMAIN}-{execution.name}/{node_id}/data"
        raw = execution.store.uri("data", execution.name, f"{node_id}-0")
        archive = package.fast_archive
        args = fill_template(
            list(task.container.args),
            {
                "input": execution.store.uri(meta, "inputs.pb"),
                "outputPrefix": execution.store.uri(meta, "0"),
                "rawOutputDataPrefix": raw,
                "checkpointOutputPrefix": f"{raw}/_flytecheckpoints",
                "prevCheckpointPrefix": "",
                "remote_package_path": execution.store.uri("fast", VERSION, archive.name) if archive else "",
            },
        )
        manifest = execution.rayjob(task, args, node_id, 0)
        manifests.append(manifest)
        out.write(
            f"---\n# {task_name}: the RayJob the Flyte Ray plugin creates (one attempt).\n"
            "# KubeRay then starts each pod with:\n"
        )
        for pod, command in node_commands(manifest).items():
            out.write(f"#   {pod}: {command}\n")
        out.write(yaml.dump(manifest, Dumper=plain_dumper(), sort_keys=False))
    return manifests


def _cluster_loss(text: str) -> ClusterLoss:
    try:
        return ClusterLoss.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=emulator.__doc__.split("\n\n")[0])
    parser.add_argument("--repo-url", default="", help="the DVC repo (git URL) to commit to; needs a DVC remote")
    parser.add_argument(
        "--print-rayjob",
        action="store_true",
        help="print the RayJob manifest (YAML) emulated for each Ray task of the package; run nothing",
    )
    parser.add_argument(
        "--package", default="", help="a `pyflyte package` archive to use (default: package the project)"
    )
    parser.add_argument("--launch-plan", default="nightly_retrain")
    parser.add_argument("--kickoff-time", default="", help="ISO time for a scheduled plan (default: now)")
    parser.add_argument(
        "--inputs",
        default='{"tune": {"num_samples": 2, "max_epochs": 1}, "train": {"epochs": 2, "num_workers": 2}}',
        help='JSON launch inputs, e.g. add "problem": "diabetes" or "train_cluster": {"workers": 3}',
    )
    parser.add_argument(
        "--lose-cluster",
        action="append",
        default=[],
        type=_cluster_loss,
        metavar="TASK:N",
        help="kill every Ray process of TASK's first attempt after N epochs (train_model:N) or N finished trials "
        "(tune_hyperparameters:N), as a lost spot node would; the retry resumes (repeatable)",
    )
    parser.add_argument("--s3-endpoint", default="", help="S3 endpoint of the blob store (default: start moto_server)")
    parser.add_argument("--bucket", default="flyte-emulated")
    parser.add_argument("--workdir", default="", help="where pods and logs go (default: a temp dir)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    opts = parser.parse_args(argv)
    workdir = Path(opts.workdir or tempfile.mkdtemp(prefix="emulate-remote-"))
    if opts.print_rayjob:
        return _print_only(opts, workdir)
    if not opts.repo_url:
        parser.error("--repo-url is required to run (not with --print-rayjob)")
    if opts.s3_endpoint:
        return _emulate(opts, opts.s3_endpoint, workdir)
    with moto_server() as endpoint:
        return _emulate(opts, endpoint, workdir)


def _print_only(opts: argparse.Namespace, workdir: Path) -> int:
    """--print-rayjob: package the project (or read --package), print its RayJobs, run nothing."""
    env = {
        **os.environ,
        "HOME": str(workdir / "home"),
        **({"EXPERIMENTS_REPO_URL": opts.repo_url} if opts.repo_url else {}),
    }
    archive = Path(opts.package) if opts.package else build_package(workdir / "package.tgz", IMAGE, env=env)
    print_rayjobs(Package.load(archive, workdir / "package"), bucket=opts.bucket)
    return 0


def _emulate(opts: argparse.Namespace, endpoint: str, workdir: Path) -> int:
    """Package the project, launch the plan on the blob store at `endpoint`, print the experiment it made."""
    store = BlobStore(endpoint, opts.bucket)
    with contextlib.suppress(Exception):
        store.client.create_bucket(Bucket=opts.bucket)
    env = {**os.environ, "EXPERIMENTS_REPO_URL": opts.repo_url, "HOME": str(workdir / "home")}
    archive = build_package(workdir / "package.tgz", IMAGE, env=env)
    package = Package.load(archive, workdir / "package")
    from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings

    given = json.loads(opts.inputs)
    types = {"tune": TuneSettings, "train": TrainSettings, "tune_cluster": TuneCluster, "train_cluster": TrainCluster}
    values = {k: types[k](**v) if k in types else v for k, v in given.items()}
    literals = python_literals(values, {**types, **{k: type(v) for k, v in values.items() if k not in types}})
    kickoff = dt.datetime.fromisoformat(opts.kickoff_time) if opts.kickoff_time else dt.datetime.now(dt.UTC)
    execution = Execution(
        package, store, workdir, secrets=secrets_from_env(), echo=True, lose_clusters=tuple(opts.lose_cluster)
    )
    print(f"execution {execution.name}: launch plan {opts.launch_plan}, pods and logs in {workdir}", flush=True)
    literals_out = execution.run_launch_plan(opts.launch_plan, literals, kickoff_time=kickoff)
    from workflows.tune_train import TuneTrainOutputs

    out = TuneTrainOutputs(**to_python(literals_out, typing.get_type_hints(TuneTrainOutputs)))
    exp, trained = out.experiment, out.trained
    for run in execution.runs:
        if run.lost_cluster_at is not None:
            print(
                f"{run.node_id} {run.task}: cluster lost after {run.lost_cluster_at} in attempt 0; "
                f"{run.attempts} attempt(s), {run.seconds:.1f} s in all"
            )
    print(
        f"experiment {exp.name} ({exp.commit[:8]}) in {exp.repo}: data pushed {exp.data_pushed}, "
        f"ref pushed {exp.ref_pushed}; {exp.decision}; model {trained.model.remote_source}"
    )
    return 0
