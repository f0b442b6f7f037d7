"""The model registry (GTO tags) the bridge writes, against real git remotes, real DVC and S3 on loopback (no Ray)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import assert_refs_have_their_data, git, make_record

from dvc_bridge.bridge import preflight, record_experiment, resolve_target
from dvc_bridge.errors import RegistryError
from dvc_bridge.gitops import Git
from tasks.record.experiment import MODEL

ARTIFACT = "digits-model"


def gto_show(url: str, workdir: Path, name: str = ARTIFACT) -> list[dict]:
    """`gto show NAME --json` as a user runs it in a fresh clone with the tags fetched."""
    clone = workdir / f"gto-{len(list(workdir.glob('gto-*')))}"
    git("clone", "--quiet", url, str(clone))
    git("fetch", "--quiet", "--tags", "origin", cwd=clone)
    out = subprocess.run(
        [str(Path(sys.executable).parent / "gto"), "show", name, "--json"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def remote_tags(url: str) -> dict[str, str]:
    """tag -> the commit it points at, on the remote (peeled: annotated tags only have a ^{} line)."""
    lines = git("ls-remote", "--tags", url).splitlines()
    return {
        ref.removeprefix("refs/tags/")[:-3]: sha
        for sha, ref in (line.split("\t") for line in lines)
        if ref.endswith("^{}")
    }


def test_a_promoted_run_is_a_gto_version_in_staging_that_gto_and_dvc_resolve(tmp_path, remote_target):
    from dvc.api import artifacts_show

    target = resolve_target(remote_target)
    first = record_experiment(target, "one", make_record(tmp_path / "m1", "exec-1"), tmp_path / "w1")
    assert (first.artifact, first.version, first.stage) == (ARTIFACT, "v0.1.0", "staging")
    assert "registered digits-model@v0.1.0 in stage staging" in first.decision
    tags = remote_tags(remote_target)
    assert tags[f"{ARTIFACT}@v0.1.0"] == first.commit and tags[f"{ARTIFACT}#staging#1"] == first.commit
    bare = remote_target.removeprefix("file://")
    assert git("cat-file", "-t", f"{ARTIFACT}@v0.1.0", cwd=bare) == "tag"  # annotated, as GTO and Studio need

    second = record_experiment(target, "two", make_record(tmp_path / "m2", "exec-2", seed=1), tmp_path / "w2")
    assert (second.version, second.stage) == ("v0.2.0", "staging")  # a minor bump of the highest
    shown = {v["version"]: v for v in gto_show(remote_target, tmp_path)}
    assert set(shown) == {"v0.1.0", "v0.2.0"}
    assert shown["v0.2.0"]["commit_hexsha"] == second.commit
    assert [s["stage"] for s in shown["v0.2.0"]["stages"]] == ["staging"]
    assert gto_show(remote_target, tmp_path, f"{ARTIFACT}#staging")[0]["version"] == "v0.2.0"

    found = artifacts_show(ARTIFACT, stage="staging", repo=remote_target)
    assert found == {"rev": second.commit, "path": MODEL}
    assert artifacts_show(ARTIFACT, version="v0.1.0", repo=remote_target)["rev"] == first.commit
    # The tags came after the data: every tagged commit's model pulls from the DVC remote.
    clones = assert_refs_have_their_data(remote_target, tmp_path / "data")
    assert clones

    # A retry of the same execution finds its version and stage: no new tag.
    before = remote_tags(remote_target)
    again = record_experiment(target, "two", make_record(tmp_path / "m3", "exec-2", seed=1), tmp_path / "w3")
    assert (again.commit, again.version, again.stage) == (second.commit, "v0.2.0", "staging")
    assert remote_tags(remote_target) == before

    # Resolving for prediction fetches the one tagged commit (depth 1, no other ref); DVC reads the model file
    # from the DVC remote (S3), the clone's cache being empty.
    from dvc.api import DVCFileSystem

    from dvc_bridge.registry import resolve_model

    for spec, dest, want in ((f"{ARTIFACT}#staging", "r-stage", second), (f"{ARTIFACT}@v0.1.0", "r-v1", first)):
        got = resolve_model(remote_target, spec, tmp_path / dest)
        assert (got.version, got.rev, got.path) == (want.version, want.commit, MODEL), got
        assert git("rev-parse", "--is-shallow-repository", cwd=tmp_path / dest) == "true"
        assert git("rev-list", "--count", "--all", cwd=tmp_path / dest) == "1"
        assert git("for-each-ref", "--format=%(refname)", cwd=tmp_path / dest).split() == [
            f"refs/tags/{ARTIFACT}@{want.version}" if "@" in spec else f"refs/tags/{ARTIFACT}#staging#2"
        ]
        model = DVCFileSystem(repo=str(tmp_path / dest)).read_bytes(MODEL)
        seed_dir = "m2" if want is second else "m1"
        assert model == (tmp_path / seed_dir / "model.pth").read_bytes()


def test_champion_against_challenger_on_the_same_data_version(tmp_path, local_target):
    target = resolve_target(str(local_target))

    def run(name: str, accuracy: float, **kw):
        m = make_record(tmp_path / name, f"exec-{name}", accuracy=accuracy, champion="staging", **kw)
        return record_experiment(target, name, m, tmp_path / f"w-{name}")

    first = run("first", 0.95)
    assert first.promoted and first.version == "v0.1.0" and first.champion_version == ""
    assert "no champion: no version is in stage 'staging' of digits-model yet (a first run)" in first.decision

    worse = run("worse", 0.93)
    assert not worse.promoted and worse.version == "" and worse.champion_version == "v0.1.0"
    assert worse.champion_score == pytest.approx(0.95)
    assert "test/accuracy 0.9300 not better than the champion v0.1.0" in worse.decision and "0.9500" in worse.decision
    assert git("ls-remote", str(local_target), "refs/heads/exp-worse") == ""

    from dvc_bridge.summary import summary_html

    page = summary_html(worse)  # the Experiment Deck: both scores and the decision
    assert "Champion against challenger" in page and "v0.1.0 (staging)" in page
    assert "<td class='num'>0.9300</td>" in page and "<td class='num'>0.9500</td>" in page

    slim = run("slim", 0.96, margin=0.02)  # better, but not by the margin
    assert not slim.promoted and "not better by more than 0.02 than" in slim.decision

    better = run("better", 0.97)
    assert better.promoted and (better.version, better.stage) == ("v0.2.0", "staging")
    assert "0.9700 better than the champion v0.1.0" in better.decision and "(change +0.0200)" in better.decision
    assert "Model registry:</b> <code>digits-model@v0.2.0</code>, stage <code>staging</code>" in summary_html(better)

    other = run("other-data", 0.92, sha256="cd" * 32)  # another test split: not compared, the threshold decides
    assert other.promoted and other.version == "v0.3.0" and other.champion_version == "v0.2.0"
    assert "not the same test split, so the scores are not compared and the threshold alone decides" in other.decision

    below = run("below", 0.5, sha256="cd" * 32)  # the threshold still applies
    assert not below.promoted and "test/accuracy 0.5000 < 0.9000" in below.decision


def test_stage_none_registers_a_version_only(tmp_path, local_target):
    ref = record_experiment(
        resolve_target(str(local_target)), "plain", make_record(tmp_path / "m", "e", stage=""), tmp_path / "w"
    )
    assert (ref.version, ref.stage) == ("v0.1.0", "")
    assert git("tag", "--list", f"{ARTIFACT}#*", cwd=local_target) == ""
    assert git("rev-parse", f"{ARTIFACT}@v0.1.0^{{commit}}", cwd=local_target) == ref.commit


def test_a_stage_the_repos_gto_does_not_allow_is_refused_before_anything(tmp_path, local_target):
    (local_target / ".gto").write_text("stages: [dev, prod]\n")
    git("add", ".gto", cwd=local_target)
    git("commit", "--quiet", "-m", "gto stages", cwd=local_target)
    with pytest.raises(RegistryError, match=r"stage 'staging' is not one the repo's .gto allows \(dev, prod\)"):
        preflight(resolve_target(str(local_target)), Git(), tmp_path / "p", stages=["staging"])
    with pytest.raises(RegistryError, match="not a valid GTO name"):
        preflight(resolve_target(str(local_target)), Git(), tmp_path / "p2", stages=["no good"])
    preflight(resolve_target(str(local_target)), Git(), tmp_path / "p3", stages=["prod", ""])


def _record_in_process(url: str, name: str, tmp: str, seed: int) -> None:
    m = make_record(Path(tmp) / "m", f"exec-{name}", seed=seed)
    record_experiment(resolve_target(url), name, m, Path(tmp) / "w")


def test_two_runs_registering_at_once_get_two_versions(tmp_path, remote_target):
    """The run whose version (or stage) tag lost the push race fetches the tags and takes the next one."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_record_in_process, args=(remote_target, f"par{i}", str(tmp_path / f"p{i}"), i))
        for i in (1, 2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    tags = remote_tags(remote_target)
    versions = {t: sha for t, sha in tags.items() if "@" in t}
    assert set(versions) == {f"{ARTIFACT}@v0.1.0", f"{ARTIFACT}@v0.2.0"}
    assert len(set(versions.values())) == 2  # one version per experiment commit
    stages = sorted((t for t in tags if "#staging#" in t), key=lambda t: int(t.rsplit("#", 1)[1]))
    assert len(stages) == 2 and {tags[t] for t in stages} == set(versions.values())
    (shown,) = gto_show(remote_target, tmp_path, f"{ARTIFACT}#staging")
    assert shown["commit_hexsha"] == tags[stages[-1]]  # the latest assignment holds the stage
