"""DVC Studio sees a run as the experiment DVC would show: the events `dvc exp run` + DVCLive and
`dvc exp push` send, with the experiment's own name, baseline and repo paths. No Flyte or Ray.

Who sends what, as in DVC 3.67 / DVCLive 3.49 / dvc_studio_client:

* `start` (once per run) and `data` (one per step, each plot point once) from rank 0 while
  training: `LivePoster`, under the experiment's name and baseline from the environment
  (`DVC_EXP_NAME`, `DVC_EXP_BASELINE_REV`) and with the paths the DVCLive directory has in the
  experiment (`results/dvclive/...`), not the worker's temp dir. A resumed worker (restart from a
  checkpoint) sends no second `start` and counts the points its restored directory holds as sent.
* `done` with `experiment_rev` and the metrics, then the refs notification (`webhook/dvc`,
  `{"pushed": [ref]}`): `announce_pushed`, by the bridge after the experiment's ref is pushed,
  which is what DVC's executor and `dvc exp push` send.

Studio is a view: a failure is logged and never stops training or the record.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

log = logging.getLogger(__name__)

NULL_SHA = "0" * 40  # DVCLive's baseline when none is known
METRICS_FILE = "metrics.json"
PARAMS_FILE = "params.yaml"
PLOTS_DIR = Path("plots") / "metrics"


def studio_config(repo_url: str = "") -> dict[str, Any]:
    """dvc_studio_client's config from the environment (token, url, repo_url); {} when Studio is off."""
    from dvc_studio_client.config import get_studio_config

    try:
        return get_studio_config(studio_repo_url=os.environ.get("DVC_STUDIO_REPO_URL") or repo_url or None)
    except Exception as e:  # no repo URL to infer, no git: Studio stays off
        log.debug("DVC Studio is off: %s: %s", type(e).__name__, e)
        return {}


def _rows(path: Path) -> list[dict]:
    from dvclive.utils import parse_tsv  # DVCLive's own reader of its plot files

    return parse_tsv(path)


class LivePoster:
    """Posts a DVCLive directory's steps to Studio as DVCLive would from inside the experiment's repo.

    `directory` is the DVCLive directory on this worker; `repo_path` where it lands in the
    experiment (e.g. results/dvclive); "" keeps the worker's own paths.
    """

    def __init__(self, directory: Path, repo_path: str = "", *, resume: bool = False, send_start: bool = True) -> None:
        self.directory = Path(directory)
        self.repo_path = repo_path.strip("/")
        self.name = os.environ.get("DVC_EXP_NAME", "")
        self.baseline = os.environ.get("DVC_EXP_BASELINE_REV", NULL_SHA)
        self.config = studio_config() if self.name else {}
        self._sent: dict[str, int] = {}
        self._queue: Optional[queue.Queue] = None
        if not self.config:
            return
        if resume:  # what the restored directory holds was posted before the restart
            self._sent = {self.path(p): len(_rows(p)) for p in self._plot_files()}
        elif send_start and not self._post("start"):
            log.warning("DVC Studio did not accept `start` for %s: no live updates for this run", self.name)
            self.config = {}

    def path(self, file: Path) -> str:
        rel = Path(file).relative_to(self.directory).as_posix()
        return f"{self.repo_path}/{rel}" if self.repo_path else str(file)

    def _plot_files(self) -> list[Path]:
        root = self.directory / PLOTS_DIR
        return sorted(root.rglob("*.tsv")) if root.is_dir() else []

    def _post(self, event: str, **kwargs: Any) -> bool:
        from dvc_studio_client.post_live_metrics import post_live_metrics

        try:
            return bool(
                post_live_metrics(event, self.baseline, self.name, "dvclive", dvc_studio_config=self.config, **kwargs)
            )
        except Exception as e:
            log.warning("DVC Studio `%s` failed: %s: %s", event, type(e).__name__, e)
            return False

    def step(self, step: int) -> None:
        """Queue the step just written (the files are read now, the post happens on a background thread)."""
        if not self.config:
            return
        import json

        metrics_file = self.directory / METRICS_FILE
        latest = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
        plots = {self.path(p): _rows(p) for p in self._plot_files()}
        if self._queue is None:
            self._queue = queue.Queue()
            threading.Thread(target=self._drain, daemon=True).start()
        self._queue.put((step, latest, plots))

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            step, latest, plots = self._queue.get()
            try:
                self._send(step, latest, plots)
            except Exception as e:  # never stops training
                log.warning("DVC Studio update failed: %s: %s", type(e).__name__, e)
            finally:
                self._queue.task_done()

    def _send(self, step: int, latest: dict, plots: dict[str, list[dict]]) -> None:
        from compat.dvclive import cast_to_numbers

        new = {
            path: {"data": cast_to_numbers([dict(r) for r in rows[self._sent.get(path, 0) :]])}
            for path, rows in plots.items()
        }
        ok = self._post(
            "data",
            step=step,
            metrics={self.path(self.directory / METRICS_FILE): {"data": latest}},
            params={self.path(self.directory / PARAMS_FILE): {}},
            plots=new,
        )
        if ok:
            for path, rows in plots.items():
                self._sent[path] = len(rows)

    def flush(self) -> None:
        """Wait until every queued step is posted."""
        if self._queue is not None:
            self._queue.join()


def announce_pushed(
    *,
    name: str,
    baseline: str,
    commit: str,
    ref: str,
    repo_url: str,
    metrics: Optional[Mapping[str, Any]] = None,
    also_pushed: Sequence[str] = (),
) -> bool:
    """After the experiment's ref is on the git remote: `done` with `experiment_rev` (as DVC's executor
    sends it when `dvc exp run` ends) and the refs notification `dvc exp push` sends (with `also_pushed`, the
    refs of experiments pushed beside it: the search's trials). Returns whether
    Studio took both; Studio off (no token) sends nothing and returns False."""
    from dvc_studio_client.post_live_metrics import post_live_metrics

    config = studio_config(repo_url)
    if not config:
        return False
    try:
        done = post_live_metrics(
            "done",
            baseline,
            name,
            "dvc",
            experiment_rev=commit,
            metrics=dict(metrics or {}) or None,
            dvc_studio_config=config,
        )
        from dvc.utils.studio import notify_refs

        notified = notify_refs(
            config["repo_url"], config["token"], base_url=config.get("url"), pushed=[*also_pushed, ref]
        )
    except Exception as e:  # Studio is a view of the record, never a condition of it
        log.warning("DVC Studio was not told about %s: %s: %s", name, type(e).__name__, e)
        return False
    return bool(done) and notified is not None
