"""Every use of another library's private API, in one place: why it is needed and which version it was read from.

One module per library (`compat.flytekit`, `compat.ray`, `compat.dvc`, `compat.dvclive`), each importing only its
own library, and only when called, so a layer that must not import Flyte or Ray can still use the DVC ones.
Each module lists its uses in `USES`; `tests/test_compat.py` resolves every one against the installed versions and
fails naming the one that moved. Where a public API does the job, it is used instead and nothing is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


class PrivateApiChanged(RuntimeError):
    """A private name this project relies on is gone or changed shape in the installed library."""


@dataclass(frozen=True)
class Use:
    """One private name: what it is, why the project needs it, the version it was read from, and a check."""

    name: str
    why: str
    read_from: str
    check: Callable[[], None]  # raises PrivateApiChanged (or ImportError/AttributeError) when it no longer holds


def require(ok: bool, what: str, library: str) -> None:
    if not ok:
        from importlib.metadata import version

        raise PrivateApiChanged(f"{what} is not in {library} {version(library)}: see compat/ for why it is used")
