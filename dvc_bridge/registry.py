"""The model registry the DVC way (GTO): a promoted experiment becomes a SemVer version of its model artifact
and may be assigned a stage; the model in a stage (the champion) is read back for the gate. No Flyte or Ray.

The tags are GTO's, made with GTO's Python API, so `gto show` and DVC Studio's model registry list them
and `dvc.api.artifacts_show` / `dvc artifacts get` resolve them:

* a version: the annotated tag `<artifact>@vX.Y.Z` on the experiment's commit;
* a stage: the annotated tag `<artifact>#<stage>#N`, GTO's default form for an assignment (a counter per
  assignment: a stage moves to a new version by a new tag, never by moving a pushed tag, and keeps its history).

**The next version** is a minor bump of the highest version the artifact has ever had (deregistered ones
included, so no tag name is reused), `v0.1.0` for the first: every trained model is a new minor version;
patch and major are left to people (a re-export, a changed interface).

GTO works on the bridge's own clone (on a local path it creates the tags and pushes nothing); the bridge
pushes them with its own git (credentials through askpass), after the data and the experiment's ref. A
version or stage tag that another run pushed first under the same name (two runs at once) makes this
run fetch the tags again and take the next one. A retry of the same execution finds the version already
on its commit and reuses it, and does not assign a stage its version already holds.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import yaml

from dvc_bridge.direction import higher_is_better
from dvc_bridge.errors import RegistryError
from dvc_bridge.gitops import IDENTITY, Git, GitError, retry

log = logging.getLogger(__name__)

DEFAULT_STAGE = "staging"
FIRST_VERSION = "v0.1.0"
_SEMVER = r"v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"


@dataclass
class Registration:
    """What a promoted experiment becomes in the registry, and the champion the gate compares it with."""

    artifact: str  # the `type: model` artifact of the repo's dvc.yaml, e.g. "digits-model"
    stage: str = DEFAULT_STAGE  # assigned to the new version; "" registers a version without a stage
    champion_stage: str = ""  # compare with the version in this stage first; "" compares with none
    margin: float = 0.0  # the challenger must beat the champion by more than this
    data_version: str = ""  # the challenger's data version (a hash of the test split's data)
    data_param: str = "data.sha256"  # where a version's params.yaml holds its data version (dotted key)
    metrics_file: str = ""  # a version's scores (JSON) in its commit, e.g. results/dvclive/metrics.json


@dataclass
class Champion:
    """The version in a stage, with the score and data version its commit records."""

    artifact: str
    stage: str
    version: str
    commit: str
    score: Optional[float]  # None: its commit records no score of the gate's metric
    data_version: str


@dataclass
class Registered:
    version: str
    version_tag: str
    stage: str = ""
    stage_tag: str = ""


def fetch_tags(git: Git, root: Path) -> None:
    """All tags of the remote (and the commits they point at) into the clone: the registry's state."""
    retry(
        lambda: git("fetch", "--quiet", "--force", "origin", "+refs/tags/*:refs/tags/*", cwd=root),
        what="git fetch of the registry's tags",
    )


def check_name(kind: str, value: str) -> None:
    from gto.constants import check_string_is_valid

    if not check_string_is_valid(value):
        raise RegistryError(
            f"{kind} {value!r} is not a valid GTO name: use letters, digits, '-', '_' and '/', at least two "
            "characters, starting and ending with a letter or digit (e.g. 'staging', 'prod')."
        )


def check_margin(margin: float) -> None:
    if not math.isfinite(margin) or margin < 0:
        raise RegistryError(
            f"margin={margin!r} is not valid: give by how much (0 or more, in the metric's units) a run must beat the "
            "champion to be promoted, e.g. 0.01."
        )


def allowed_stages(root: Path) -> Optional[list[str]]:
    """The stages the repo's `.gto` allows, or None when it sets none (any stage is allowed)."""
    import gto.api

    stages = gto.api.get_stages(str(root), allowed=True)
    return list(stages) if stages is not None else None


def check_stages(root: Path, *stages: str) -> None:
    """Each non-empty stage is a valid name and one the repo's `.gto` allows (if it restricts them)."""
    allowed = None
    for stage in filter(None, stages):
        check_name("stage", stage)
        allowed = allowed_stages(root) if allowed is None else allowed
        if allowed is not None and stage not in allowed:
            raise RegistryError(
                f"stage {stage!r} is not one the repo's .gto allows ({', '.join(allowed)}): pick one of those, "
                "or add it to `stages:` in .gto."
            )


def version_tags(git: Git, root: Path, artifact: str, points_at: str = "") -> list[str]:
    """The versions (`vX.Y.Z`) the artifact's tags name, lowest first: every one it ever had, or with
    `points_at` the ones registered (not deregistered) on that commit."""
    from gto.versions import SemVer

    args = ["tag", "--list", f"{artifact}@v*"] + (["--points-at", points_at] if points_at else [])
    pattern = re.compile(rf"^{re.escape(artifact)}@(?P<version>{_SEMVER})(?P<cancel>!)?(#\d+)?$")
    matches = [m for t in git(*args, cwd=root).splitlines() if (m := pattern.match(t))]
    cancelled = {m["version"] for m in matches if m["cancel"]}
    versions = {m["version"] for m in matches if not (points_at and m["version"] in cancelled)}
    return sorted(versions, key=SemVer)


def next_version(git: Git, root: Path, artifact: str) -> str:
    """A minor bump of the highest version the artifact ever had; FIRST_VERSION for the first."""
    from gto.versions import SemVer

    versions = version_tags(git, root, artifact)
    return SemVer(versions[-1]).bump_minor().version if versions else FIRST_VERSION


def in_stage(root: Path, artifact: str, stage: str) -> Optional[tuple[str, str]]:
    """(version, commit) of the artifact's version in `stage`, as GTO resolves it; None if none is."""
    import gto.api
    from gto.exceptions import GTOException

    try:
        found = gto.api.find_versions_in_stage(str(root), artifact, stage)
    except GTOException:  # no such artifact yet
        return None
    if not found:
        return None
    vstage = found[0] if isinstance(found, list) else found
    return vstage.version, vstage.commit_hexsha


def _lookup(doc: Any, key: str) -> Any:
    """doc["a"]["b"] for "a.b" or "a/b"; None when any part is missing."""
    for part in re.split(r"[./]", key):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def _file_at(git: Git, root: Path, commit: str, path: str) -> str:
    return git("show", f"{commit}:{path}", cwd=root, check=False) if path else ""


def read_champion(git: Git, root: Path, reg: Registration, metric: str) -> Optional[Champion]:
    """The version in `reg.champion_stage` with its recorded `metric` score and data version (tags fetched first)."""
    found = in_stage(root, reg.artifact, reg.champion_stage)
    if found is None:
        return None
    version, commit = found
    try:
        score = _lookup(json.loads(_file_at(git, root, commit, reg.metrics_file) or "{}"), metric)
    except ValueError:
        score = None
    params = yaml.safe_load(_file_at(git, root, commit, "params.yaml") or "{}") or {}
    return Champion(
        artifact=reg.artifact,
        stage=reg.champion_stage,
        version=version,
        commit=commit,
        score=float(score) if isinstance(score, (int, float)) else None,
        data_version=str(_lookup(params, reg.data_param) or ""),
    )


def judge(
    reg: Registration, champion: Optional[Champion], *, commit: str, metric: str, score: float, mode: str
) -> tuple[bool, str]:
    """Challenger against champion: (passes, what was compared and decided, in words).

    Passes when the challenger beats the champion by more than the margin in the metric's direction; a
    missing champion, one on another data version or one without a recorded score leaves the decision
    to the threshold (passes, said plainly)."""
    where = f"stage {reg.champion_stage!r} of {reg.artifact}"
    if champion is None:
        return True, f"no champion: no version is in {where} yet (a first run), so the threshold alone decides"
    name = f"champion {champion.version} ({where})"
    if champion.commit == commit:
        return True, f"this experiment is already the {name} (a retry of its run)"
    if champion.data_version != reg.data_version:
        return True, (
            f"{name} was trained and tested on data {champion.data_version[:12] or '(not recorded)'}, this run on "
            f"{reg.data_version[:12]}: not the same test split, so the scores are not compared and the threshold "
            "alone decides"
        )
    if champion.score is None:
        return True, f"{name} records no {metric} in {reg.metrics_file}: not compared, the threshold alone decides"
    delta = score - champion.score
    better = delta > reg.margin if higher_is_better(mode) else -delta > reg.margin
    margin = f" by more than {reg.margin:g}" if reg.margin else ""
    verdict = "better than" if better else f"not better{margin} than"
    return better, f"{metric} {score:.4f} {verdict} the {name}'s {champion.score:.4f} (change {delta:+.4f})"


def _push_tag(git: Git, root: Path, tag: str) -> bool:
    """Push one tag; False when the remote already has another tag of that name (another run took it)."""

    def push() -> bool:
        try:
            git("push", "--quiet", "origin", f"refs/tags/{tag}:refs/tags/{tag}", cwd=root)
        except GitError as e:
            if "already exists" in str(e) or "[rejected]" in str(e):
                return False
            raise
        return True

    return retry(push, what=f"git push of tag {tag}")


def _drop_local_tag(git: Git, root: Path, tag: str) -> None:
    git("tag", "--delete", tag, cwd=root, check=False)


def _after_last_assignment(git: Git, root: Path, artifact: str, stage: str) -> None:
    """Return once the clock is past the second of the stage's latest assignment tag.

    GTO orders a stage's assignments by their tags' dates, whole seconds; two runs assigning within one
    second would tie, and GTO would then pick by version order, not by which came last. The tag counter
    (what `registry_state` reads) and GTO agree only when each new assignment is strictly later."""
    import time

    dates = git("for-each-ref", "--format=%(taggerdate:unix)", f"refs/tags/{artifact}#{stage}#*", cwd=root).split()
    if dates:
        wait = max(int(d) for d in dates) + 1 - time.time()
        if wait > 0:
            time.sleep(min(wait, 1.0))  # the clock's own tick: at most one second


def register(git: Git, root: Path, artifact: str, commit: str, stage: str = "", attempts: int = 4) -> Registered:
    """Register `commit` as the artifact's next version and assign `stage` ("" none), with GTO; push the tags.

    Idempotent: the version already on `commit` is reused, a stage the artifact's version in it already is
    `commit`'s is not assigned again."""
    import gto.api

    check_name("artifact", artifact)
    author = {"author": IDENTITY[0], "author_email": IDENTITY[1]}
    result: Optional[Registered] = None
    for _ in range(attempts):
        fetch_tags(git, root)
        own = version_tags(git, root, artifact, points_at=commit)
        if own:
            version = own[-1]
            tag = f"{artifact}@{version}"
        else:
            version = next_version(git, root, artifact)
            tag = gto.api.register(
                str(root), artifact, ref=commit, version=version, message=f"{artifact} {version}", **author
            ).tag
        if _push_tag(git, root, tag):
            result = Registered(version=version, version_tag=tag)
            break
        _drop_local_tag(git, root, tag)  # another run pushed this version first: take the next one
    if result is None:
        raise RegistryError(f"could not register a version of {artifact}: other runs took {attempts} in a row")
    if not stage:
        return result
    for _ in range(attempts):
        current = in_stage(root, artifact, stage)
        if current is not None and current[1] == commit:
            result.stage = stage
            return result
        _after_last_assignment(git, root, artifact, stage)
        tag = gto.api.assign(
            str(root),
            artifact,
            stage,
            version=result.version,
            message=f"{artifact} {result.version} to {stage}",
            force=True,  # a version that was in the stage before and left it may come back
            **author,
        ).tag
        if _push_tag(git, root, tag):
            result.stage, result.stage_tag = stage, tag
            return result
        _drop_local_tag(git, root, tag)
        fetch_tags(git, root)
    raise RegistryError(f"could not assign stage {stage!r} to {artifact} {result.version}: other runs took it")


def describe_state(versions: list[dict]) -> str:
    """`gto show <artifact>` in words: each version with its stages."""
    if not versions:
        return "none"
    return "; ".join(
        v["version"] + (f" ({', '.join(sorted({s['stage'] for s in v['stages']}))})" if v["stages"] else "")
        for v in versions
    )


# --------------------------------------------------------------------------- using a registered model

MODEL_FORMS = "'<artifact>#<stage>' (e.g. 'digits-model#prod') or '<artifact>@<version>' (e.g. 'digits-model@v0.3.0')"


@dataclass
class Resolved:
    """A registered model, resolved to the commit and the file that hold it."""

    artifact: str
    version: str  # the version on `rev` ("" when none: a stage assigned to an unregistered commit)
    stage: str  # the stage asked for ("" when a version was asked for)
    rev: str  # the commit
    path: str  # the artifact's file at `rev` (dvc.yaml `artifacts:`), DVC-tracked


def parse_model(spec: str) -> tuple[str, str, str]:
    """(artifact, version, stage) of `<artifact>#<stage>` or `<artifact>@<version>`; anything else is refused."""
    from gto.constants import shortcut_re

    m = shortcut_re.match(spec.strip())
    if not m or m["version"] in ("latest", "greatest") or ":" in m["artifact"]:
        raise RegistryError(f"model {spec!r} is not a registered model's name: give {MODEL_FORMS}.")
    return m["artifact"], m["version"] or "", m["stage"] or ""


def remote_tags(url: str, git: Optional[Git] = None) -> dict[str, str]:
    """tag -> the commit it names (annotated tags peeled), read with `git ls-remote`: no clone."""
    git = git or Git()
    peeled = {}
    for ref, sha in git.ls_remote(url, "refs/tags/*").items():
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}") or name not in peeled:
            peeled[name.removesuffix("^{}")] = sha
    return peeled


def stage_tag(peeled: dict[str, str], artifact: str, stage: str) -> Optional[str]:
    """The assignment tag that holds `stage` of `artifact`: the highest-counted one (see `registry_state`)."""
    from gto.constants import tag_re

    best: tuple[int, Optional[str]] = (-1, None)
    for name in peeled:
        m = tag_re.match(name)
        if m and not m["cancel"] and m["artifact"] == artifact and m["stage"] == stage:
            best = max(best, (int(m["counter"] or 0), name), key=lambda b: b[0])
    return best[1]


def registry_state(
    url: str, git: Optional[Git] = None, peeled: Optional[dict[str, str]] = None
) -> dict[str, dict[str, Any]]:
    """artifact -> {"versions": [...], "stages": {stage: version}} from the repo's tags (`git ls-remote`, no clone).

    A stage's version is the one its highest-counted assignment tag names, as GTO resolves it when every
    assignment has a counter (the form this project writes)."""
    from gto.constants import tag_re

    peeled = remote_tags(url, git) if peeled is None else peeled
    state: dict[str, dict[str, Any]] = {}
    by_commit: dict[tuple[str, str], str] = {}
    assignments: dict[tuple[str, str], tuple[int, str]] = {}
    for name, sha in peeled.items():
        m = tag_re.match(name)
        if not m or m["cancel"]:
            continue
        entry = state.setdefault(m["artifact"], {"versions": [], "stages": {}})
        if m["version"]:
            entry["versions"].append(m["version"])
            by_commit[(m["artifact"], sha)] = m["version"]
        elif m["stage"]:
            counter = int(m["counter"] or 0)
            if counter >= assignments.get((m["artifact"], m["stage"]), (-1, ""))[0]:
                assignments[(m["artifact"], m["stage"])] = (counter, sha)
    from gto.versions import SemVer

    for (artifact, stage), (_, sha) in assignments.items():
        state[artifact]["stages"][stage] = by_commit.get((artifact, sha), sha[:8])
    for entry in state.values():
        entry["versions"] = sorted(set(entry["versions"]), key=SemVer)
    return state


def describe_registry(state: dict[str, dict[str, Any]]) -> str:
    if not state:
        return "no registered model at all (a run that passes its gate registers one)"
    return "; ".join(
        f"{artifact}: versions {', '.join(e['versions']) or 'none'}, stages "
        + (", ".join(f"{s} -> {v}" for s, v in sorted(e["stages"].items())) or "none")
        for artifact, e in sorted(state.items())
    )


def resolve_model(url: str, spec: str, dest: Path, git: Optional[Git] = None) -> Resolved:
    """The commit and file of `<artifact>#<stage>` / `<artifact>@<version>` in the repo at `url`, and that one
    commit checked out at `dest` (a new directory): the tags read with `git ls-remote`, then only the tag's
    commit fetched (`--depth 1`), no history, no other ref, no DVC data (the model file is then read from the DVC
    remote on its own). A name, version or stage that does not exist is refused listing the ones that do."""
    artifact, version, stage = parse_model(spec)
    git = git or Git()
    peeled = remote_tags(url, git)
    state = registry_state(url, peeled=peeled)
    known = state.get(artifact)
    missing = (
        known is None or (version and version not in known["versions"]) or (stage and stage not in known["stages"])
    )
    if missing:
        what = "artifact" if known is None else ("version" if version else "stage")
        raise RegistryError(
            f"model {spec!r}: no such {what} in {url}. The repo has {describe_registry(state)}. "
            f"Give one of those as {MODEL_FORMS}."
        )
    tag = f"{artifact}@{version}" if version else stage_tag(peeled, artifact, stage)
    rev = peeled[tag]
    dest.mkdir(parents=True)
    git("init", "--quiet", cwd=dest)
    git("fetch", "--quiet", "--depth", "1", "--no-tags", url, f"+refs/tags/{tag}:refs/tags/{tag}", cwd=dest)
    git("checkout", "--quiet", rev, cwd=dest)
    artifacts = (yaml.safe_load((dest / "dvc.yaml").read_text()) or {}).get("artifacts") or {}
    if artifact not in artifacts:
        raise RegistryError(f"model {spec!r}: commit {rev[:8]} of {url} declares no artifact {artifact!r} in dvc.yaml.")
    if stage:
        version = known["stages"][stage] if not re.fullmatch(r"[0-9a-f]{8}", known["stages"][stage]) else ""
    return Resolved(artifact=artifact, version=version, stage=stage, rev=rev, path=artifacts[artifact]["path"])
