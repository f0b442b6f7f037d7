"""Per-epoch metrics logged with DVCLive by the rank-0 worker alone, mirrored while training runs.

* One step per epoch, from rank 0 only, so no step is duplicated.
* The DVCLive directory travels inside each training checkpoint: after a worker restart it is
  restored with the model and logging resumes at the next step (none duplicated, none missing).
* After every step the directory is copied to `LiveConfig.mirror_uri` (any fsspec URI), storage
  that outlives the worker, so progress can be read from outside the cluster while it runs.
* DVC Studio (when `DVC_STUDIO_TOKEN` is set): `dvc_bridge.studio.LivePoster` posts what DVCLive
  would post from inside the experiment's repo: `start` once per run (not again after a worker
  restart), one `data` per step with each point once, under the paths the directory has in the
  experiment (`LiveConfig.repo_path`, e.g. results/dvclive/...). DVCLive's own posting is off:
  without a repo it would use the worker's temp paths and re-send a restored history. The worker
  has no git repo, so the experiment's identity (name, baseline commit, repo URL) comes in the
  environment handed over here; it is the identity the bridge later saves the experiment under,
  and the bridge sends the final `done` with the pushed commit, so Studio joins the live rows to
  the final experiment.

The bridge copies the final directory into the experiment (`results/dvclive/`), where
`dvc.yaml` declares its metrics and plots.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from compat.dvclive import live_without_studio

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
# Environment variables DVCLive and the Studio client read; copied from the task to rank 0.
LIVE_ENV_PREFIXES = ("DVC_STUDIO_", "STUDIO_", "DVCLIVE_")
LIVE_ENV_NAMES = ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_NO_ANALYTICS")


@dataclass
class LiveConfig:
    """What rank 0 needs to log live. Handed over in memory (a Ray object): `env` may hold a token."""

    mirror_uri: str = ""  # every step is copied here; "" for no mirror
    storage_options: dict = field(default_factory=dict)  # fsspec options for mirror_uri (no secrets)
    env: dict[str, str] = field(default_factory=dict, repr=False)  # DVCLive / Studio variables
    repo_path: str = ""  # where the directory lands in the experiment (results/dvclive): Studio's paths
    studio_start: bool = True  # rank 0 posts Studio's `start`; False under `dvc exp run`, whose DVC posts it


def live_env(
    exp_name: str, baseline_rev: str, repo_url: str, environ: Optional[Mapping[str, str]] = None
) -> dict[str, str]:
    """The DVC and Studio variables for DVCLive on rank 0: the task's own, plus the experiment's identity."""
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k.startswith(LIVE_ENV_PREFIXES) or k in LIVE_ENV_NAMES}
    if exp_name:
        env["DVC_EXP_NAME"] = exp_name
    if baseline_rev:
        env["DVC_EXP_BASELINE_REV"] = baseline_rev
    if repo_url and not env.get("DVC_STUDIO_REPO_URL"):
        env["DVC_STUDIO_REPO_URL"] = repo_url
    return env


class Mirror:
    """Copies a local directory to an fsspec URI; a failure is reported once and never stops training."""

    def __init__(self, uri: str, storage_options: Optional[dict] = None) -> None:
        import fsspec

        from dvc_bridge.storage import fsspec_options

        self.uri = uri
        # The endpoint comes from the task; credentials from this node's own environment.
        options = {**fsspec_options(uri), **(storage_options or {})}
        self._fs, self._root = fsspec.core.url_to_fs(uri, **options)
        self._warned = False

    def sync(self, directory: Path) -> None:
        try:
            self._fs.makedirs(self._root, exist_ok=True)
            self._fs.put(f"{directory}/", self._root, recursive=True)
        except Exception as e:  # live metrics are a view; the checkpoint keeps the record
            if not self._warned:
                log.warning("live metrics could not be copied to %s: %s: %s", self.uri, type(e).__name__, e)
                self._warned = True


class EpochLogger:
    """A DVCLive `Live` that writes one step per epoch and never touches git or DVC itself."""

    def __init__(self, directory: str | Path, *, resume: bool, config: Optional[LiveConfig] = None) -> None:
        from dvc_bridge.studio import LivePoster

        config = config or LiveConfig()
        os.environ.update(config.env)  # this worker process only; DVCLive and Studio settings are read from it
        self.directory = Path(directory)
        self.mirror = Mirror(config.mirror_uri, config.storage_options) if config.mirror_uri else None
        resumed = resume and (self.directory / METRICS_FILE).exists()
        self.studio = LivePoster(self.directory, config.repo_path, resume=resumed, send_start=config.studio_start)
        self._live = live_without_studio()(
            dir=str(self.directory),
            resume=resumed,
            save_dvc_exp=False,
            dvcyaml=None,
            report=None,
            cache_images=False,
        )
        if resume and (self.directory / METRICS_FILE).exists():
            # DVCLive resumes at the saved step + 1, except after step 0, which it would log again.
            self._live.step = self._live.read_step() + 1

    @property
    def step(self) -> int:
        return self._live.step

    def log_epoch(self, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self._live.log_metric(name, value)
        step = self._live.step
        self._live.next_step()
        self.studio.step(step)
        if self.mirror:
            self.mirror.sync(self.directory)

    def log_summary(self, metrics: dict[str, float]) -> None:
        """Final scores outside the per-step history (the test scores): metrics.json only, no plot."""
        for name, value in metrics.items():
            self._live.log_metric(name, value, plot=False)

    def close(self) -> None:
        self._live.end()
        # As DVCLive's end() does: the final summary (test scores included) at the last step, no new points.
        # `done` comes from whoever records the experiment (the bridge, or DVC under `dvc exp run`).
        self.studio.step(self._live.step)
        self.studio.flush()
        if self.mirror:
            self.mirror.sync(self.directory)


def add_to_summary(directory: str | Path, metrics: dict[str, float]) -> None:
    """Add final scores computed outside the training loop (a baseline's) to a closed DVCLive directory's
    metrics.json, nested by "/" as DVCLive nests them: `baseline/test/rmse` -> {"baseline": {"test": {"rmse": ..}}}."""
    path = Path(directory) / METRICS_FILE
    doc = json.loads(path.read_text()) if path.exists() else {}
    for name, value in metrics.items():
        *parents, leaf = name.split("/")
        node = doc
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = float(value)
    path.write_text(json.dumps(doc, indent=4) + "\n")
