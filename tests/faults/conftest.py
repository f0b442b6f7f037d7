"""Fixtures for the fault tests: one local Ray cluster for the Ray tests, the embedded digits, a private S3 server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import free_port


@pytest.fixture(scope="session")
def digits():
    """The embedded MNIST digits, split (4000 train, 1000 test)."""
    from tasks.data import load_raw, make_splits, parse_source

    raw, _ = load_raw(parse_source(""))
    return make_splits(raw, seed=0)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of this test process (2 CPUs), started as the Ray tasks start it locally.

    Its session files live in a private temp dir (short path: Ray's socket names have a length limit).
    """
    import ray

    from tasks.clusters import init_local_ray

    started_here = not ray.is_initialized()
    tmp = tempfile.mkdtemp(prefix="frdray", dir="/tmp")
    old = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = tmp
    init_local_ray(num_cpus=2)
    yield ray
    if started_here:
        ray.shutdown()
    if old is None:
        os.environ.pop("RAY_TMPDIR", None)
    else:
        os.environ["RAY_TMPDIR"] = old
    shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class S3Server:
    """A moto_server of one test, which the test may stop, freeze and resume."""

    url: str
    proc: subprocess.Popen

    def freeze(self) -> None:
        """Still accepts connections (the kernel does), never answers: a hung endpoint."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        self.thaw()
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def private_s3():
    """A moto_server on loopback for this test alone (the session one is shared and must stay up)."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.time() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start")
            time.sleep(0.1)
    server = S3Server(f"http://127.0.0.1:{port}", proc)
    yield server
    if proc.poll() is None:
        server.kill()
