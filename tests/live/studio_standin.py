"""A loopback HTTP server standing in for DVC Studio's API: keeps every POST (path, auth header, JSON body)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StudioStandIn(ThreadingHTTPServer):
    """Accepts the POSTs of DVCLive and DVC (/api/live, /webhook/dvc) and keeps them in arrival order."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.posts.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"
