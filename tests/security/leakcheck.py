"""Helpers of the secret tests: canary values, a git server that requires a token, loopback HTTP servers."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Values no real run would produce: any appearance in an artifact is a leak. Made at run time: a literal
# here would itself be packaged by `pyflyte package --copy all` (fast registration ships tests/ too).
CANARIES = {
    var: f"canary-{var.lower().replace('_', '-')}-{uuid.uuid4().hex}"
    for var in ("GIT_TOKEN", "AWS_SECRET_ACCESS_KEY", "DVC_STUDIO_TOKEN")
}


@dataclass
class Requests:
    """What a loopback server saw: (method, path, authorized) per request, and request bodies."""

    seen: list[tuple[str, str, bool]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


class LoopbackServer:
    def __init__(self, handler_cls) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return body
            body += handler.rfile.read(size)
            handler.rfile.readline()
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def git_http_server(root: Path, token: str) -> tuple[LoopbackServer, Requests]:
    """Smart-HTTP git (`git http-backend`) over the bare repos under `root`, for Basic auth with password `token` only."""
    requests = Requests()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

        def _authorized(self) -> bool:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Basic "):
                return False
            _, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return password == token

        def _serve(self):
            authorized = self._authorized()
            requests.seen.append((self.command, self.path, authorized))
            if not authorized:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "REMOTE_USER": "tester",  # lets http-backend accept pushes
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
                "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            }
            proc = subprocess.run(["git", "http-backend"], input=read_body(self), env=env, capture_output=True)
            head, _, body = proc.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, body = proc.stdout.partition(b"\n\n")
            headers = [line.split(": ", 1) for line in head.decode().splitlines() if ": " in line]
            status = next((int(v.split()[0]) for k, v in headers if k.lower() == "status"), 200)
            self.send_response(status)
            for k, v in headers:
                if k.lower() != "status":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _serve

    return LoopbackServer(Handler), requests


def encodings(secret: str) -> dict[str, bytes]:
    """The forms a secret can take on its way into a file or a log: as is, URL-encoded, and base64 (standard and
    URL-safe) at any of the three alignments it can have inside a longer encoded blob ("Basic <b64(user:token)>")."""
    import base64
    from urllib.parse import quote, quote_plus

    raw = secret.encode()
    forms = {"plain": raw, "url-encoded": quote(secret, safe="").encode(), "form-encoded": quote_plus(secret).encode()}
    for k in range(3):
        blob = b"\0" * k + raw
        full = (len(blob) // 3) * 4  # characters of complete 3-byte groups; the last group may hold padding
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name}@{k}"] = encode(blob)[4 if k else 0 : full]  # the first group mixes in the prefix
    return forms


def canaries_in(data: bytes, where: str, canaries: dict[str, str] = CANARIES) -> list[str]:
    """ "WHERE: VAR (form)" for each canary found in `data`, in any of its encodings."""
    found = []
    for var, value in canaries.items():
        hit = next((form for form, enc in encodings(value).items() if enc in data), None)
        if hit:
            found.append(f"{where}: {var}" + ("" if hit == "plain" else f" ({hit})"))
    return found


def scan_bytes(data: bytes, where: str) -> list[str]:
    """Canaries in `data`, looking inside gzip and tar archives too (compression would hide them)."""
    import gzip
    import io
    import tarfile

    found = canaries_in(data, where)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return found
        found += canaries_in(data, f"{where} (gunzipped)")
    if len(data) > 262 and data[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    found += scan_bytes(tar.extractfile(member).read(), f"{where}!{member.name}")
    return found


def scan_tree(root: Path) -> tuple[int, list[str]]:
    """(files read, canaries found) over every regular file under `root`."""
    count, found = 0, []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            count += 1
            found += scan_bytes(data, str(path))
    return count, found
