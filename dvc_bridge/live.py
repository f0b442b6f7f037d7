"""Per-epoch metrics logged with DVCLive by the rank-0 worker alone.

The DVCLive directory travels inside each training checkpoint, so after a worker restart it
is restored with the model and logging resumes at the next step: no step is duplicated and
none is missing. The bridge copies the final directory into the experiment
(`results/dvclive/`), where `dvc.yaml` declares its metrics and plots.
"""

from __future__ import annotations

from pathlib import Path

METRICS_FILE = "metrics.json"


class EpochLogger:
    """A DVCLive `Live` that writes one step per epoch and never touches git or DVC itself."""

    def __init__(self, directory: str | Path, *, resume: bool) -> None:
        from dvclive import Live

        self.directory = Path(directory)
        self._live = Live(
            dir=str(self.directory),
            resume=resume and (self.directory / METRICS_FILE).exists(),
            save_dvc_exp=False,
            dvcyaml=None,
            report=None,
            cache_images=False,
        )

    @property
    def step(self) -> int:
        return self._live.step

    def log_epoch(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._live.log_metric(name, value)
        self._live.next_step()

    def close(self) -> None:
        self._live.end()
