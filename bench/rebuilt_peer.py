"""The rebuilt peer: the DVC + Ray tutorial's architecture (a DVC pipeline of plain Ray Tune / Ray Train
scripts run with `dvc exp run`) rebuilt on this project's own model, data and search (bench/rebuilt_peer/).

It is not the public tutorial (whose model, data, search and Ray use differ): it measures what it costs
to orchestrate the same work as our workflow through `dvc exp run` of Ray scripts.

    python -m bench.rebuilt_peer tutorial        # BENCH_QUICK=1: a tiny size

Copies the fixture into a scratch git + DVC repo (bench/rebuilt_peer/pipeline.yaml becomes its
dvc.yaml: under that name in this project, DVC would add the stages to the project's own
pipeline), sets the size with `-S` (the same tune and
train settings as our run of that size) and times `dvc exp run` while sampling the PSS and CPU
of its process tree. Stage boundaries come from DVC's "Running stage" lines and from the
sampled lifetimes of each stage's python process. Writes bench/out/rebuilt_peer.json.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench import env as E

FIXTURE = Path(__file__).resolve().parent / "rebuilt_peer"


def make_repo(root: Path, env: dict) -> Path:
    repo = root / "rebuilt_peer"
    shutil.copytree(FIXTURE, repo, ignore=shutil.ignore_patterns("__pycache__"))
    # Kept as pipeline.yaml here: a dvc.yaml anywhere in this project would join its own pipeline.
    (repo / "pipeline.yaml").rename(repo / "dvc.yaml")

    def run(*cmd):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)

    run("git", "init", "--quiet")
    run(str(E.BIN / "dvc"), "init", "--quiet")
    run("git", "add", ".")
    run("git", "commit", "--quiet", "-m", "rebuilt peer pipeline")
    return repo


def hydra_value(value) -> str:
    """A value in Hydra's override grammar (what `dvc exp run -S` parses): dict keys unquoted."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return json.dumps(value)


def set_args(size: E.RunSize) -> list[str]:
    """`-S` overrides for the size. A dict (`tune.space`) is merged by DVC into the fixture's value, which is
    empty (the problem's default space), so it becomes the given space; `++` lets it add keys."""
    args = []
    for section, values in (("tune", size.tune), ("train", size.train)):
        for key, value in values.items():
            args += ["-S", f"{'++' if isinstance(value, dict) else ''}{section}.{key}={hydra_value(value)}"]
    return args


def run_rebuilt_peer(size: E.RunSize) -> dict:
    root = E.scratch("rpeer")
    marks_file = root / "marks.jsonl"
    env = E.isolated_env(root, BENCH_MARKS=str(marks_file))
    repo = make_repo(root, env)
    cmd = [str(E.BIN / "dvc"), "exp", "run", *set_args(size)]
    from bench.e2e import _first, analyze_workers, kill_leftovers, run_watched, spans

    watched = run_watched(cmd, cwd=repo, env=env, root=root)
    proc, lines, t0, t_end, stats = watched.proc, watched.lines, watched.t0, watched.t_end, watched.stats
    from bench.marks import read_marks

    leftovers = kill_leftovers(watched)
    marks = read_marks(marks_file)
    (E.OUT_DIR / "rebuilt_peer-marks.jsonl").write_text("".join(json.dumps(m) + "\n" for m in marks))
    sp = spans(marks)
    log_path = E.OUT_DIR / "rebuilt_peer.log"
    E.OUT_DIR.mkdir(parents=True, exist_ok=True)
    log_path.write_text("".join(f"{t - t0:8.2f}s {line}\n" for t, line in lines))

    stage_starts = [(t, m.group(1)) for t, line in lines if (m := re.search(r"Running stage '(\w+)'", line))]
    stages = {
        name: round((stage_starts[i + 1][0] if i + 1 < len(stage_starts) else t_end) - t, 2)
        for i, (t, name) in enumerate(stage_starts)
    }
    pss = stats.to_dict(t0)
    scripts = {k: v for k, v in pss["alive_by_kind_s"].items() if k.startswith("python:")}

    def read(path: str):
        p = repo / path
        return json.loads(p.read_text()) if p.exists() else {}

    # Per stage script: start-up until ray.init, ray.init, the fit, and from the fit's end to the script's exit.
    script_phases = {}
    for stage, fit_name in (("tune", "tune_fit"), ("train", "train_fit")):
        proc_mark = next(
            (m for m in marks if m["ev"] == "process" and f"{stage}.py" in " ".join(m.get("argv", []))), None
        )
        if not proc_mark:
            continue
        pid = proc_mark["pid"]
        init = next((x for x in sp if x["name"] == "ray_init" and x["_pid"] == pid), None)
        fit = next((x for x in sp if x["name"] == fit_name and x["_pid"] == pid), None)
        exit_t = t0 + scripts.get(f"python:{stage}.py", [None, t_end - t0])[1]
        script_phases[stage] = {
            "start_to_ray_init_s": round(init["start"] - proc_mark["created"], 2) if init else None,
            "ray_init_s": round(init["end"] - init["start"], 2) if init else None,
            "fit_s": round(fit["end"] - fit["start"], 2) if fit else None,
            "fit_end_to_exit_s": round(exit_t - fit["end"], 2) if fit else None,
        }
    windows = {
        phase: (f["start"], f["end"])
        for phase, name in (("tune", "tune_fit"), ("train", "train_fit"))
        if (f := _first(sp, name=name))
    }

    result = {
        "size": {"name": size.name, "tune": size.tune, "train": size.train},
        "command": "dvc exp run " + " ".join(set_args(size)),
        "returncode": proc.returncode,
        "wall_s": round(t_end - t0, 2),
        "stages_s": stages,  # from DVC's "Running stage" lines to the next one (or the end)
        "script_alive_s": scripts,  # each stage script's process, as sampled
        "script_phases_s": script_phases,
        "workers": analyze_workers(sp, marks, windows),
        # the test score, scored once after the last epoch (as ours); validation: the last epoch's
        "accuracy": (read("dvclive/metrics.json").get("test") or {}).get("accuracy"),
        "val_accuracy": (read("dvclive/metrics.json").get("val") or {}).get("accuracy"),
        "tune": read("results/tune.json"),
        "pss": pss,
        "leftover_processes": leftovers,
        "log": str(log_path),
    }
    if proc.returncode != 0:
        result["error_tail"] = [line for _, line in lines[-40:]]
    E.cleanup(root)
    return result


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "tutorial"
    size = dict(zip(("default", "tutorial"), E.sizes()))[label]
    result = run_rebuilt_peer(size)
    path = E.write_json("rebuilt_peer", result)
    print(
        json.dumps(
            {k: result[k] for k in ("wall_s", "returncode", "stages_s", "accuracy", "val_accuracy")}
            | {"peak_pss_gib": result["pss"]["peak_pss_gib"], "results": str(path)}
        )
    )


if __name__ == "__main__":
    main()
