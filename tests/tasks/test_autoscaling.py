"""Autoscaling that acts: a search on an autoscaling cluster grows it to its maximum and leaves it to shrink.

Ray's own autoscaler with the fake multi-node provider Ray tests its autoscaler with
(`ray.cluster_utils.AutoscalingCluster`'s provider, `RAY_FAKE_CLUSTER=1`): a head with no CPUs and
one worker type of 1 CPU, 0 to 2 nodes. The search runs as the tune task runs it (`run_tune` with
the concurrency `tune_concurrency` derives from the requested TuneCluster), so the trials waiting for
nodes are the demand the autoscaler sees. A sampler records the worker nodes over time.

`AutoscalingCluster` itself cannot be used as is here: it reads `fake_multi_node/example.yaml`, which
Ray's wheel does not ship, and its start runs `ray stop --force`, which would stop every Ray instance
of this user. `OneMachineAutoscalingCluster` starts the same head (`ray start --head
--autoscaling-config`, the same environment) on its own port and stops only its own processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from tasks.ray_glue.local import local_worker_env
from tasks.training.capacity import Capacity, tune_concurrency
from tasks.training.settings import TuneCluster, TuneSettings

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
IDLE_TIMEOUT_MIN = 0.1  # a node idle for 6 s is removed


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OneMachineAutoscalingCluster:
    """A head (0 CPUs) whose autoscaler adds and removes fake worker nodes on this machine."""

    def __init__(self, tmp: Path, worker_cpus: int, min_workers: int, max_workers: int):
        import ray

        self.port = free_port()
        self.ip = ray.util.get_node_ip_address()
        self.tmp = tmp
        self.config = {
            "cluster_name": f"fake-{self.port}",
            "max_workers": max_workers,
            "upscaling_speed": 1.0,
            "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
            "provider": {
                "type": "fake_multinode",
                "use_node_id_as_ip": True,
                "disable_node_updaters": True,
                "disable_launch_config_check": True,
                "gcs_address": f"{self.ip}:{self.port}",
            },
            "available_node_types": {
                "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
                "workers": {
                    "resources": {"CPU": worker_cpus},
                    "node_config": {},
                    "min_workers": min_workers,
                    "max_workers": max_workers,
                },
            },
            "head_node_type": "ray.head.default",
            "auth": {"ssh_user": "ubuntu"},
            "docker": {},
            "file_mounts": {},
            "cluster_synced_files": [],
            "file_mounts_sync_continuously": False,
            "initialization_commands": [],
            "setup_commands": [],
            "head_setup_commands": [],
            "worker_setup_commands": [],
            "head_start_ray_commands": [],
            "worker_start_ray_commands": [],
        }

    def start(self) -> str:
        cfg = self.tmp / "autoscaling.json"
        cfg.write_text(json.dumps(self.config))
        # The fake nodes are started by the autoscaler in the head's process tree, with its environment: the project
        # importable there, as the image makes it on a cluster.
        env = {**os.environ, **local_worker_env(), "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
        self.temp_dir = Path(f"/tmp/ray-as-{self.port}")  # short: Ray's socket paths must fit in 107 characters
        subprocess.run(
            [
                str(BIN / "ray"),
                "start",
                "--head",
                f"--autoscaling-config={cfg}",
                "--num-cpus=0",
                f"--port={self.port}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
                "--disable-usage-stats",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        return f"{self.ip}:{self.port}"

    def processes(self) -> list[psutil.Process]:
        mine = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(
                    str(self.temp_dir) in a or f"--gcs-address={self.ip}:{self.port}" in a or f"--port={self.port}" in a
                    for a in p.info["cmdline"] or []
                ):
                    mine.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return mine

    def stop(self) -> None:
        procs = self.processes()
        for p in procs:
            try:
                p.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=5)
        for p in alive:
            p.kill()


class NodeSampler(threading.Thread):
    """(seconds since start, alive worker nodes) whenever the count changes, sampled every 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.t0 = time.monotonic()
        self.timeline: list[tuple[float, int]] = []
        self.done = threading.Event()

    def count(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0)

    def run(self) -> None:
        while not self.done.is_set():
            n = self.count()
            if not self.timeline or self.timeline[-1][1] != n:
                self.timeline.append((round(time.monotonic() - self.t0, 1), n))
            self.done.wait(0.2)


def test_a_search_grows_the_autoscaling_cluster_to_its_maximum_and_it_shrinks_back_when_idle(tmp_path):
    import ray

    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import load_problem
    from tasks.ray_glue.tune import run_tune

    shape = TuneCluster(workers=0, min_workers=0, max_workers=2, cpus_per_worker=1)
    settings = TuneSettings(num_samples=4, max_epochs=2, grace_period=2, space={"lr": {"loguniform": [0.01, 0.1]}})
    concurrency = tune_concurrency(settings, Capacity.of(shape))
    assert concurrency == 2, "the autoscaled maximum (2 nodes x 1 CPU), not the CPUs present at start (0)"

    problem = load_problem("digits")
    raw, _ = load_raw(parse_source(""), problem)
    splits = make_splits(raw, problem, seed=0)

    if ray.is_initialized():  # an earlier in-process test's session: the driver must connect to this cluster
        ray.shutdown()
    cluster = OneMachineAutoscalingCluster(tmp_path, worker_cpus=1, min_workers=0, max_workers=2)
    address = cluster.start()
    sampler = NodeSampler()
    try:
        ray.init(address=address, runtime_env={"env_vars": local_worker_env()}, logging_level="ERROR")
        sampler.start()
        assert sampler.count() == 0, "the cluster starts at its minimum: no worker node"
        outcome = run_tune(
            ray.put(splits),
            "digits",
            settings,
            str(tmp_path / "ray"),
            concurrency=concurrency,
            startup_timeout_s=120,
            where=shape.label,
        )
        searched = round(time.monotonic() - sampler.t0, 1)
        # Idle now: the autoscaler removes both nodes after idle_timeout_minutes. Bounded wait for that event.
        # Read from the sampler's own record, so the last change it saw is the one asserted on.
        deadline = time.monotonic() + 120
        while sampler.timeline[-1][1] > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        sampler.done.set()
        if sampler.is_alive():
            sampler.join(timeout=5)
        ray.shutdown()
        cluster.stop()
    print(f"\nworker nodes over time (s, nodes): {sampler.timeline}; search done by {searched} s")
    counts = [n for _, n in sampler.timeline]
    assert len(outcome.trials) == 4 and (outcome.trials["status"] == "completed").all(), outcome.trials
    assert counts[0] == 0 and max(counts) == 2, sampler.timeline  # grew from the minimum to the maximum
    assert counts[-1] == 0, f"did not shrink back to the minimum when idle: {sampler.timeline}"
    assert counts.index(2) < len(counts) - 1  # 2 nodes, then fewer: it shrank after growing
