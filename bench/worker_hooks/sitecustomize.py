"""Timing marks inside every Python process of a benchmarked run (Ray workers included).

Python imports `sitecustomize` at start-up from any directory on sys.path; the benchmarks put
this directory on PYTHONPATH of the runs they measure, and the Ray workers inherit it. It does
nothing unless BENCH_MARKS names a marks file. Then it records, per process: when the process
was created, the imports of a few heavy modules (torch, ray, matplotlib...), and - once the modules are imported - ray.init/shutdown,
Tuner.fit, the Ray Train trainer's fit, the project's training steps (tasks.training.loop: build,
make_loader, train_epoch, evaluate), torch.distributed's init_process_group (DDP set-up) and
Ray Train's prepare_model, every rank's `ray.train.report`, and in tasks.ray_glue.train the driver's
`run_train` and rank 0's per-epoch `_report_checkpoint`. Self-contained and defensive:
it must never break the process it lives in.
"""

from __future__ import annotations

import os

_PATH = os.environ.get("BENCH_MARKS")


def _mark(event: str, **fields) -> None:
    import json
    import time

    try:
        line = json.dumps({"t": time.time(), "pid": os.getpid(), "ev": event, **fields}, default=str)
        with open(_PATH, "a") as f:
            f.write(line + "\n")
    except Exception:
        pass


def _process_created() -> float:
    """Absolute time the kernel created this process."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    return btime + start_ticks / os.sysconf("SC_CLK_TCK")


def _caller() -> list[str]:
    """The code that imports a module: the innermost frames outside the import machinery."""
    import traceback

    frames = [
        f for f in traceback.extract_stack()[:-3] if "importlib" not in f.filename and "sitecustomize" not in f.filename
    ]
    return [f"{f.filename.split('site-packages/')[-1]}:{f.lineno}" for f in frames[-6:]]


def _wrap(owner, name: str, event: str) -> None:
    import functools

    original = getattr(owner, name, None)
    if original is None or getattr(original, "_bench_wrapped", False):
        return

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        _mark(f"{event}_start")
        try:
            return original(*args, **kwargs)
        finally:
            _mark(f"{event}_end")

    wrapper._bench_wrapped = True
    setattr(owner, name, wrapper)


def _hook_training(module) -> None:
    for name in ("build", "make_loader", "train_epoch", "evaluate"):
        _wrap(module, name, name)


def _hook_distributed(module) -> None:
    _wrap(module, "init_process_group", "init_process_group")


def _hook_prepare(module) -> None:
    _wrap(module, "prepare_model", "prepare_model")


def _hook_ray(module) -> None:
    _wrap(module, "init", "ray_init")
    _wrap(module, "shutdown", "ray_shutdown")


def _hook_train_api(module) -> None:
    _wrap(module, "report", "train_report_call")  # every rank's ray.train.report (a barrier across ranks)


def _hook_ray_train_glue(module) -> None:
    # the driver's run_train (fit + copying the result out) and rank 0's per-epoch checkpoint write + report
    _wrap(module, "run_train", "run_train")
    _wrap(module, "_report_checkpoint", "report_checkpoint")


def _hook_tuner(module) -> None:
    _wrap(module.Tuner, "fit", "tune_fit")


def _hook_trainer(module) -> None:
    _wrap(module.DataParallelTrainer, "fit", "train_fit")


def _install() -> None:
    import importlib.abc
    import sys

    timed = ("torch", "ray", "ray.tune", "ray.train", "matplotlib.pyplot", "pandas", "flytekit", "dvc.repo", "dvclive")
    before = {name: (lambda n=name: _mark(f"import_{n}_start", caller=_caller())) for name in timed}
    after = {name: (lambda m, n=name: _mark(f"import_{n}_end")) for name in timed}
    after.update(
        {
            "torch.distributed": _hook_distributed,
            "tasks.training.loop": _hook_training,
            "ray.train.v2.torch.train_loop_utils": _hook_prepare,
            "ray.train.torch.train_loop_utils": _hook_prepare,
            "ray.tune.tuner": _hook_tuner,
            "ray.train.v2.api.data_parallel_trainer": _hook_trainer,
            "tasks.ray_glue.train": _hook_ray_train_glue,
        }
    )
    hooks_for_ray = after.pop("ray")
    after["ray"] = lambda m: (hooks_for_ray(m), _hook_ray(m))
    import_end_train = after.pop("ray.train")
    after["ray.train"] = lambda m: (import_end_train(m), _hook_train_api(m))

    busy: set[str] = set()

    class AfterImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in after or name in busy:
                return None
            busy.add(name)  # other finders may ask the finders again (another hook-finder does)
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
                busy.discard(name)
            if name in before:
                before.pop(name)()
            hook, loader = after.pop(name), spec.loader
            original_exec = loader.exec_module

            def exec_module(module):
                original_exec(module)
                try:
                    hook(module)
                except Exception:
                    pass

            loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, AfterImport())
    try:
        with open("/proc/self/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a][:3]
        _mark("process", created=_process_created(), argv=argv)
    except Exception:
        pass


if _PATH:
    try:
        _install()
    except Exception:
        pass
