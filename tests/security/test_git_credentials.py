"""Git credentials reach git through askpass only: never in `.git/config`, a URL, an error message or the history."""

from __future__ import annotations

import subprocess

import pytest
from leakcheck import CANARIES
from support import make_record

from dvc_bridge.bridge import record_experiment, resolve_target
from dvc_bridge.gitops import Git, GitError

TOKEN = CANARIES["GIT_TOKEN"]


def git_bytes(*args: str, cwd) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def pushed_history(repo) -> bytes:
    """`git log -p --all` (every ref, refs/exps too) and every object of the repo, uncompressed."""
    return git_bytes("log", "-p", "--all", cwd=repo) + git_bytes("cat-file", "--batch-all-objects", "--batch", cwd=repo)


def test_git_token_is_handed_over_by_askpass_and_stored_nowhere(tmp_path, token_remote):
    url, requests = token_remote
    with pytest.raises(GitError) as info:
        Git(token="")("clone", "--quiet", url, str(tmp_path / "anonymous"))
    assert "Authentication failed" in str(info.value) or "could not read Username" in str(info.value)

    Git(token=TOKEN)("clone", "--quiet", url, str(tmp_path / "clone"))
    assert any(authorized for _, _, authorized in requests.seen), "the server never saw the token"
    config = (tmp_path / "clone" / ".git" / "config").read_text()
    assert TOKEN not in config and f"url = {url}\n" in config  # the plain URL, no user:password in it
    for path in (tmp_path / "clone" / ".git").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_refused_token_is_not_in_the_error(tmp_path, token_remote):
    url, _ = token_remote
    wrong = TOKEN[::-1]
    with pytest.raises(GitError) as info:
        Git(token=wrong)("clone", "--quiet", url, str(tmp_path / "clone"))
    assert wrong not in str(info.value) and "Authentication failed" in str(info.value)


def test_bridge_commits_to_a_token_protected_remote_leaving_no_token_behind(tmp_path, token_remote, monkeypatch):
    """The bridge's own clone (its .git/config), the pushed history and the experiment message hold no secret,
    with every secret in the bridge's environment (DVC's `exp save` would pickle the Studio token into it)."""
    url, requests = token_remote
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DVC_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens: nothing leaves the machine
    monkeypatch.setenv("DVC_STUDIO_REPO_URL", "https://github.com/example/experiments")  # as Studio users set it
    ref = record_experiment(resolve_target(url), "sealed", make_record(tmp_path / "m", "exec-sealed"), tmp_path / "w")
    assert ref.ref_pushed and ref.promoted
    assert any(method == "POST" and "receive-pack" in path and ok for method, path, ok in requests.seen)
    bridge_clone = tmp_path / "w" / "repo"
    assert url in (bridge_clone / ".git" / "config").read_text()
    for path in (bridge_clone / ".git").rglob("*"):
        if path.is_file():
            for value in CANARIES.values():
                assert value.encode() not in path.read_bytes(), path
    server_repo = tmp_path / "git-server" / "experiments.git"
    history = pushed_history(server_repo)
    assert ref.commit.encode() in history and b"flyte exec-sealed" in history  # the experiment and its message
    for value in CANARIES.values():
        assert value.encode() not in history
