"""What Flyte would be given for a run's cluster sizes: the Ray tasks the dynamic steps emit.

    python -m tasks.sizing --tune '{"num_samples": 32}' \
        --tune_cluster '{"workers": 1, "min_workers": 1, "max_workers": 4, "cpus_per_worker": 4}' \
        --train_cluster '{"workers": 2, "gpus_per_worker": 1}' --train '{"use_gpu": true}'

On a cluster, `tune_on_cluster` and `train_on_cluster` run as pods that compile a one-node
workflow (a DynamicJobSpec) around the Ray task with its task config and timeout overridden;
propeller then creates the RayJob from that task. This runs the same compilation here, as the
pod would (flytekit's task-execution mode, the project's default image), and prints each Ray
task's timeout and the `rayCluster` part of its spec, the part KubeRay builds the cluster from.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

from compat.flytekit import forget_compiled_dynamic, set_task_config
from tasks.training.settings import TrainCluster, TrainSettings, TuneCluster, TuneSettings


def compile_dynamic(step, inputs: dict[str, Any], image: str = "ghcr.io/example/flyte-ray-dvc:latest"):
    """Run a @dynamic step's compilation as its pod would on Flyte; returns the DynamicJobSpec (flytekit model)."""
    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.core.context_manager import ExecutionState, FlyteContextManager
    from flytekit.core.type_engine import TypeEngine

    # flytekit compiles a dynamic step's workflow once per process and reuses it (a pod compiles once); each call
    # here stands for a pod of its own, with its own inputs.
    forget_compiled_dynamic(step)
    name, tag = image.rsplit(":", 1) if ":" in image.rsplit("/", 1)[-1] else (image, "latest")
    settings = SerializationSettings(image_config=ImageConfig(default_image=Image(name="default", fqn=name, tag=tag)))
    ctx = FlyteContextManager.current_context()
    with FlyteContextManager.with_context(ctx.with_serialization_settings(settings)) as ctx:
        state = ctx.new_execution_state().with_params(mode=ExecutionState.Mode.TASK_EXECUTION)
        with FlyteContextManager.with_context(ctx.with_execution_state(state)) as ctx:
            hints = step.python_interface.inputs
            literals = TypeEngine.dict_to_literal_map(ctx, inputs, {k: hints[k] for k in inputs})
            return step.dispatch_execute(ctx, literals)


def ray_tasks(tune: TuneSettings, train: TrainSettings, tune_cluster: TuneCluster, train_cluster: TrainCluster) -> dict:
    """{task name: {"timeout_s", "rayCluster", ...}} for the two Ray tasks of a run with these settings."""
    from flytekit.types.file import FlyteFile
    from google.protobuf.json_format import MessageToDict

    from tasks.flyte.contracts import Dataset, RunTarget
    from tasks.flyte.tasks import train_model, train_on_cluster, tune_hyperparameters, tune_on_cluster
    from tasks.training.capacity import Capacity, check_cluster_fits

    check_cluster_fits(tune, train, Capacity.of(tune_cluster), Capacity.of(train_cluster))
    # with_overrides(task_config=...) sets it on the task object itself; a pod compiles once, this process may not.
    packaged = {t: t.task_config for t in (tune_hyperparameters, train_model)}
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "data.npz").write_bytes(b"")  # the data is never read: compiling only wires the node
        data = Dataset(
            file=FlyteFile(str(Path(d) / "data.npz")),
            sha256="0" * 64,
            n_train=1,
            n_val=1,
            n_test=1,
            source="",
            problem="digits",
        )
        run = RunTarget(**{f.name: "" for f in fields(RunTarget) if f.type in (str, "str")})
        specs = {
            "tune_hyperparameters": compile_dynamic(
                tune_on_cluster, {"data": data, "settings": tune, "cluster": tune_cluster}
            ),
            "train_model": compile_dynamic(
                train_on_cluster,
                {"data": data, "params": {}, "settings": train, "run": run, "live_uri": "", "cluster": train_cluster},
            ),
        }
    for t, config in packaged.items():
        set_task_config(t, config)
    out = {}
    for name, spec in specs.items():
        (node,) = spec.nodes
        (template,) = [t for t in spec.tasks if t.id.name.endswith(name)]
        custom = MessageToDict(template.to_flyte_idl().custom)
        out[name] = {
            "type": template.type,
            "timeout_s": int(node.metadata.timeout.total_seconds()),
            # Attempts after the first (a lost cluster is retried, tasks/flyte/home.py) and spot capacity.
            "retries": template.metadata.retries.retries,
            "interruptible": bool(node.metadata.interruptible),
            **_ints(custom),
        }
    return out


def _ints(value):
    """protobuf Struct numbers are floats; replicas and seconds read better as the integers they are."""
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def main(argv: Optional[list[str]] = None) -> int:
    import logging

    from flytekit.loggers import logger

    logger.setLevel(
        logging.ERROR
    )  # flytekit's notes (the pickled Any of `params`, "this override is beta") are noise here
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("tune", "train", "tune_cluster", "train_cluster"):
        parser.add_argument(f"--{name}", default="{}", help=f"the workflow input {name}, as JSON")
    args = parser.parse_args(argv)
    try:
        values = [
            kind.from_dict(json.loads(getattr(args, name)))
            for kind, name in (
                (TuneSettings, "tune"),
                (TrainSettings, "train"),
                (TuneCluster, "tune_cluster"),
                (TrainCluster, "train_cluster"),
            )
        ]
        specs = ray_tasks(*values)
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import yaml

    from tasks.training.capacity import train_timeout_text, tune_timeout_text

    why = {
        "tune_hyperparameters": tune_timeout_text(values[0], values[2]),
        "train_model": train_timeout_text(values[1], values[3]),
    }
    task = None
    for line in yaml.safe_dump(specs, sort_keys=False).splitlines():
        if not line.startswith(" "):
            task = line.rstrip(":")
        if line.startswith("  timeout_s:") and task in why:
            line = f"{line:<26}# {why[task]}"  # the derivation, as the README shows it
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
