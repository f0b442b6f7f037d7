"""How a refused run ends at a shell: one line that says what to change, the traceback kept in a file.

Two paths reach a person who typed `pyflyte run workflows/tune_train.py tune_train_wf ...`:

* a settings option (`--tune`, `--train`, `--tune_cluster`, `--train_cluster`) is parsed by the
  settings class's `from_json` (flytekit's JSON option type calls it); a bad one becomes click's
  `BadParameter`, which pyflyte prints as one `Invalid value for '--train': ...` error;
* a task of a local run that refuses (the project's own errors, `REFUSALS`) writes the full
  traceback to a log file, prints where it is and then, last, `run failed in <task>: <Error>: <message>`,
  and ends the command with exit code 1 (click's `Exit`, which pyflyte passes through untouched).
  `pyflyte --verbose run ...` keeps flytekit's own traceback instead.

On a Flyte cluster nothing changes: the error goes to Flyte as raised (error.pb, the console).
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, TypeVar

import click
from flytekit.core.context_manager import FlyteContextManager

from dvc_bridge.errors import BridgeError
from dvc_bridge.gitops import GitError
from tasks.data.arrays import DataError
from tasks.problem import ProblemError
from tasks.ray_glue.resources import ClusterResourcesError
from tasks.training.settings import SettingsError, TrainCluster, TrainSettings, TuneCluster, TuneSettings

# The errors the project raises to refuse a run; each message names the input and what would be valid.
# (tasks.ray_glue.tune's TuneError too, looked up only once that module, which imports Ray, is loaded.)
REFUSALS = (SettingsError, ProblemError, DataError, ClusterResourcesError, BridgeError, GitError)
LOG_DIR = Path(tempfile.gettempdir()) / "flyte-ray-dvc-errors"
F = TypeVar("F", bound=Callable[..., Any])


class BadSetting(click.BadParameter, SettingsError):
    """A refused setting given on the command line: pyflyte prints it as a bad option value (click), and it is the
    project's SettingsError wherever that is caught."""


def _command_line_from_json(cls: type) -> None:
    """`cls.from_json` as pyflyte's option parsing needs it: a refused setting is a bad option value."""

    def from_json(klass, text: str, **_: Any):
        try:
            return klass.from_dict(json.loads(text))
        except SettingsError as e:
            raise BadSetting(str(e)) from e

    cls.from_json = classmethod(from_json)


for _settings in (TuneSettings, TrainSettings, TuneCluster, TrainCluster):
    _command_line_from_json(_settings)


def _verbose() -> bool:
    """Whether the command was `pyflyte --verbose ...` (or -v): then flytekit prints the traceback itself."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("verbose"))


def _refusals() -> tuple[type[BaseException], ...]:
    tune = sys.modules.get("tasks.ray_glue.tune")
    return REFUSALS + ((tune.TuneError,) if tune else ())


def _local_run() -> bool:
    return FlyteContextManager.current_context().execution_state.is_local_execution()


def failure_line(task: str, error: BaseException) -> str:
    """The last line of a refused local run (tasks.reporting.summary reads it back for `make run`)."""
    message = " ".join(str(error).split())
    prefix = "Error encountered while executing"  # what flytekit prepends when the error passes a nested task
    while message.startswith(prefix) and ": " in message:
        message = message.split(": ", 1)[1]
    return f"run failed in {task}: {type(error).__name__}: {message}"


def shown_short(fn: F) -> F:
    """Task decorator (under `@task`/`@dynamic`): a refusal in a local run ends as one line, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not isinstance(e, _refusals()) or not _local_run() or _verbose():
                raise
            LOG_DIR.mkdir(parents=True, exist_ok=True)
            log = LOG_DIR / f"{fn.__name__}-{datetime.now():%Y%m%d-%H%M%S-%f}.log"
            log.write_text("".join(traceback.format_exception(e)))
            sys.stdout.flush()
            print(
                f"\nThe full traceback is in {log} (`pyflyte --verbose run ...` prints it here).\n"
                f"{failure_line(fn.__name__, e)}",
                file=sys.stderr,
                flush=True,
            )
            raise click.exceptions.Exit(1) from e

    return wrapper  # type: ignore[return-value]
