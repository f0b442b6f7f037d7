"""End to end: `pyflyte run workflows/tune_train.py tune_train_wf` from a cold start, split into phases.

    python -m bench.e2e default|tutorial      # BENCH_QUICK=1: both at a tiny size

Runs the workflow in a fresh HOME (cold Flyte cache) against a scratch DVC repo made with
`python -m tasks.scaffold`, through `bench.launch` (pyflyte plus timing marks), while
sampling the PSS and CPU time of the whole process tree. Writes bench/out/e2e-<size>.json, the
timestamped log and the run's trials table (the input of the pure-compute replay).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import env as E
from bench.marks import read_marks
from bench.proctree import TreeSampler

TIMEOUT_S = 1500

# First log line matching each pattern: Ray Train's own start-up messages and the project's progress lines.
LOG_MARKERS = {
    "train_process_group_setup": r"Setting up process group",
    "train_worker_group_started": r"Started training worker group",
    "train_ddp_wrap": r"Wrapping provided model in DistributedDataParallel",
    "train_first_epoch_line": r"RayTrainWorker.*epoch 1/\d+",
    "tune_first_trial_line": r"trial \d+/\d+ \S+ \[",
    "placement_group_cleaner_error": r"Found multiple active Ray instances",
}


def log_markers(lines: list[tuple[float, str]], t0: float) -> dict:
    found = {}
    for t, line in lines:
        for name, pattern in LOG_MARKERS.items():
            if name not in found and re.search(pattern, line):
                found[name] = round(t - t0, 2)
    return found


@dataclass
class Watched:
    proc: subprocess.Popen
    lines: list[tuple[float, str]]  # (time, line) of its combined output
    t0: float
    t_end: float
    stats: object  # the TreeSampler's statistics of the whole process tree
    started: dict[int, int]  # every process of the tree it saw: pid -> start time


def run_watched(cmd: list[str], *, cwd: Path, env: dict, root: Path) -> Watched:
    """Run `cmd` to its end (or TIMEOUT_S), timestamping its output and sampling its process tree."""
    lines: list[tuple[float, str]] = []
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with TreeSampler(proc.pid, match=str(root)) as sampler:
        reader = threading.Thread(
            target=lambda: [lines.append((time.time(), line.rstrip("\n"))) for line in proc.stdout]
        )
        reader.start()
        try:
            proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(30)
        t_end = time.time()
        time.sleep(0.3)  # one more sample: does anything outlive the driver?
    return Watched(proc, lines, t0, t_end, sampler.stats(), dict(sampler.started))


def run_workflow(size: E.RunSize, label: str) -> dict:
    root = E.scratch(label)
    marks_file = root / "marks.jsonl"
    env = E.isolated_env(root, BENCH_MARKS=str(marks_file))
    target = root / "target"
    subprocess.run([sys.executable, "-m", "tasks.scaffold", str(target)], env=env, check=True, capture_output=True)

    cmd = [
        sys.executable,
        "-m",
        "bench.launch",
        "run",
        str(E.PROJECT_ROOT / "workflows" / "tune_train.py"),
        "tune_train_wf",
        "--repo_url",
        str(target),
        *size.pyflyte_args(),
    ]
    watched = run_watched(cmd, cwd=root, env=env, root=root)
    proc, log_lines, t0, t_end, stats = watched.proc, watched.lines, watched.t0, watched.t_end, watched.stats
    leftovers = kill_leftovers(watched)

    E.OUT_DIR.mkdir(parents=True, exist_ok=True)
    log_path = E.OUT_DIR / f"e2e-{label}.log"
    log_path.write_text("".join(f"{t - t0:8.2f}s {line}\n" for t, line in log_lines))
    marks = read_marks(marks_file)
    (E.OUT_DIR / f"e2e-{label}-marks.jsonl").write_text("".join(json.dumps(m) + "\n" for m in marks))
    result = {
        "size": {"name": size.name, "tune": size.tune, "train": size.train},
        "command": "pyflyte run workflows/tune_train.py tune_train_wf "
        + " ".join(f"'{a}'" if a.startswith("{") else a for a in size.pyflyte_args()),
        "returncode": proc.returncode,
        "wall_s": round(t_end - t0, 2),
        "log": str(log_path),
        "leftover_processes": leftovers,
        "pss": stats.to_dict(t0),
        "log_markers_s": log_markers(log_lines, t0),
        **analyze(marks, t0, t_end),
        "experiment": read_experiment(target, label),
    }
    if proc.returncode != 0:
        result["error_tail"] = [line for _, line in log_lines[-40:]]
    E.cleanup(root)
    return result


def kill_leftovers(watched: Watched) -> list[str]:
    """Processes of this run still alive after its driver exited (a leak worth reporting); killed.

    Only the processes the run's sampler saw in its tree, by pid and start time (a reused pid is not the same
    process): never anything else on the machine.
    """
    import psutil

    from bench.proctree import read_cmdline, read_stat

    left = []
    for pid, started in watched.started.items():
        stat = read_stat(pid)
        if pid == os.getpid() or stat is None or stat[2] != started:
            continue
        left.append(" ".join(read_cmdline(pid))[:120])
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    return left


# ---------------------------------------------------------------- marks -> phases


def spans(marks: list[dict]) -> list[dict]:
    """Pair each `<x>_start` with the next `<x>_end` of the same process and task."""
    out, open_ = [], {}
    for m in marks:
        ev = m["ev"]
        key_fields = (m.get("pid"), m.get("task"), m.get("cmd"), m.get("trial"))
        if ev.endswith("_start"):
            open_.setdefault((ev[:-6], key_fields), []).append(m)
        elif ev.endswith("_end"):
            stack = open_.get((ev[:-4], key_fields))
            if stack:
                s = stack.pop()
                out.append(
                    {
                        "name": ev[:-4],
                        "start": s["t"],
                        "end": m["t"],
                        "_pid": s.get("pid"),
                        **{k: v for k, v in s.items() if k not in ("t", "ev", "pid")},
                    }
                )
    return sorted(out, key=lambda s: s["start"])


def _first(items, **match):
    return next((s for s in items if all(s.get(k) == v for k, v in match.items())), None)


def _dur(s) -> float:
    return round(s["end"] - s["start"], 2) if s else 0.0


def analyze(marks: list[dict], t0: float, t_end: float) -> dict:
    sp = spans(marks)
    ev = lambda name: [m for m in marks if m["ev"] == name]  # noqa: E731
    rel = lambda t: round(t - t0, 2) if t is not None else None  # noqa: E731
    wf = _first(sp, name="workflow")
    launcher = ev("launcher_start")
    exit_mark = ev("exit")

    tasks = {}
    for task in dict.fromkeys(s["task"] for s in sp if s["name"] == "task"):
        outer = _first(sp, name="task", task=task)
        dispatch = _first(sp, name="dispatch", task=task)
        inputs = _first(sp, name="inputs_to_python", task=task)
        outputs = _first(sp, name="outputs_to_literals", task=task)
        ray_init = next(
            (
                s
                for s in sp
                if s["name"] == "ray_init" and dispatch and dispatch["start"] <= s["start"] <= dispatch["end"]
            ),
            None,
        )
        decks = _first(sp, name="write_decks", task=task)
        user = (outputs["start"] - inputs["end"]) if inputs and outputs else None
        tasks[task] = {
            "start_s": rel(outer["start"]),
            "wall_s": _dur(outer),
            "cached": dispatch is None,
            "ray_init_s": _dur(ray_init),
            "inputs_to_python_s": _dur(inputs),
            "user_code_s": round(user, 2) if user is not None else None,
            "outputs_to_literals_s": _dur(outputs),
            "write_decks_s": _dur(decks),
            # literal translation + cache look-up/write around dispatch, and pre_execute minus ray.init
            "flyte_other_s": round(
                _dur(outer) - _dur(inputs) - _dur(outputs) - _dur(decks) - (user or 0) - _dur(ray_init), 2
            ),
        }

    # Phases by task role (names may change; the roles do not): Ray tasks are those that start or
    # use Ray, the bridge is the task that commits; everything before the first Ray task is checks
    # and data; anything else is "other tasks".
    def role(name: str) -> str:
        if "tune" in name:
            return "tune"
        if "train" in name:
            return "train"
        if "commit" in name:
            return "bridge"
        return (
            "checks_and_data"
            if tasks[name]["start_s"]
            <= min((t["start_s"] for n, t in tasks.items() if "tune" in n or "train" in n), default=float("inf"))
            else "other_tasks"
        )

    # A task run inside another one (a dynamic task's sub-task, e.g. tune_on_cluster -> tune_hyperparameters)
    # is part of its parent's wall: phases count the outermost tasks only.
    outer_of = {task: _first(sp, name="task", task=task) for task in tasks}
    for task, o in outer_of.items():
        parent = next(
            (p for p, q in outer_of.items() if p != task and q["start"] <= o["start"] and o["end"] <= q["end"]), None
        )
        tasks[task]["nested_in"] = parent
    top = {name: t for name, t in tasks.items() if not t["nested_in"]}
    ray_init_s = sum(t["ray_init_s"] for t in top.values())
    first_task = min((s["start"] for s in sp if s["name"] == "task"), default=None)
    phases = {
        "python_and_imports": rel(wf["start"]) if wf else None,
        "checks_and_data": 0.0,
        "ray_start": round(ray_init_s, 2),
        "tune": 0.0,
        "train": 0.0,
        "bridge": 0.0,
        "other_tasks": 0.0,
    }
    for name, t in top.items():
        phases[role(name)] = round(phases[role(name)] + t["wall_s"] - t["ray_init_s"], 2)
    phases["exit_and_teardown"] = round(t_end - wf["end"], 2) if wf else None  # outputs printed, Ray shut down at exit
    if wf:
        in_tasks = sum(t["wall_s"] for t in top.values())
        phases["workflow_glue"] = round((wf["end"] - wf["start"]) - in_tasks, 2)  # between tasks: promises, bindings
    task_roles = {name: role(name) for name in tasks}
    spawned: dict[str, dict] = {}
    for m in ev("spawn"):
        cmd = m.get("cmd") or []
        key = " ".join([Path(cmd[0]).name if cmd else "?", *cmd[1:3]])
        entry = spawned.setdefault(key, {"count": 0, "first_at_s": rel(m["t"]), "caller": m.get("caller")})
        entry["count"] += 1
    return {
        "phases_s": phases,
        "task_roles": task_roles,
        "driver_spawned": spawned,  # child processes the workflow's own process started, and from where
        "tasks": tasks,
        "startup": {
            "python_and_bench_import_s": rel(launcher[0]["t"]) if launcher else None,
            "to_workflow_start_s": rel(wf["start"]) if wf else None,
            "to_first_task_s": rel(first_task),
        },
        "exit": {
            "after_workflow_to_atexit_s": round(exit_mark[-1]["t"] - wf["end"], 2) if wf and exit_mark else None,
            "atexit_to_process_end_s": round(t_end - exit_mark[-1]["t"], 2) if exit_mark else None,
        },
        "tune": analyze_tune(sp, marks, rel),
        "train": analyze_train(sp, marks, rel),
        "train_parts": train_parts(sp, marks),
        "imports": analyze_imports(sp, marks),
        "workers": analyze_workers(
            sp,
            marks,
            {
                phase: (f["start"], f["end"])
                for phase, name in (("tune", "tune_fit"), ("train", "train_fit"))
                if (f := _first(sp, name=name))
            },
        ),
        "bridge": analyze_bridge(sp, next((t for n, t in tasks.items() if task_roles[n] == "bridge"), {}), rel),
    }


def analyze_tune(sp, marks, rel) -> dict:
    fit = _first(sp, name="tune_fit")
    if not fit:
        return {}
    starts = [m for m in marks if m["ev"] == "trial_start"]
    results = [m for m in marks if m["ev"] == "trial_result"]
    ends = [m for m in marks if m["ev"] == "trial_end"]
    first_result = {}
    for m in results:
        first_result.setdefault(m["trial"], m)
    trial_start = {m["trial"]: m["t"] for m in starts}
    # A trial's start-up: from Tune starting it to its first epoch's report, minus that epoch's own time.
    startup = [
        first_result[t]["t"] - trial_start[t] - (first_result[t].get("iter_s") or 0)
        for t in first_result
        if t in trial_start
    ]
    iter_s = [m.get("iter_s") or 0 for m in results]
    return {
        "fit_s": _dur(fit),
        "trials": len(starts),
        "epochs_reported": len(results),
        "errors": sum(1 for m in ends if m.get("error")),
        "setup_before_first_trial_s": round(starts[0]["t"] - fit["start"], 2) if starts else None,
        "first_trial_start_to_first_result_s": round(results[0]["t"] - starts[0]["t"], 2)
        if starts and results
        else None,
        "trial_startup_s_mean": round(sum(startup) / len(startup), 2) if startup else None,
        "trial_startup_s_sum": round(sum(startup), 2),
        "epoch_s_sum": round(sum(iter_s), 2),  # Tune's time_this_iter_s: compute (train + eval) as trials saw it
        "tail_after_last_trial_s": round(fit["end"] - ends[-1]["t"], 2) if ends else None,
        "fit_start_s": rel(fit["start"]),
        "fit_end_s": rel(fit["end"]),
    }


def analyze_train(sp, marks, rel) -> dict:
    fit = _first(sp, name="train_fit")
    if not fit:
        return {}
    reports = [m for m in marks if m["ev"] == "train_report" and fit["start"] <= m["t"] <= fit["end"]]
    gaps = [round(b["t"] - a["t"], 2) for a, b in zip(reports, reports[1:])]
    return {
        "fit_s": _dur(fit),
        "epochs_reported": len(reports),
        "fit_start_to_first_report_s": round(reports[0]["t"] - fit["start"], 2) if reports else None,
        "between_reports_s": gaps,
        "last_report_to_fit_end_s": round(fit["end"] - reports[-1]["t"], 2) if reports else None,
        "fit_start_s": rel(fit["start"]),
        "fit_end_s": rel(fit["end"]),
    }


def train_parts(sp: list[dict], marks: list[dict]) -> dict:
    """The train task's time that is not computing, part by part, from the marks.

    Per worker (means over the workers): the worker group's start (TorchTrainer.fit -> worker process
    born), imports in the worker (born -> its last heavy import before DDP init), waiting for the group
    (-> init_process_group), DDP init (init_process_group + prepare_model), then to the first epoch
    (data from the object store, the loaders' copies, DVCLive). Per epoch: rank 0's checkpoint write
    (`_report_checkpoint`: torch.save, the DVCLive copy and `ray.train.report` with the checkpoint,
    persisting it to storage, and the barrier with the other ranks) beside a plain report of the other
    ranks; the controller's polling (the last rank's report returned -> the controller's callback saw
    it). Then the group's teardown (last report -> fit end) and in the driver the part of run_train
    around fit (ray.put of the data and the trainer before it, the result copied out after it).
    """
    fit = _first(sp, name="train_fit")
    if not fit:
        return {}
    inside = lambda s: fit["start"] <= s["start"] <= fit["end"]  # noqa: E731
    created = {m["pid"]: m.get("created") for m in marks if m["ev"] == "process"}
    worker_pids = sorted({s["_pid"] for s in sp if s["name"] == "train_epoch" and inside(s)})

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return round(sum(xs) / len(xs), 3) if xs else None

    rows = []
    for pid in worker_pids:
        mine = [s for s in sp if s["_pid"] == pid]
        born = max(created.get(pid) or fit["start"], fit["start"])
        ipg = next((s for s in mine if s["name"] == "init_process_group"), None)
        prep = next((s for s in mine if s["name"] == "prepare_model"), None)
        first_epoch = min(s["start"] for s in mine if s["name"] == "train_epoch")
        ddp_start = ipg["start"] if ipg else (prep["start"] if prep else first_epoch)
        imports = [s for s in mine if s["name"].startswith("import_") and s["end"] <= ddp_start]
        imports_end = max((s["end"] for s in imports), default=born)
        ddp_end = prep["end"] if prep else (ipg["end"] if ipg else ddp_start)
        build = next((s for s in mine if s["name"] == "build" and ddp_start <= s["start"] <= ddp_end), None)
        rows.append(
            {
                "pid": pid,
                "worker_group_start_s": round(born - fit["start"], 3),
                "imports_s": round(max(imports_end - born, 0), 3),
                "wait_for_group_s": round(max(ddp_start - imports_end, 0), 3),
                # init_process_group -> prepare_model's end: the process group, the model and optimizer built
                # (the first build in a process pays torch's lazy imports), the DDP wrap
                "ddp_init_s": round(ddp_end - ddp_start, 3),
                "init_process_group_s": _dur(ipg) if ipg else None,
                "first_build_s": _dur(build) if build else None,
                "prepare_model_s": _dur(prep) if prep else None,
                "ddp_init_to_first_epoch_s": round(first_epoch - ddp_end, 3),
            }
        )
    ckpt = [s for s in sp if s["name"] == "report_checkpoint" and inside(s)]
    ckpt_pids = {s["_pid"] for s in ckpt}
    plain_reports = [
        s
        for s in sp
        if s["name"] == "train_report_call" and inside(s) and s["_pid"] in worker_pids and s["_pid"] not in ckpt_pids
    ]
    # the k-th report of every rank is one controller round; it sees it when the last rank's report has returned
    calls = {
        pid: sorted(
            (s for s in sp if s["name"] == "train_report_call" and s["_pid"] == pid and inside(s)),
            key=lambda s: s["start"],
        )
        for pid in worker_pids
    }
    seen = sorted(m["t"] for m in marks if m["ev"] == "train_report" and fit["start"] <= m["t"] <= fit["end"])
    polling = []
    for k, t_seen in enumerate(seen):
        ends = [c[k]["end"] for c in calls.values() if len(c) > k]
        if len(ends) == len(calls) and ends:
            polling.append(round(t_seen - max(ends), 3))
    run = _first(sp, name="run_train")
    epochs = [s for s in sp if s["name"] == "train_epoch" and inside(s)]
    last_report = seen[-1] if seen else None
    return {
        "workers": len(worker_pids),
        "per_worker": rows,
        "worker_group_start_s": mean(r["worker_group_start_s"] for r in rows),
        "worker_imports_s": mean(r["imports_s"] for r in rows),
        "wait_for_group_s": mean(r["wait_for_group_s"] for r in rows),
        "ddp_init_s": mean(r["ddp_init_s"] for r in rows),
        "of_which_first_build_s": mean(r["first_build_s"] for r in rows),
        "of_which_init_process_group_s": mean(r["init_process_group_s"] for r in rows),
        "of_which_prepare_model_s": mean(r["prepare_model_s"] for r in rows),
        "ddp_init_to_first_epoch_s": mean(r["ddp_init_to_first_epoch_s"] for r in rows),
        "fit_start_to_first_epoch_s": round(min(s["start"] for s in epochs) - fit["start"], 3) if epochs else None,
        "checkpoint_reports": len(ckpt),
        "checkpoint_write_s_mean": mean(_dur(s) for s in ckpt),
        "checkpoint_write_s_sum": round(sum(_dur(s) for s in ckpt), 3),
        "plain_report_s_mean": mean(_dur(s) for s in plain_reports),
        "controller_polling_s_mean": mean(polling),
        "controller_polling_s_sum": round(sum(polling), 3),
        "controller_polling_s": polling,
        "last_report_to_fit_end_s": round(fit["end"] - last_report, 3) if last_report else None,
        "run_train_before_fit_s": round(fit["start"] - run["start"], 3) if run else None,
        "result_copy_out_s": round(run["end"] - fit["end"], 3) if run else None,
        "fit_s": _dur(fit),
        "epoch_compute_s_sum_rank_mean": round(sum(_dur(s) for s in epochs) / max(len(worker_pids), 1), 3),
    }


def analyze_imports(sp: list[dict], marks: list[dict]) -> dict:
    """Heavy imports: in the driver (module -> seconds) and how often each is paid across all processes."""
    driver = next((m["pid"] for m in marks if m["ev"] == "launcher_start"), None)
    imports = [s for s in sp if s["name"].startswith("import_")]
    in_driver = {s["name"][7:]: _dur(s) for s in imports if s["_pid"] == driver}
    everywhere: dict[str, dict] = {}
    for s in imports:
        e = everywhere.setdefault(s["name"][7:], {"processes": 0, "total_s": 0.0})
        e["processes"] += 1
        e["total_s"] = round(e["total_s"] + _dur(s), 2)
    return {"driver_s": in_driver, "all_processes": everywhere}


def analyze_workers(sp: list[dict], marks: list[dict], windows: dict[str, tuple[float, float]]) -> dict:
    """Inside the Ray worker processes (marks from bench/worker_hooks/sitecustomize.py).

    For the tune phase and the train phase: which processes computed, how long from the phase's
    start (or the process's birth, if later) to its first epoch, torch import, DDP set-up, and how
    much of the available worker time went into train_epoch + evaluate.
    """
    created = {m["pid"]: m for m in marks if m["ev"] == "process"}
    out = {}
    for phase, (start, end) in windows.items():
        fit = {"start": start, "end": end}
        inside = [s for s in sp if fit["start"] <= s["start"] <= fit["end"] and s.get("_pid") is not None]
        pids = sorted({s["_pid"] for s in inside if s["name"] == "train_epoch"})
        procs, compute, startup, turnover = [], 0.0, [], 0.0
        for pid in pids:
            mine = [s for s in inside if s["_pid"] == pid]
            epochs = [s for s in mine if s["name"] in ("train_epoch", "evaluate")]
            busy = sum(_dur(s) for s in epochs)
            compute += busy
            born = created.get(pid, {}).get("created", fit["start"])
            begin = max(born, fit["start"])
            first_epoch = min(s["start"] for s in mine if s["name"] == "train_epoch")
            torch_imp = next((s for s in sp if s["name"] == "import_torch" and s.get("_pid") == pid), None)
            builds = sorted(s["start"] for s in mine if s["name"] == "build")
            ends = sorted(s["end"] for s in mine if s["name"] == "evaluate")
            # trial turnover in a reused actor: from a trial's last evaluation to the next trial's build
            gaps = [b - max((e for e in ends if e <= b), default=b) for b in builds[1:]]
            turnover += sum(gaps)
            startup.append(first_epoch - begin)
            row = {
                "pid": pid,
                "born_s_after_fit_start": round(born - fit["start"], 2),
                "torch_import_s": _dur(torch_imp) if torch_imp and torch_imp["start"] >= fit["start"] - 60 else None,
                "to_first_epoch_s": round(first_epoch - begin, 2),
                "builds": len(builds),
                "epochs": sum(1 for s in mine if s["name"] == "train_epoch"),
                "compute_s": round(busy, 2),
                "trial_turnover_s": round(sum(gaps), 2),
                "last_epoch_to_fit_end_s": round(fit["end"] - max(ends), 2) if ends else None,
            }
            for name in ("init_process_group", "prepare_model"):
                span = next((s for s in mine if s["name"] == name), None)
                if span:
                    row[f"{name}_s"] = _dur(span)
                    row[f"{name}_at_s"] = round(span["start"] - fit["start"], 2)
            procs.append(row)
        slots = max(len(pids), 1) if phase == "train" else None
        out[phase] = {
            "processes": procs,
            "compute_s": round(compute, 2),
            "fit_s": _dur(fit),
            "startup_to_first_epoch_s_mean": round(sum(startup) / len(startup), 2) if startup else None,
            "trial_turnover_s_sum": round(turnover, 2),
            "note": "compute = train_epoch + evaluate inside the workers; the rest of each worker's time in fit is start-up, waiting and teardown",
        }
        if slots:
            out[phase]["worker_utilization"] = round(compute / (slots * _dur(fit)), 3) if _dur(fit) else None
    return out


def analyze_bridge(sp, task: dict, rel) -> dict:
    if not task:
        return {}
    start = task["start_s"]
    inside = [
        s for s in sp if s["name"] in ("dvc_commit", "dvc_exp_save", "dvc_push", "git") and rel(s["start"]) >= start
    ]
    git_by_cmd: dict[str, float] = {}
    for s in inside:
        if s["name"] == "git":
            git_by_cmd[s.get("cmd", "?")] = round(git_by_cmd.get(s.get("cmd", "?"), 0) + _dur(s), 2)
    return {
        "task_wall_s": task["wall_s"],
        "dvc_commit_s": round(sum(_dur(s) for s in inside if s["name"] == "dvc_commit"), 2),
        "dvc_exp_save_s": round(sum(_dur(s) for s in inside if s["name"] == "dvc_exp_save"), 2),
        "dvc_push_s": round(sum(_dur(s) for s in inside if s["name"] == "dvc_push"), 2),
        "git_s_by_cmd": git_by_cmd,
    }


# ---------------------------------------------------------------- the experiment the run made


SELECT = "accuracy"  # the digits problem's selecting metric: scored on validation per epoch, on test once


def read_experiment(target: Path, label: str) -> dict:
    """Scores, trials and per-epoch training figures from the experiment the run committed.

    `accuracy` is the test score (results/run.json `test`, else metrics.json `test.accuracy`), the
    one the gate reads; `val_accuracy` is the final epoch's validation score.
    """

    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()

    refs = git("for-each-ref", "--format=%(refname)", "refs/exps", cwd=target).splitlines()
    if not refs:
        return {}
    ref = refs[-1]

    def show(path: str) -> str:
        try:
            return git("show", f"{ref}:{path}", cwd=target)
        except subprocess.CalledProcessError:
            return ""

    trials_csv = show("results/tune/trials.csv")
    trials_path = E.OUT_DIR / f"e2e-{label}-trials.csv"
    trials_path.write_text(trials_csv + "\n")
    metrics = json.loads(show("results/dvclive/metrics.json") or "{}")
    run_info = json.loads(show("results/run.json") or "{}")
    params = show("params.yaml")
    best = show("results/tune/best_params.yaml")

    def tsv(name: str) -> list[float]:
        lines = show(f"results/dvclive/plots/metrics/{name}.tsv").splitlines()[1:]
        return [float(line.split("\t")[-1]) for line in lines if line.strip()]

    def score(split: str):
        recorded = (run_info.get(split) or {}).get(f"{split}/{SELECT}")
        return recorded if recorded is not None else (metrics.get(split) or {}).get(SELECT)

    return {
        "ref": ref,
        "accuracy": score("test"),
        "val_accuracy": score("val"),
        "tune_best_val_accuracy": (run_info.get("tune") or {}).get("best_score"),
        "global_batch_size": run_info.get("global_batch_size"),
        "metrics": metrics,
        "run_info": run_info,
        "trials_csv": str(trials_path),
        "params_yaml": params,
        "best_params_yaml": best,
        "epoch_time_s": tsv("epoch_time_s"),
        "samples_per_s": tsv("samples_per_s"),
        "val_accuracy_per_epoch": tsv(f"val/{SELECT}"),
    }


def main() -> None:
    """python -m bench.e2e default|tutorial [TAG]"""
    label = sys.argv[1] if len(sys.argv) > 1 else "default"
    tag = sys.argv[2] if len(sys.argv) > 2 else ""
    size = dict(zip(("default", "tutorial"), E.sizes()))[label]
    name = f"{label}-{tag}" if tag else label
    result = run_workflow(size, name)
    path = E.write_json(f"e2e-{name}", result)
    print(
        json.dumps(
            {
                "wall_s": result["wall_s"],
                "returncode": result["returncode"],
                "phases_s": result["phases_s"],
                "peak_pss_gib": result["pss"]["peak_pss_gib"],
                "cpu_s_total": result["pss"]["cpu_s_total"],
                "accuracy": result["experiment"].get("accuracy"),
                "val_accuracy": result["experiment"].get("val_accuracy"),
                "results": str(path),
            }
        )
    )


if __name__ == "__main__":
    main()
