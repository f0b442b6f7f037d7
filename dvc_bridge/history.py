"""A DVC repo's history as files: every experiment ref and branch commit, with the text of the files asked for.

Generic: it knows git refs (`refs/exps/...` as DVC writes them, `refs/heads/...`), not what the files mean.
A local repo is read in place; a git URL is fetched (branches and experiment refs only, into a bare repo under
`workdir`) with the credentials of `Git` (askpass, never in a URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from dvc_bridge.bridge import EXP_REFS, Target
from dvc_bridge.gitops import Git


@dataclass
class Revision:
    name: str  # the experiment's name, or "branch <name>"
    commit: str
    files: dict[str, str] = field(default_factory=dict)  # path -> text, for the asked paths this commit has


def _repo_dir(target: Target, workdir: Path, git: Git) -> Path:
    if target.local:
        return Path(target.url)
    repo = workdir / "history.git"
    git("init", "--quiet", "--bare", str(repo))
    git("fetch", "--quiet", target.url, "+refs/heads/*:refs/heads/*", f"+{EXP_REFS}/*:{EXP_REFS}/*", cwd=repo)
    return repo


def read_history(
    target: Target, paths: list[str], workdir: Path, *, key: str = "", git: Optional[Git] = None
) -> list[Revision]:
    """Each experiment ref and branch whose commit has `key` (default: the first path), oldest first.

    A file met again unchanged (a promoted experiment's branch, a branch holding an applied experiment) is
    read once: its first owner, experiments before branches.
    """
    git = git or Git()
    key = key or paths[0]
    repo = _repo_dir(target, workdir, git)
    listing = git(
        "for-each-ref", "--sort=committerdate", "--format=%(objectname) %(refname)", EXP_REFS, "refs/heads", cwd=repo
    )
    refs = [line.split(" ", 1) for line in listing.splitlines() if line.strip()]
    refs.sort(key=lambda r: not r[1].startswith(EXP_REFS))  # stable: experiments first, each group oldest first
    seen: set[str] = set()
    out = []
    for commit, ref in refs:
        blob = git("rev-parse", "--verify", "--quiet", f"{commit}:{key}", cwd=repo, check=False)
        if not blob or blob in seen:
            continue
        seen.add(blob)
        name = ref.rsplit("/", 1)[-1] if ref.startswith(EXP_REFS) else f"branch {ref[len('refs/heads/') :]}"
        files = {}
        for path in paths:
            text = git("show", f"{commit}:{path}", cwd=repo, check=False)
            if text:
                files[path] = text
        out.append(Revision(name=name, commit=commit, files=files))
    return out
