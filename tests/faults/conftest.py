"""Fixtures for the fault tests: one local Ray cluster for the Ray tests, the embedded digits, an S3 endpoint that fails on demand."""

from __future__ import annotations

import socket
import threading

import pytest
from support import digits, free_port, ray_cluster  # noqa: F401  (shared fixtures)


class FlakyEndpoint:
    """A TCP proxy in front of the S3 server that a test can take down (port closed: connection refused,
    open connections cut) and bring back up on the same port, while the server behind keeps its data."""

    def __init__(self, target: str) -> None:
        host_port = target.rsplit("//", 1)[1]
        self.target = (host_port.split(":")[0], int(host_port.split(":")[1]))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        listener, self._listener = self._listener, None
        if listener:
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            _close(c)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        _close(a)
        _close(b)


@pytest.fixture
def flaky_s3(s3_endpoint):
    """The session's S3 server behind a FlakyEndpoint, up."""
    endpoint = FlakyEndpoint(s3_endpoint)
    endpoint.up()
    yield endpoint
    endpoint.down()


@pytest.fixture
def silent_endpoint():
    """http://127.0.0.1:PORT of a listener that never accepts: once its backlog is full the kernel drops
    new connection attempts, so a client waits for its connect timeout (a firewalled or dead host)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    yield f"http://127.0.0.1:{port}"
    for s in fillers + [listener]:
        s.close()
