"""DVC's private names the project uses (read from dvc 3.67.1)."""

from __future__ import annotations

from typing import Any

from compat import Use, require


def gather_metrics(repo: Any) -> dict:
    """The workspace's metrics per file, {path: {"data": {...}}}: what DVC's own Studio `done` event carries.

    `dvc.api.metrics_show` (public) merges the files into one dict; Studio wants them per path, as
    `dvc.repo.metrics.show._gather_metrics` gives them.
    """
    from dvc.repo.metrics import show

    require(hasattr(show, "_gather_metrics"), "dvc.repo.metrics.show._gather_metrics", "dvc")
    return show._gather_metrics(repo, on_error="return")


def _check() -> None:
    from dvc.repo.metrics import show

    require(callable(getattr(show, "_gather_metrics", None)), "dvc.repo.metrics.show._gather_metrics", "dvc")


USES = (Use("dvc.repo.metrics.show._gather_metrics", gather_metrics.__doc__, "dvc 3.67.1", _check),)
