"""Turn a run's outputs into a DVC experiment in a target repo, pushed data-first. No Flyte or Ray.

Each call works in its own fresh clone, so concurrent runs never share a workspace. Order that
loses nothing: the model goes to the DVC remote (or, for a local target without one, into that
repo's own DVC cache) before the experiment's git ref is pushed; a ref on the remote therefore
always has its data. A promoted run (its gate passed) also gets the branch `exp-<name>` and, when the
record asks for it, a GTO version of its model artifact and a stage (`dvc_bridge.registry`): pushed
last, after the data and the experiment's ref. A retry of the same run finds its own experiment by the
execution id in `results/run.json` and does not make a second one, nor a second version.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
from contextlib import chdir, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional
from urllib.parse import urlparse, urlunparse

from dvc_bridge import layout
from dvc_bridge.direction import at_least_as_good, higher_is_better
from dvc_bridge.errors import ExperimentExistsError, PushError, RemoteError, TargetError
from dvc_bridge.fastpush import preupload_large_files
from dvc_bridge.gitops import IDENTITY, Git, GitError, retry
from dvc_bridge.registry import Registration, check_stages, judge, read_champion, register
from dvc_bridge.studio import announce_pushed

EXP_REFS = "refs/exps"
STAGES = layout.DVC_YAML  # what the bridge commits, saves and pushes: the stages of the repo's dvc.yaml
# botocore's own retries for the S3 calls DVC makes here. Its default (legacy mode, 5 attempts with
# backoff) made an unreachable endpoint cost ~5 s per request and ~45 s per failed commit; one quick
# retry per request is enough, since the bridge retries the whole push itself with backoff.
S3_RETRY_ENV = {"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "2"}
# Seconds to wait for a TCP connection to an S3 DVC remote that sets no `connect_timeout` (s3fs: 5).
S3_CONNECT_TIMEOUT = 3
# Never in an experiment commit: DVC's scratch directory (`exp save` of DVC 3.67 commits the pickled
# run arguments, .dvc/tmp/repro.dat, which `exp run` removes but `exp save` does not), its cache and
# the clone's local config.
TEMPORARY_PATHS = (".dvc/tmp", ".dvc/cache", ".dvc/config.local")
# Environment variables whose values must never appear in a committed file.
SECRET_ENV = (
    "GIT_TOKEN",
    "DVC_STUDIO_TOKEN",
    "STUDIO_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "FLYTE_AWS_SECRET_ACCESS_KEY",
)


@dataclass
class ExperimentRef:
    """Where the experiment is. No credentials in it, ever."""

    name: str
    commit: str
    baseline_rev: str
    git_ref: str
    repo: str
    data_pushed: bool
    ref_pushed: bool
    promoted: bool = False
    branch: str = ""
    decision: str = ""
    metric: str = ""  # the gate's metric, e.g. "test/accuracy"
    # The gate's score; None until a gate was applied. Never NaN: flyteadmin renders the output type's
    # schema (this default included) as JSON, which has no NaN.
    score: Optional[float] = None
    # The model registry (GTO), when the run was promoted and its record asked for a registration:
    artifact: str = ""  # e.g. "digits-model"
    version: str = ""  # e.g. "v0.3.0": the tag <artifact>@<version> is on `commit`
    stage: str = ""  # the stage assigned to that version ("" none)
    # Champion against challenger (the gate compared with the version in `champion_stage`):
    champion_stage: str = ""
    champion_version: str = ""  # "" when that stage held no version
    champion_score: Optional[float] = None  # None: no champion, or it records no score
    champion_decision: str = ""  # what was compared and decided, in words

    def __repr__(self) -> str:
        return f"ExperimentRef({self.name} ({self.commit[:8]}) in {self.repo}: {self.decision})"

    def __str__(self) -> str:  # a Deck page's HTML (flytekit renders a value as str(value))
        return f"<p><b>experiment</b>: {html.escape(repr(self)[len('ExperimentRef(') : -1])}</p>"


@dataclass
class Gate:
    """Promote the experiment when `score` is at least as good as `threshold` ("max": >=, "min": <=); with no
    threshold, the champion comparison (ExperimentRecord.registration) alone decides."""

    metric: str
    score: float
    threshold: Optional[float]
    mode: str = "max"

    def passes(self) -> bool:
        return self.threshold is None or at_least_as_good(self.mode, self.score, self.threshold)

    def describe(self) -> str:
        if self.threshold is None:
            return f"{self.metric} {self.score:.4f} (no threshold)"
        op = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
            (higher_is_better(self.mode), self.passes())
        ]
        return f"{self.metric} {self.score:.4f} {op} {self.threshold:.4f}"


@dataclass
class ExperimentRecord:
    """What the caller wants recorded, described generically: the bridge knows nothing of any problem."""

    documents: dict[str, dict]  # repo path -> YAML document (params.yaml, ...), committed to git
    git_files: dict[str, Path]  # repo path -> local file or directory, committed to git
    dvc_files: dict[str, Path]  # repo path -> local file tracked by DVC; the repo's dvc.yaml must declare it an out
    run_info: dict  # written to results/run.json; must hold "execution_id"
    dvc_yaml: dict = field(default_factory=dict)  # top-level dvc.yaml sections to set (metrics, plots, artifacts)
    message: str = ""  # one line for the experiment's commit message
    gate: Optional[Gate] = None  # no gate: never promoted
    # A promoted run's model as a GTO version (and stage) of this artifact, after the champion comparison if asked.
    registration: Optional[Registration] = None
    # Experiments saved beside this one, on the same baseline (a search's trials): name -> record of
    # documents and git files only (no DVC data, never promoted). Pushed before this one's ref.
    siblings: dict[str, ExperimentRecord] = field(default_factory=dict)


@dataclass
class Target:
    url: str  # a git URL, or an absolute local path
    local: bool

    @property
    def display(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """The URL without any user:password part."""
    parsed = urlparse(url)
    if parsed.scheme and "@" in parsed.netloc:
        return urlunparse(parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]))
    return url


def is_git_url(url: str) -> bool:
    """https://, ssh://, file:// and git@host:path are URLs; anything else is a local path."""
    return "://" in url or (":" in url.split("/")[0] and "@" in url.split(":")[0])


def resolve_target(repo_url: str, cwd: Optional[Path] = None) -> Target:
    """A git URL (file:// included) as is; a local path made absolute; "" the git repo `cwd` is in."""
    if not repo_url:
        cwd = Path(cwd or os.getcwd())
        proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=cwd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise TargetError(
                f"repo_url is empty and {cwd} is not inside a git repository: pass --repo_url "
                "(a git URL or a local path of a DVC repo)."
            )
        return Target(proc.stdout.strip(), local=True)
    if is_git_url(repo_url):
        return Target(repo_url, local=False)
    path = Path(repo_url).expanduser().resolve()
    if not path.exists():
        raise TargetError(f"repo_url {repo_url!r} does not exist: give an existing local repo path or a git URL.")
    if not ((path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())):
        raise TargetError(
            f"repo_url {repo_url!r} is not a git repository: give the top directory of a DVC repo (make one with "
            f"`python -m tasks.scaffold {repo_url}`) or a git URL."
        )
    return Target(str(path), local=True)


def validate_exp_name(name: str) -> None:
    proc = subprocess.run(["git", "check-ref-format", f"{EXP_REFS}/ab/cdef/{name}"], capture_output=True)
    if not name or "/" in name or proc.returncode != 0:
        raise TargetError(
            f"experiment name {name!r} is not a valid git ref name: use letters, digits, '-', '_' and '.', "
            "no '/', spaces, '..', '~', '^', ':' or a trailing '.lock'."
        )


def clone(target: Target, dest: Path, git: Git, rev: str = "") -> str:
    """Clone the target into `dest` and check out `rev` (default: its HEAD); returns the commit."""
    try:
        git("clone", "--quiet", "--no-checkout", target.url, str(dest))
    except GitError as e:
        raise TargetError(f"cannot clone {target.display}: {e}. Check repo_url and the git credentials.") from e
    try:
        try:
            sha = git("rev-parse", "--verify", f"{rev or 'HEAD'}^{{commit}}", cwd=dest)
        except GitError:
            if not rev:
                raise
            sha = git("rev-parse", "--verify", f"origin/{rev}^{{commit}}", cwd=dest)  # a branch of the target
    except GitError as e:
        raise TargetError(
            f"revision {rev or 'HEAD'!r} is not in {target.display}: give an existing branch, tag or commit."
        ) from e
    git("checkout", "--quiet", "--detach", sha, cwd=dest)
    # DVC commits experiments in-process (not through `git`), so the identity goes in the clone's config.
    git("config", "user.name", IDENTITY[0], cwd=dest)
    git("config", "user.email", IDENTITY[1], cwd=dest)
    return sha


def check_layout(root: Path, target: Target, outs: Iterable[str]) -> None:
    """The clone is a DVC repo whose dvc.yaml declares every DVC-tracked path the record will write."""
    if not (root / ".dvc").is_dir():
        raise TargetError(
            f"{target.display} is not a DVC repo (no .dvc/ directory): run `python -m tasks.scaffold` "
            "in it, or `dvc init` and add this project's dvc.yaml and params.yaml."
        )
    missing = sorted(set(outs) - layout.declared_outs(root))
    if missing:
        raise TargetError(
            f"{target.display}'s dvc.yaml declares no stage out for {', '.join(missing)}: "
            "add this project's stages (python -m tasks.scaffold writes them)."
        )


def default_remote(repo) -> str:
    return repo.config["core"].get("remote", "")


def has_default_remote(root: Path) -> bool:
    """Whether the DVC repo at `root` names a default remote (so `dvc pull` there has somewhere to pull from)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return bool(default_remote(repo))


@contextmanager
def bounded_s3_retries() -> Iterator[None]:
    """botocore reads its retry settings from the environment when DVC creates its S3 client: set them
    for this block only, unless the user set them (the S3 timeouts are the DVC remote's own
    `connect_timeout` / `read_timeout`, 5 s and 15 s unless configured)."""
    added = {k: v for k, v in S3_RETRY_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def check_remote(repo, name: str) -> None:
    """The DVC remote answers and its bucket (or directory) exists."""
    try:
        with bounded_s3_retries():
            remote = repo.cloud.get_remote(name)
            fs, path = remote.fs, remote.path
            root = path.split("/", 1)[0] if fs.protocol not in ("local", "file") else path
            fs.ls(root)  # unlike exists(), raises on a connection error
    except FileNotFoundError as e:
        raise RemoteError(
            f"DVC remote {name!r}: {e.filename or e} does not exist. Create the bucket or directory first."
        ) from e
    except Exception as e:
        raise RemoteError(
            f"DVC remote {name!r} is unreachable: {type(e).__name__}: {e}. Check its URL, endpoint and credentials."
        ) from e


def preflight(
    target: Target, git: Git, workdir: Path, rev: str = "", outs: Iterable[str] = (), stages: Iterable[str] = ()
) -> str:
    """Cheap checks before any cluster starts: reachable, a DVC repo, a DVC remote when one is required,
    and the registry stages asked for valid and allowed by the repo's `.gto` (if it restricts them).

    Returns the commit `rev` (default: HEAD) resolves to: the experiment's baseline.
    """
    from dvc.repo import Repo

    dest = workdir / "preflight"
    baseline = clone(target, dest, git, rev)
    check_layout(dest, target, outs)
    check_stages(dest, *stages)
    with chdir(dest), Repo(".") as repo:
        remote = default_remote(repo)
        if not remote and not target.local:
            raise RemoteError(_no_remote_message(target))
        if remote:
            _bound_s3_connect_timeout(dest, repo, remote)
    if remote:
        with chdir(dest), Repo(".") as repo:
            check_remote(repo, remote)
    return baseline


def _no_remote_message(target: Target) -> str:
    return (
        f"{target.display} has no default DVC remote, so the model could not be shared: "
        "add one (`dvc remote add -d storage s3://bucket/path`, plus `dvc remote modify storage endpointurl URL` "
        "for a non-AWS endpoint) and commit .dvc/config."
    )


def find_experiment(git: Git, url: str, name: str) -> Optional[tuple[str, str]]:
    """(ref, sha) of an experiment called `name` on the remote, if any."""
    for ref, sha in git.ls_remote(url, f"{EXP_REFS}/*").items():
        if ref.rsplit("/", 1)[-1] == name:
            return ref, sha
    return None


def _own_execution(git: Git, root: Path, ref: str, sha: str) -> str:
    git("fetch", "--quiet", "origin", f"{ref}:{ref}", cwd=root)
    try:
        return json.loads(git("show", f"{sha}:{layout.RUN_INFO}", cwd=root)).get("execution_id", "")
    except (GitError, ValueError):
        return ""


def materialize(root: Path, record: ExperimentRecord) -> list[str]:
    """Write the record into the work tree; returns the paths git must track."""
    for path, doc in record.documents.items():
        layout.write_yaml(root / path, doc)
    for path, src in {**record.git_files, **record.dvc_files}.items():
        layout.place(Path(src), root / path)
    layout.merge_declarations(root, record.dvc_yaml)
    layout.write_run_info(root, record.run_info)
    gitignores = [str(Path(p).parent / ".gitignore") for p in record.dvc_files]  # written by `dvc commit`
    return [*record.documents, *record.git_files, layout.DVC_YAML, "dvc.lock", layout.RUN_INFO, *gitignores]


def _target_cache_dir(target: Target) -> str:
    from dvc.repo import Repo

    with chdir(target.url), Repo(".") as target_repo:
        return target_repo.cache.local_cache_dir


def _bound_s3_connect_timeout(root: Path, repo, remote: str) -> None:
    """An S3 DVC remote without its own `connect_timeout` gets S3_CONNECT_TIMEOUT in this clone."""
    conf = repo.config["remote"].get(remote, {})
    if conf.get("url", "").startswith("s3://") and "connect_timeout" not in conf:
        _clone_config(root, f"['remote \"{remote}\"']\n    connect_timeout = {S3_CONNECT_TIMEOUT}\n")


def _clone_config(root: Path, text: str) -> None:
    """DVC settings for the bridge's clone only (`.dvc/config.local` is never committed)."""
    with open(root / ".dvc" / "config.local", "a") as f:
        f.write(text)


def record_experiment(
    target: Target,
    name: str,
    record: ExperimentRecord,
    workdir: Path,
    *,
    base_rev: str = "",
    git: Optional[Git] = None,
) -> ExperimentRef:
    """Clone, write, `dvc commit`, `exp save`, push data, push the ref, promote if the gate passes."""
    from dvc.repo import Repo

    git = git or Git()
    validate_exp_name(name)
    execution_id = record.run_info["execution_id"]
    root = workdir / "repo"
    baseline = clone(target, root, git, base_rev)
    check_layout(root, target, record.dvc_files)
    # `exp save` (DVC 3.67) pickles the Studio settings, token included, into .dvc/tmp/repro.dat and
    # commits that file into the experiment. The bridge never talks to Studio (DVCLive does, while
    # training), so its clone is offline for Studio and no token can reach the pushed history.
    _clone_config(root, "[studio]\n    offline = true\n")

    existing = find_experiment(git, target.url, name)
    if existing and _own_execution(git, root, *existing) != execution_id:
        raise ExperimentExistsError(
            f"experiment {name!r} already exists in {target.display} from another run: pass another exp_name "
            "(or leave it empty to derive one from the execution id)."
        )

    with chdir(root), Repo(".") as repo:
        remote = default_remote(repo)
        if remote:
            _bound_s3_connect_timeout(root, repo, remote)
    if not remote and not target.local:
        raise RemoteError(_no_remote_message(target))
    # The clone is thrown away, so its cache may share the files' inodes instead of copying them.
    cache = {"type": "hardlink,copy"}
    if not remote:  # a local target without a DVC remote keeps the model in its own cache: share it
        cache["dir"] = _target_cache_dir(target)
    _clone_config(root, "[cache]\n" + "".join(f"    {k} = {v}\n" for k, v in cache.items()))

    tracked = materialize(root, record)
    with chdir(root), Repo(".") as repo:
        # Only the pipeline's stages: other DVC-tracked data of the repo (a dataset's .dvc file) is not in
        # this clone's work tree, and is neither the record's to commit nor to push.
        repo.commit(STAGES, force=True)
        git("add", "--", *[p for p in tracked if (root / p).exists()], cwd=root)
        if not existing:
            repo.experiments.save(
                targets=[STAGES], name=name, message=f"flyte {execution_id}: {record.message}".rstrip(": ")
            )
        metrics = studio_metrics(repo)
        # Data first: a ref on the remote must never point at data that is not there.
        if remote:
            try:
                with bounded_s3_retries():
                    preupload_large_files(repo, remote)
                    retry(lambda: repo.push(targets=[STAGES], remote=remote), what=f"dvc push to remote {remote!r}")
                    retry(lambda: push_run_cache(repo, remote), what=f"dvc push --run-cache to remote {remote!r}")
            except PushError as e:
                raise PushError(
                    f"{e}. Nothing was recorded: no git ref was pushed, so no experiment points at missing data. "
                    f"Check that the DVC remote {remote!r} is reachable, then retry the run."
                ) from e.__cause__

    sibling_refs: list[str] = []
    if existing:
        ref, commit = existing
    else:
        # The search's trials first: the run's own ref on the remote means they are there too.
        if record.siblings:
            on_remote = git.ls_remote(target.url, f"{EXP_REFS}/*")
            for sibling_name, sibling in record.siblings.items():
                s_ref, _ = save_sibling(git, root, baseline, sibling_name, sibling)
                sibling_refs.append(s_ref)
                if s_ref not in on_remote:  # a retry finds the ones an earlier attempt pushed
                    retry(
                        lambda ref=s_ref: git("push", "--quiet", "origin", f"{ref}:{ref}", cwd=root),
                        what=f"git push of {s_ref}",
                    )
        ref = next(
            r
            for r in git("for-each-ref", "--format=%(refname)", EXP_REFS, cwd=root).splitlines()
            if r.endswith("/" + name)
        )
        commit = drop_temporary_files(git, root, ref)
        check_no_secrets(git, root, commit, baseline)
        retry(lambda: git("push", "--quiet", "origin", f"{ref}:{ref}", cwd=root), what=f"git push of {ref}")

    # What DVC sends when `dvc exp run` ends and `dvc exp push` has pushed: Studio's live row becomes this commit.
    announce_pushed(
        name=name,
        baseline=baseline,
        commit=commit,
        ref=ref,
        repo_url=target.display,
        metrics=metrics,
        also_pushed=sibling_refs,
    )
    result = ExperimentRef(
        name=name,
        commit=commit,
        baseline_rev=baseline,
        git_ref=ref,
        repo=target.display,
        data_pushed=True,  # reached only after the data push (or the shared cache) holds the model
        ref_pushed=True,
    )
    return promote(result, root, git, record.gate, record.registration)


def studio_metrics(repo) -> dict:
    """The workspace's metrics files as DVC's `done` event carries them ({path: {"data": {...}}})."""
    try:
        from compat.dvc import gather_metrics

        return {path: {"data": r["data"]} for path, r in gather_metrics(repo).items() if "data" in r}
    except Exception:  # a view for Studio only
        return {}


def push_run_cache(repo, remote: str) -> int:
    """`dvc push --run-cache`, complete: the objects of each run-cache entry's outputs, then the entries.

    DVC 3.67's `push(run_cache=True)` uploads the entries (`runs/...`) but not the objects of the
    stages' `cache: false` outs (results/dvclive), which `dvc commit` put in the cache for the run
    cache alone; without them `dvc repro --pull` elsewhere finds the entry, cannot check it out, and
    runs the stage again. Returns the number of entries pushed.
    """
    runs = Path(repo.stage_cache.cache_dir)
    entries = [(p.parent.name, p.name) for p in runs.glob("*/*/*") if p.is_file()] if runs.is_dir() else []
    for objs in repo.stage_cache.get_used_objs(entries, remote=remote).values():
        repo.cloud.push(objs, remote=remote)
    return len(repo.stage_cache.push(remote))


def exp_ref_name(baseline: str, name: str) -> str:
    """The ref DVC keeps an experiment of `name` on `baseline` under."""
    return f"{EXP_REFS}/{baseline[:2]}/{baseline[2:]}/{name}"


def save_sibling(git: Git, root: Path, baseline: str, name: str, record: ExperimentRecord) -> tuple[str, str]:
    """An experiment commit on `baseline` with the record's documents, git files, run info and dvc.yaml
    declarations (the baseline's tree otherwise, no DVC data), at DVC's ref for `name`: `dvc exp show`
    lists it as any saved experiment. Returns (ref, commit)."""
    import tempfile

    validate_exp_name(name)
    with tempfile.TemporaryDirectory(prefix="frd-sibling-") as d:
        tree = Path(d) / "tree"
        tree.mkdir()
        base_yaml = git("show", f"{baseline}:{layout.DVC_YAML}", cwd=root, check=False)
        if base_yaml:
            (tree / layout.DVC_YAML).write_text(base_yaml + "\n")
        paths = [p for p in materialize(tree, record) if (tree / p).exists()]
        files = sorted(
            f for p in paths for f in ([tree / p] if (tree / p).is_file() else (tree / p).rglob("*")) if f.is_file()
        )
        env = {**git.env, "GIT_INDEX_FILE": str(Path(d) / "index")}

        def run(*args, **kw):
            return subprocess.run(
                ["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True, **kw
            ).stdout.strip()

        run("read-tree", baseline)
        shas = run("hash-object", "-w", "--stdin-paths", input="\n".join(map(str, files)) + "\n").splitlines()
        run(
            "update-index",
            "--add",
            "--index-info",
            input="".join(f"100644 {sha}\t{f.relative_to(tree).as_posix()}\n" for sha, f in zip(shas, files)),
        )
        commit = run("commit-tree", run("write-tree"), "-p", baseline, "-m", record.message or name)
    ref = exp_ref_name(baseline, name)
    git("update-ref", ref, commit, cwd=root)
    check_no_secrets(git, root, commit, baseline)
    return ref, commit


def drop_temporary_files(git: Git, root: Path, ref: str) -> str:
    """Rewrite the experiment commit at `ref` without TEMPORARY_PATHS (same parent, message and other
    files); returns the commit `ref` points at afterwards."""
    commit = git("rev-parse", ref, cwd=root)
    if not git("ls-tree", "-r", "--name-only", commit, "--", *TEMPORARY_PATHS, cwd=root):
        return commit
    index = {"GIT_INDEX_FILE": str(root / ".git" / "frd-clean-index")}
    git("read-tree", commit, cwd=root, env=index)
    git("rm", "-r", "--cached", "--quiet", "--ignore-unmatch", "--", *TEMPORARY_PATHS, cwd=root, env=index)
    tree = git("write-tree", cwd=root, env=index)
    message = git("log", "-1", "--format=%B", commit, cwd=root)
    clean = git("commit-tree", tree, "-p", f"{commit}^", "-m", message, cwd=root)
    git("update-ref", ref, clean, commit, cwd=root)
    return clean


def check_no_secrets(git: Git, root: Path, commit: str, baseline: str, environ: Optional[dict] = None) -> None:
    """Refuse to push a commit that adds any file holding a credential this process has (the git token,
    the Studio token, S3 secrets)."""
    environ = os.environ if environ is None else environ
    secrets = {v for v in [*git.secrets, *(environ.get(k, "") for k in SECRET_ENV)] if len(v) >= 8}
    if not secrets:
        return
    needles = [secret.encode() for secret in secrets]
    for path in git("diff", "--name-only", "--no-renames", "--diff-filter=d", baseline, commit, cwd=root).splitlines():
        blob = subprocess.run(
            ["git", "cat-file", "blob", f"{commit}:{path}"], cwd=root, env=git.env, capture_output=True, check=True
        ).stdout
        if any(needle in blob for needle in needles):
            raise TargetError(
                f"the experiment's file {path} holds a credential of this run: nothing was pushed. "
                "Keep tokens in the environment or the secret store, never in a recorded file."
            )


def promote(
    exp: ExperimentRef, root: Path, git: Git, gate: Optional[Gate], registration: Optional[Registration] = None
) -> ExperimentRef:
    """Every run is recorded; one whose gate passes (the threshold, and the champion comparison when asked)
    also gets a pushed branch and, with a registration, a GTO version and stage (pushed last)."""
    if gate is None:
        exp.decision = "recorded (no gate)"
        return exp
    exp.metric, exp.score = gate.metric, gate.score
    reasons = [gate.describe()]
    passes = gate.passes()
    if registration is not None and registration.champion_stage:
        from dvc_bridge.registry import fetch_tags

        fetch_tags(git, root)
        champion = read_champion(git, root, registration, gate.metric)
        beats, words = judge(
            registration, champion, commit=exp.commit, metric=gate.metric, score=gate.score, mode=gate.mode
        )
        exp.champion_stage, exp.champion_decision = registration.champion_stage, words
        if champion is not None:
            exp.champion_version, exp.champion_score = champion.version, champion.score
        reasons.append(words)
        passes = passes and beats
    if not passes:
        exp.decision = f"recorded, not promoted: {'; '.join(reasons)}"
        return exp
    branch = f"exp-{exp.name}"
    retry(
        lambda: git("push", "--quiet", "origin", f"{exp.commit}:refs/heads/{branch}", cwd=root),
        what=f"git push of branch {branch}",
    )
    exp.promoted, exp.branch = True, branch
    where = f"branch {branch}"
    if registration is not None:
        registered = register(git, root, registration.artifact, exp.commit, registration.stage)
        exp.artifact, exp.version, exp.stage = registration.artifact, registered.version, registered.stage
        where += f", registered {exp.artifact}@{exp.version}" + (f" in stage {exp.stage}" if exp.stage else "")
    exp.decision = f"promoted to {where}: {'; '.join(reasons)}"
    return exp
