"""git on the command line, with credentials that never land in a URL, a config file or a log.

A token (env `GIT_TOKEN`, or a Flyte secret handed in by the task) reaches git through
GIT_ASKPASS: a tiny script that prints an environment variable, so the token is only in the
git process's environment.
"""

from __future__ import annotations

import atexit
import logging
import os
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, TypeVar

from dvc_bridge.errors import PushError

TOKEN_ENV = "GIT_TOKEN"
USERNAME_ENV = "GIT_USERNAME"
IDENTITY = ("flyte-ray-dvc", "bridge@flyte-ray-dvc.invalid")
_ASKPASS_TOKEN = "FRD_ASKPASS_TOKEN"
_ASKPASS_USER = "FRD_ASKPASS_USER"

T = TypeVar("T")
log = logging.getLogger(__name__)


class GitError(RuntimeError):
    """A git command failed; the message has the command and git's own words (no secrets)."""


class Git:
    """Runs git with one environment: identity, no prompts, and credentials via askpass."""

    def __init__(self, token: Optional[str] = None, username: Optional[str] = None) -> None:
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self._secrets = [token] if token else []
        self.env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": IDENTITY[0],
            "GIT_AUTHOR_EMAIL": IDENTITY[1],
            "GIT_COMMITTER_NAME": IDENTITY[0],
            "GIT_COMMITTER_EMAIL": IDENTITY[1],
        }
        self.env.pop(TOKEN_ENV, None)
        if token:
            self.env.update(
                {
                    "GIT_ASKPASS": str(_askpass_script()),
                    _ASKPASS_TOKEN: token,
                    _ASKPASS_USER: username or os.environ.get(USERNAME_ENV, "x-access-token"),
                }
            )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def __call__(self, *args: str, cwd: Optional[Path] = None, check: bool = True, env: Optional[dict] = None) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, env={**self.env, **(env or {})}, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise GitError(self.redact(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"))
        return proc.stdout.strip()

    @property
    def secrets(self) -> list[str]:
        """The credentials this git holds (never to be committed or logged)."""
        return list(self._secrets)

    def ls_remote(self, url: str, *patterns: str) -> dict[str, str]:
        """ref -> sha on the remote."""
        out = self("ls-remote", url, *patterns)
        refs = {}
        for line in out.splitlines():
            sha, ref = line.split("\t", 1)
            refs[ref] = sha
        return refs


_ASKPASS_PATH: Optional[Path] = None


def _askpass_script() -> Path:
    """A script git calls for username and password; it prints env vars, it holds no secret."""
    global _ASKPASS_PATH
    if _ASKPASS_PATH is None or not _ASKPASS_PATH.exists():
        fd, name = tempfile.mkstemp(prefix="frd-askpass-", suffix=".sh")
        with os.fdopen(fd, "w") as f:
            f.write(
                "#!/bin/sh\n"
                f'case "$1" in Username*) printf "%s" "${_ASKPASS_USER}";; *) printf "%s" "${_ASKPASS_TOKEN}";; esac\n'
            )
        os.chmod(name, stat.S_IRWXU)
        _ASKPASS_PATH = Path(name)
        atexit.register(_ASKPASS_PATH.unlink, missing_ok=True)
    return _ASKPASS_PATH


def retry(action: Callable[[], T], *, what: str, attempts: int = 4, first_delay: float = 1.0) -> T:
    """Run `action`, retrying with exponential backoff (1, 2, 4 s); then a PushError that says how often it was tried."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as e:
            if attempt == attempts:
                raise PushError(f"{what} failed after {attempts} attempts: {type(e).__name__}: {e}") from e
            log.warning(
                "%s failed (attempt %d of %d): %s: %s; retrying in %.0f s",
                what,
                attempt,
                attempts,
                type(e).__name__,
                e,
                delay,
            )
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
