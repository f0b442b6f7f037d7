"""Fixtures for the secret tests: a git remote that requires a token, a stand-in DVC Studio."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

import pytest
from leakcheck import CANARIES, LoopbackServer, Requests, git_http_server, read_body
from support import bare_remote


@pytest.fixture
def token_remote(tmp_path, s3_endpoint, bucket):
    """(https-like URL, Requests): a DVC repo with an S3 DVC remote, served over HTTP only to CANARIES["GIT_TOKEN"]."""
    from tasks.scaffold import scaffold

    seed = tmp_path / "seed"
    scaffold(seed, remote=f"s3://{bucket}/dvc", endpoint=s3_endpoint)
    root = tmp_path / "git-server"
    root.mkdir()
    bare_remote(seed, root / "experiments.git")
    server, requests = git_http_server(root, CANARIES["GIT_TOKEN"])
    yield f"{server.url}/experiments.git", requests
    server.close()


@pytest.fixture
def studio():
    """A stand-in DVC Studio on loopback that accepts every live-metrics post and keeps them."""
    requests = Requests()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            requests.bodies.append(read_body(self))
            requests.seen.append(
                (self.command, self.path, CANARIES["DVC_STUDIO_TOKEN"] in self.headers.get("Authorization", ""))
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = LoopbackServer(Handler)
    yield server.url, requests
    server.close()
