"""dvclive's private names the project uses (read from dvclive 3.49.1)."""

from __future__ import annotations

from typing import Any

from compat import Use, require


def cast_to_numbers(rows: list[dict]) -> list[dict]:
    """Plot rows with numbers as numbers, as dvclive's own Studio `data` events send them
    (`dvclive.studio._cast_to_numbers`; the TSV files hold text)."""
    from dvclive import studio

    require(hasattr(studio, "_cast_to_numbers"), "dvclive.studio._cast_to_numbers", "dvclive")
    return studio._cast_to_numbers(rows)


def live_without_studio() -> type:
    """DVCLive's `Live` with its own Studio posting off: the project's poster sends the events instead (one
    `start` per run across worker restarts, the experiment's own paths). dvclive decides in `Live._init_studio`
    and skips the events named in `_studio_events_to_skip`; there is no public switch that leaves the
    project's own poster (same environment) on."""
    from dvclive import Live

    require(hasattr(Live, "_init_studio"), "Live._init_studio", "dvclive")

    class LiveWithoutStudio(Live):
        def _init_studio(self) -> None:
            self._studio_events_to_skip.update({"start", "data", "done"})

        def post_data_to_studio(self) -> None:
            pass

    return LiveWithoutStudio


def _check_cast() -> None:
    rows = cast_to_numbers([{"step": "1", "x": "0.5"}])
    require(rows == [{"step": 1, "x": 0.5}], "dvclive.studio._cast_to_numbers (numbers from text)", "dvclive")


def _check_live(tmp_dir: Any = None) -> None:
    import tempfile

    live_cls = live_without_studio()
    with tempfile.TemporaryDirectory() as d:
        live = live_cls(dir=d, save_dvc_exp=False, dvcyaml=None, report=None)
        require(
            {"start", "data", "done"} <= set(getattr(live, "_studio_events_to_skip", ())),
            "Live._studio_events_to_skip",
            "dvclive",
        )


USES = (
    Use("dvclive.studio._cast_to_numbers", cast_to_numbers.__doc__, "dvclive 3.49.1", _check_cast),
    Use(
        "dvclive.Live._init_studio, Live._studio_events_to_skip",
        live_without_studio.__doc__,
        "dvclive 3.49.1",
        _check_live,
    ),
)
