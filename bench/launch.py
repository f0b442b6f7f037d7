"""`pyflyte` with timing marks: `python -m bench.launch run workflows/tune_train.py tune_train_wf ...`.

The same click entry point as the `pyflyte` script, with hooks that only record when things
start and end (bench.marks): each Flyte task (cache check, input/output conversion, user code,
decks), one event per Tune trial start/result/completion (a Tune callback added to the run
config), one per reported epoch (a Ray Train callback on the controller), DVC's commit,
experiment save and push and the bridge's git subcommands, every child process the driver
spawns, and the exit sequence. ray.init, Tuner.fit, the trainer's fit and the steps inside the
Ray workers are marked by bench/worker_hooks/sitecustomize.py, which every process of the run
loads. No production code is changed; a mark costs microseconds.
"""

from __future__ import annotations

import atexit
import functools
import importlib.abc
import inspect
import sys
import time

from bench.marks import mark

mark("launcher_start")
atexit.register(mark, "exit")  # registered first, so it runs after Ray's own atexit shutdown


def _wrap(owner, name: str, event: str, describe=None) -> None:
    original = getattr(owner, name, None)
    if original is None or getattr(original, "_bench_wrapped", False):
        return

    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def wrapper(*args, **kwargs):
            extra = describe(*args, **kwargs) if describe else {}
            mark(f"{event}_start", **extra)
            try:
                return await original(*args, **kwargs)
            finally:
                mark(f"{event}_end", **extra)

    else:

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            extra = describe(*args, **kwargs) if describe else {}
            mark(f"{event}_start", **extra)
            try:
                return original(*args, **kwargs)
            finally:
                mark(f"{event}_end", **extra)

    wrapper._bench_wrapped = True
    setattr(owner, name, wrapper)


def _task_name(self, *args, **kwargs) -> dict:
    return {"task": getattr(self, "name", "?").rsplit(".", 1)[-1]}


def install_flyte_hooks(module=None) -> None:
    from flytekit.core import base_task, workflow

    # local_execute: input conversion, cache look-up, dispatch_execute, cache write.
    # dispatch_execute: pre_execute (a Ray task starts Ray there), inputs to Python, the user's
    # function, outputs to literals (uploads). The user's function runs between the end of
    # inputs_to_python and the start of outputs_to_literals (overridden execute/pre_execute
    # methods of task subclasses cannot be caught on the base class).
    _wrap(base_task.Task, "local_execute", "task", _task_name)
    _wrap(base_task.PythonTask, "dispatch_execute", "dispatch", _task_name)
    _wrap(base_task.PythonTask, "_literal_map_to_python_input", "inputs_to_python", _task_name)
    _wrap(base_task.PythonTask, "_output_to_literal_map", "outputs_to_literals", _task_name)
    _wrap(workflow.WorkflowBase, "local_execute", "workflow")


def install_decks_hook(module=None) -> None:
    # decks: a local run renders them too (the dependencies deck runs `pip list` and `pip freeze`)
    module = sys.modules["flytekit.core.python_function_task"]
    _wrap(module.PythonFunctionTask, "_write_decks", "write_decks", _task_name)


def install_tune_hooks(module=None) -> None:
    from ray import tune

    original_init = tune.Tuner.__init__

    @functools.wraps(original_init)
    def tuner_init(self, *args, **kwargs):
        run_config = kwargs.get("run_config")
        if run_config is not None:
            run_config.callbacks = [*(run_config.callbacks or []), _tune_callback()]
        original_init(self, *args, **kwargs)

    tune.Tuner.__init__ = tuner_init


def install_train_hooks(module=None) -> None:
    from ray.train import RunConfig
    from ray.train.torch import TorchTrainer

    original_trainer_init = TorchTrainer.__init__

    @functools.wraps(original_trainer_init)
    def trainer_init(self, *args, **kwargs):
        run_config = kwargs.get("run_config") or RunConfig()
        run_config.callbacks = [*(run_config.callbacks or []), _train_callback()]
        kwargs["run_config"] = run_config
        original_trainer_init(self, *args, **kwargs)

    TorchTrainer.__init__ = trainer_init


def _tune_callback():
    from ray.tune import Callback

    class MarkTrials(Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            mark("trial_start", trial=trial.trial_id)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            mark(
                "trial_result",
                trial=trial.trial_id,
                epoch=result.get("training_iteration"),
                iter_s=result.get("time_this_iter_s"),
            )

        def on_trial_complete(self, iteration, trials, trial, **info):
            mark("trial_end", trial=trial.trial_id)

        def on_trial_error(self, iteration, trials, trial, **info):
            mark("trial_end", trial=trial.trial_id, error=True)

    return MarkTrials()


def _train_callback():
    import ray.cloudpickle

    import bench.launch_callbacks as cb

    ray.cloudpickle.register_pickle_by_value(cb)  # the controller need not import bench
    return cb.MarkEpochs()


def install_bridge_hooks(module=None) -> None:
    from dvc.repo import Repo
    from dvc.repo.experiments import Experiments

    _wrap(Repo, "commit", "dvc_commit")
    _wrap(Repo, "push", "dvc_push")
    _wrap(Experiments, "save", "dvc_exp_save")


def install_git_hooks(module=None) -> None:
    from dvc_bridge import gitops

    _wrap(gitops.Git, "__call__", "git", lambda self, *args, **kw: {"cmd": args[0] if args else "?"})


def install_spawn_hook() -> None:
    """Mark every child process the driver starts, with the code that started it."""
    import subprocess
    import traceback

    original = subprocess.Popen.__init__

    @functools.wraps(original)
    def popen_init(self, args, *a, **kw):
        cmd = [str(x) for x in (args if isinstance(args, (list, tuple)) else [args])][:4]
        frames = [
            f
            for f in traceback.extract_stack()[:-1]
            if "/subprocess.py" not in f.filename and "/bench/" not in f.filename
        ]
        caller = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}" for f in frames[-4:]]
        mark("spawn", cmd=cmd, caller=caller)
        original(self, args, *a, **kw)

    subprocess.Popen.__init__ = popen_init


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a hook right after a module is first imported, so hooks add no import of their own."""

    def __init__(self, hooks: dict) -> None:
        self.hooks = dict(hooks)
        self.busy: set[str] = set()

    def find_spec(self, name, path, target=None):
        if name not in self.hooks or name in self.busy:
            return None
        self.busy.add(name)  # other finders may ask the finders again (another hook-finder does)
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    break
            else:
                return None
        finally:
            self.busy.discard(name)
        hook, loader = self.hooks.pop(name), spec.loader
        original_exec = loader.exec_module

        def exec_module(module):
            original_exec(module)
            hook(module)

        loader.exec_module = exec_module
        return spec


def main() -> None:
    install_spawn_hook()
    sys.meta_path.insert(
        0,
        _AfterImport(
            {
                "flytekit.core.workflow": install_flyte_hooks,
                "flytekit.core.python_function_task": install_decks_hook,
                "ray.tune": install_tune_hooks,
                "ray.train.torch": install_train_hooks,
                "dvc.repo.experiments": install_bridge_hooks,
                "dvc_bridge.gitops": install_git_hooks,
            }
        ),
    )
    from flytekit.clis.sdk_in_container.pyflyte import main as pyflyte_main

    sys.argv[0] = "pyflyte"
    try:
        pyflyte_main()
    finally:
        mark("pyflyte_returned", t_perf=time.perf_counter())


if __name__ == "__main__":
    main()
