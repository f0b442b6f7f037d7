"""flytekit's private names the project uses (read from flytekit 1.16.31)."""

from __future__ import annotations

from typing import Any

from compat import Use, require


def forget_compiled_dynamic(step: Any) -> None:
    """Make a @dynamic task compile its workflow again on its next call.

    flytekit compiles a dynamic step's workflow once per process and keeps it in `_wf`; a pod compiles once, so
    that is right on Flyte, but `tasks.sizing` stands for one pod per call with its own inputs.
    """
    require(hasattr(step, "_wf"), "DynamicWorkflowTask._wf", "flytekit")
    step._wf = None


def set_task_config(task: Any, config: Any) -> None:
    """Put a Ray task's packaged `task_config` back after a dynamic step's compile replaced it in this process.

    `with_overrides(task_config=...)` (public) sets the config of the node a dynamic step emits; flytekit does that
    by assigning the task object's `_task_config`, which a later compile in the same process would then inherit.
    """
    require(hasattr(task, "_task_config"), "PythonTask._task_config", "flytekit")
    task._task_config = config


def keep_only_this_tasks_timeline(decks: list, first: Any) -> None:
    """Show `first` as the task's open Deck page, then the Timeline with only this task's rows.

    flytekit adds its Timeline deck (`flytekit.deck.deck.TimeLineDeck`, rows in `time_info`) before the task body
    runs; a local run keeps every earlier task's pages and rows in one list, each task ending with a
    "dispatch execute" row. No public API selects a deck's rows.
    """
    from flytekit.deck.deck import TimeLineDeck

    timeline = next((d for d in decks if isinstance(d, TimeLineDeck)), None)
    decks[:] = [first, *([timeline] if timeline is not None else [])]
    if timeline is not None:
        require(isinstance(getattr(timeline, "time_info", None), list), "TimeLineDeck.time_info", "flytekit")
        ends = [i for i, row in enumerate(timeline.time_info) if row.get("Name") == "dispatch execute"]
        del timeline.time_info[: ends[-1] + 1 if ends else 0]


def dispatch_execute(ctx: Any, load_task: Any, inputs: str, output_prefix: str) -> None:
    """Run a task as `pyflyte-execute` does, in this process: flytekit's entrypoint writes the real `outputs.pb` or
    `error.pb` (with its recoverable/non-recoverable kind). Only tests use it; the public entry is the CLI."""
    from flytekit.bin import entrypoint

    require(hasattr(entrypoint, "_dispatch_execute"), "flytekit.bin.entrypoint._dispatch_execute", "flytekit")
    entrypoint._dispatch_execute(ctx, load_task, inputs, output_prefix)


def _probe() -> None:
    """A module-level function the checks below wrap as a task (flytekit refuses local functions)."""


def _check_dynamic() -> None:
    from flytekit import dynamic

    require(hasattr(dynamic(_probe), "_wf"), "DynamicWorkflowTask._wf", "flytekit")


def _check_task_config() -> None:
    from flytekit import task

    require(hasattr(task(_probe), "_task_config"), "PythonTask._task_config", "flytekit")


def _check_dispatch() -> None:
    from flytekit.bin import entrypoint

    require(callable(getattr(entrypoint, "_dispatch_execute", None)), "entrypoint._dispatch_execute", "flytekit")


def _check_timeline() -> None:
    from flytekit.deck.deck import TimeLineDeck

    deck = TimeLineDeck("Timeline")
    require(isinstance(getattr(deck, "time_info", None), list), "TimeLineDeck.time_info", "flytekit")


USES = (
    Use("DynamicWorkflowTask._wf", forget_compiled_dynamic.__doc__, "flytekit 1.16.31", _check_dynamic),
    Use("PythonTask._task_config", set_task_config.__doc__, "flytekit 1.16.31", _check_task_config),
    Use("flytekit.bin.entrypoint._dispatch_execute", dispatch_execute.__doc__, "flytekit 1.16.31", _check_dispatch),
    Use(
        "flytekit.deck.deck.TimeLineDeck.time_info",
        keep_only_this_tasks_timeline.__doc__,
        "flytekit 1.16.31",
        _check_timeline,
    ),
)
