"""The driver of `make bench`: every benchmark in order, a summary, and one JSON line at the end.

    python -m bench              # full sizes (~10-15 min on 2 idle cores)
    BENCH_QUICK=1 python -m bench   # tiny sizes, to check the harness (~1-3 min)

Each benchmark runs in its own process (its own Ray cluster, imports and memory) and writes
bench/out/<name>.json; this driver times each from the outside, then writes
bench/out/results.json and prints the headline figures. Benchmarks print figures; nothing here
passes or fails on a figure.

Sections: e2e-default (our workflow at its default size, phases, PSS) -> pure-default (the
same trials and epochs in one plain process) -> ddp_split-default (plain DDP epochs with the
global batch split over the workers vs the tuned batch on every worker) -> bridge
(record_experiment vs raw upload) ->
e2e-tutorial (50 trials ASHA, 10 epochs on 2 workers) -> rebuilt_peer (the same work orchestrated
the DVC + Ray tutorial's way, rebuilt on this project's model, data and search: `dvc exp run` of
Ray scripts) -> pure-tutorial. In quick mode the tutorial-size run is the quick end-to-end run
itself, and the cost curves (bench/curves.py) run one tiny point; at full size they are their own
command (`python -m bench.curves`, ~10-15 min), kept out of `make bench`'s 20 minutes.

The JSON line: the issue-15 ratios (RATIOS), each against the same work done plainly in the same
run, then the absolute figures they come from, then the older headline figures (HEADLINE).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time

from bench import env as E

RATIOS = (
    "overhead_ratio_smoke",
    "overhead_ratio_tutorial",
    "tune_task_ratio",
    "train_task_ratio",
    "ddp_throughput_ratio",
    "bridge_throughput_ratio",
    "bridge_fixed_s",
    "pss_ratio_vs_rebuilt_peer",
)
# the targets for RATIOS: (<= or >=, bound)
TARGETS = {
    "overhead_ratio_smoke": ("<=", 1.5),
    "overhead_ratio_tutorial": ("<=", 1.15),
    "tune_task_ratio": ("<=", 1.5),
    "train_task_ratio": ("<=", 1.5),
    "ddp_throughput_ratio": (">=", 0.9),
    "bridge_throughput_ratio": (">=", 0.95),
    "bridge_fixed_s": ("<=", 1.0),
    "pss_ratio_vs_rebuilt_peer": ("<=", 1.0),
}
HEADLINE = (
    "overhead_s",
    "wall_ratio_vs_rebuilt_peer",
    "tutorial_size_wall_s",
    "tutorial_size_accuracy",
    "train_throughput_ratio",
    "peak_pss_gib",
)


def section(module: str, *args: str, timeout: int = 900, env: dict | None = None) -> dict:
    """Run `python -m bench.<module> args` and time it from outside; its output goes to a log.

    The section runs in its own session; on timeout its whole process group (its Ray cluster
    included) is killed, and the section is recorded as failed.
    """
    E.OUT_DIR.mkdir(parents=True, exist_ok=True)
    log = E.OUT_DIR / f"{'-'.join([module, *args])}.out"
    print(f"[bench] {module} {' '.join(args)} ...", flush=True)
    t = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"bench.{module}", *args],
            cwd=E.PROJECT_ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = None
    wall = round(time.time() - t, 2)
    last = log.read_text().strip().splitlines()[-1:] or [""]
    print(f"[bench]   {wall:.1f}s rc={returncode} {last[0][:300]}", flush=True)
    return {"module": module, "args": list(args), "returncode": returncode, "wall_s": wall, "log": str(log)}


def _ratio(a, b):
    return round(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def median(xs):
    return statistics.median(xs) if xs else None


def steady(xs):
    return xs[1:] or xs  # epoch 1 includes warm-up


def throughput(e2e: dict, pure: dict, ddp: dict | None = None) -> dict:
    """Ray Train (the workflow's own epochs) vs one plain process (the replay), same model, data and global batch.

    Since 2026-12-01 the tuned batch is the global one: each of the N Ray Train workers takes
    batch / N a step, and the plain process, alone, the whole batch. `batch_split` puts what
    that split costs beside it (bench/ddp_split.py: plain DDP, split vs the tuned batch per worker).
    """
    exp, plain = e2e["experiment"], pure["train"]
    ray_sps = median(steady(exp.get("samples_per_s", [])))
    ray_sps = round(ray_sps, 1) if ray_sps else ray_sps
    one_thread = plain["steady_samples_per_s"]
    same_threads = plain["same_threads_steady_samples_per_s"]
    best_plain = max(one_thread, same_threads)
    workers = e2e["size"]["train"].get("num_workers", 2)
    global_batch = exp.get("global_batch_size") or plain["batch_size"]
    out = {
        "ray_train_workers": workers,
        "global_batch_size": global_batch,
        "batch_size_per_worker": global_batch // workers if global_batch else None,
        "plain_batch_size": plain["batch_size"],
        "ray_train_steady_samples_per_s": ray_sps,
        "ray_train_epoch_time_s": exp.get("epoch_time_s"),
        "plain_1_thread_steady_samples_per_s": one_thread,
        "plain_same_threads": plain["same_threads"],
        "plain_same_threads_steady_samples_per_s": same_threads,
        "plain_epoch_train_s": plain["epoch_train_s"],
        "ratio": round(ray_sps / best_plain, 3) if ray_sps and best_plain else None,
        # DDP on N workers x 1 thread over one plain process with N threads, same global batch
        "ddp_throughput_ratio": round(ray_sps / same_threads, 3) if ray_sps and same_threads else None,
        "note": "steady state = epochs 2..N (median); `ratio`: over the faster of 1 thread and N threads (N = workers); "
        "`ddp_throughput_ratio`: over N threads; same global batch (the workers split it, the plain process takes it whole)",
    }
    if ddp and ddp.get("split"):
        split, full = ddp["split"], ddp["full_per_worker"]
        out["batch_split"] = {
            "what": f"DDP epoch throughput, {ddp['workers']} workers: the global batch {ddp['tuned_batch_size']} split "
            f"({split['batch_per_worker']} per worker, what training does) vs the old way "
            f"({full['batch_per_worker']} per worker, a global batch of {full['global_batch']})",
            "ray_train_split_steady_samples_per_s": ray_sps,
            "plain_ddp_split_steady_samples_per_s": split["steady_samples_per_s"],
            "plain_ddp_full_per_worker_steady_samples_per_s": full["steady_samples_per_s"],
            "plain_ddp_split_over_full": ddp["split_over_full_throughput"],
            "allreduces_per_epoch": {
                "split": split["allreduces_per_epoch"],
                "full_per_worker": full["allreduces_per_epoch"],
            },
            "plain_ddp_epoch_s": {"split": split["epoch_s"], "full_per_worker": full["epoch_s"]},
            "note": ddp.get("note"),
        }
    return out


def time_budget(e2e: dict, pure: dict, wall_pure: float) -> list[dict]:
    """Where the workflow's wall time goes, phase by phase, against the same work in the plain process."""
    ph, tasks, tune, train = e2e["phases_s"], e2e["tasks"], e2e.get("tune", {}), e2e.get("train", {})
    epochs = e2e["experiment"].get("epoch_time_s") or []
    alive = e2e["pss"].get("alive_by_kind_s", {})
    fit0 = train.get("fit_start_s") or 0

    def since_fit(t):
        return round(t - fit0, 2) if t is not None else None

    workers = e2e.get("workers", {})
    train_procs = workers.get("train", {}).get("processes", [])
    tune_procs = workers.get("tune", {}).get("processes", [])

    def mean(key, procs):
        xs = [p[key] for p in procs if p.get(key) is not None]
        return round(sum(xs) / len(xs), 2) if xs else None

    train_timeline = {
        "TrainController process seen": since_fit(alive.get("ray::TrainController", [None])[0]),
        "worker processes born": mean("born_s_after_fit_start", train_procs),
        "torch import in each worker (s)": mean("torch_import_s", train_procs),
        "init_process_group starts": mean("init_process_group_at_s", train_procs),
        "init_process_group (s)": mean("init_process_group_s", train_procs),
        "prepare_model (DDP wrap) starts": mean("prepare_model_at_s", train_procs),
        "first train_epoch starts": round(
            mean("born_s_after_fit_start", train_procs) + mean("to_first_epoch_s", train_procs), 2
        )
        if train_procs
        else None,
        "first epoch reported": train.get("fit_start_to_first_report_s"),
        "compute inside workers (train_epoch + evaluate, sum over workers)": workers.get("train", {}).get("compute_s"),
        "worker utilization during fit": workers.get("train", {}).get("worker_utilization"),
        "last epoch end -> fit end": mean("last_epoch_to_fit_end_s", train_procs),
    }
    tune_workers = {
        "trial processes": len(tune_procs),
        "torch import in each (s)": mean("torch_import_s", tune_procs),
        "fit start (or birth) -> first train_epoch (s)": mean("to_first_epoch_s", tune_procs),
        "compute inside trials (train_epoch + evaluate, sum)": workers.get("tune", {}).get("compute_s"),
        "trial turnover in reused actors (sum, s)": workers.get("tune", {}).get("trial_turnover_s_sum"),
    }
    n_workers = e2e["size"]["train"].get("num_workers", 2)
    rows = [
        {
            "phase": "python + imports to workflow start",
            "workflow_s": ph.get("python_and_imports"),
            "pure_s": pure["interpreter_and_yaml_s"] + pure["torch_and_project_import_s"],
            "detail": "interpreter, flytekit, the workflow module (the plain process: interpreter + torch)",
        },
        {
            "phase": "checks + data tasks",
            "workflow_s": ph.get("checks_and_data"),
            "pure_s": pure["data_s"],
            "detail": {k: t.get("wall_s") for k, t in tasks.items() if e2e["task_roles"].get(k) == "checks_and_data"},
        },
        {
            "phase": "Ray start (ray.init)",
            "workflow_s": ph.get("ray_start"),
            "pure_s": 0.0,
            "detail": "local cluster: gcs, raylet, dashboard (minimal), prestarted workers",
        },
        {
            "phase": "tune task",
            "workflow_s": ph.get("tune"),
            "pure_s": pure["tune_s"],
            "detail": {
                "Flyte decks (pip list + pip freeze)": next(
                    (t.get("write_decks_s") for k, t in tasks.items() if e2e["task_roles"].get(k) == "tune"), None
                ),
                "Tuner.fit": tune.get("fit_s"),
                "before first trial (Tuner setup, data to object store)": tune.get("setup_before_first_trial_s"),
                "trial compute as Tune timed it (sum time_this_iter_s, incl. trial start-up in epoch 1)": tune.get(
                    "epoch_s_sum"
                ),
                "trials / epochs reported": [tune.get("trials"), tune.get("epochs_reported")],
                "after last trial (Tune teardown)": tune.get("tail_after_last_trial_s"),
                "inside the trial processes": tune_workers,
                "task minus Tuner.fit (data load, csv, plot, Flyte I/O)": round(
                    (ph.get("tune") or 0) - (tune.get("fit_s") or 0), 2
                ),
            },
        },
        {
            "phase": "train task",
            "workflow_s": ph.get("train"),
            "pure_s": pure["train_s"],
            "detail": {
                "TorchTrainer.fit": train.get("fit_s"),
                "fit start -> first epoch reported": train.get("fit_start_to_first_report_s"),
                "of which epoch 1 train time (rank 0)": round(epochs[0], 2) if epochs else None,
                "=> worker group start + DDP setup + data to workers + eval/checkpoint": round(
                    (train.get("fit_start_to_first_report_s") or 0) - (epochs[0] if epochs else 0), 2
                ),
                "between epoch reports (train + eval + checkpoint)": train.get("between_reports_s"),
                "last report -> fit end (worker group teardown)": train.get("last_report_to_fit_end_s"),
                "task minus TorchTrainer.fit (data load, ray.put, copy outputs, Flyte I/O)": round(
                    (ph.get("train") or 0) - (train.get("fit_s") or 0), 2
                ),
                "workers": n_workers,
                "Flyte decks (pip list + pip freeze)": next(
                    (t.get("write_decks_s") for k, t in tasks.items() if e2e["task_roles"].get(k) == "train"), None
                ),
                "timeline after TorchTrainer.fit start (s)": train_timeline,
                "overhead parts (results.json train_overhead_parts)": e2e.get("train_parts"),
            },
        },
        {
            "phase": "bridge (commit_experiment)",
            "workflow_s": ph.get("bridge"),
            "pure_s": 0.0,
            "detail": {
                **(e2e.get("bridge") or {}),
                "Flyte decks (pip list + pip freeze)": next(
                    (t.get("write_decks_s") for k, t in tasks.items() if e2e["task_roles"].get(k) == "bridge"), None
                ),
            },
        },
        {
            "phase": "exit (outputs printed, Ray shutdown)",
            "workflow_s": ph.get("exit_and_teardown"),
            "pure_s": 0.0,
            "detail": e2e.get("exit"),
        },
        {
            "phase": "other tasks",
            "workflow_s": ph.get("other_tasks"),
            "pure_s": 0.0,
            "detail": {k: t.get("wall_s") for k, t in tasks.items() if e2e["task_roles"].get(k) == "other_tasks"},
        },
        {"phase": "between tasks (Flyte glue)", "workflow_s": ph.get("workflow_glue"), "pure_s": 0.0, "detail": ""},
    ]
    for r in rows:
        r["overhead_s"] = round((r["workflow_s"] or 0) - (r["pure_s"] or 0), 2)
    rows.append(
        {
            "phase": "TOTAL (wall, measured outside)",
            "workflow_s": e2e["wall_s"],
            "pure_s": wall_pure,
            "overhead_s": round(e2e["wall_s"] - wall_pure, 2),
            "detail": "",
        }
    )
    return rows


def peer_vs_ours(ours: dict, peer: dict) -> dict:
    """The same tune + train work, ours and the rebuilt peer's, side by side: where each spends its wall time."""
    if not ours or not peer:
        return {}
    sp = peer.get("script_phases_s", {})
    ow, pw = ours.get("workers", {}), peer.get("workers", {})

    def proc_mean(w, phase, key):
        xs = [p[key] for p in w.get(phase, {}).get("processes", []) if p.get(key) is not None]
        return round(sum(xs) / len(xs), 2) if xs else None

    return {
        "wall_s": {"ours": ours.get("wall_s"), "rebuilt_peer": peer.get("wall_s")},
        "test_accuracy": {"ours": ours.get("experiment", {}).get("accuracy"), "rebuilt_peer": peer.get("accuracy")},
        "val_accuracy": {
            "ours": ours.get("experiment", {}).get("val_accuracy"),
            "rebuilt_peer": peer.get("val_accuracy"),
        },
        "peak_pss_gib": {
            "ours": ours.get("pss", {}).get("peak_pss_gib"),
            "rebuilt_peer": peer.get("pss", {}).get("peak_pss_gib"),
        },
        # CPU-seconds of each whole process tree: far less sensitive to other load on the machine than wall time
        "cpu_s_total": {
            "ours": ours.get("pss", {}).get("cpu_s_total"),
            "rebuilt_peer": peer.get("pss", {}).get("cpu_s_total"),
        },
        "ray_init_s": {
            "ours": ours["phases_s"].get("ray_start"),
            "rebuilt_peer": round(sum(v.get("ray_init_s") or 0 for v in sp.values()), 2),
        },
        "script/driver start-up before ray.init_s": {
            "ours": ours["phases_s"].get("python_and_imports"),
            "rebuilt_peer": round(sum(v.get("start_to_ray_init_s") or 0 for v in sp.values()), 2),
        },
        "tune_fit_s": {"ours": ours.get("tune", {}).get("fit_s"), "rebuilt_peer": sp.get("tune", {}).get("fit_s")},
        "train_fit_s": {"ours": ours.get("train", {}).get("fit_s"), "rebuilt_peer": sp.get("train", {}).get("fit_s")},
        "after fits (exit, teardown)_s": {
            "ours": ours["phases_s"].get("exit_and_teardown"),
            "rebuilt_peer": round(sum(v.get("fit_end_to_exit_s") or 0 for v in sp.values()), 2),
        },
        "tune compute inside trials_s": {
            "ours": ow.get("tune", {}).get("compute_s"),
            "rebuilt_peer": pw.get("tune", {}).get("compute_s"),
        },
        "tune trial processes": {
            "ours": len(ow.get("tune", {}).get("processes", [])),
            "rebuilt_peer": len(pw.get("tune", {}).get("processes", [])),
        },
        "torch import per trial process_s": {
            "ours": proc_mean(ow, "tune", "torch_import_s"),
            "rebuilt_peer": proc_mean(pw, "tune", "torch_import_s"),
        },
        "train: fit start -> first epoch_s": {
            "ours": (proc_mean(ow, "train", "born_s_after_fit_start") or 0)
            + (proc_mean(ow, "train", "to_first_epoch_s") or 0),
            "rebuilt_peer": (proc_mean(pw, "train", "born_s_after_fit_start") or 0)
            + (proc_mean(pw, "train", "to_first_epoch_s") or 0),
        },
        "train compute inside workers_s": {
            "ours": ow.get("train", {}).get("compute_s"),
            "rebuilt_peer": pw.get("train", {}).get("compute_s"),
        },
        "bridge / DVC bookkeeping_s": {
            "ours": ours["phases_s"].get("bridge"),
            "rebuilt_peer": round(
                (peer.get("wall_s") or 0) - sum(peer.get("stages_s", {}).get(k, 0) for k in ("tune", "train")), 2
            ),
        },
    }


def train_overhead_parts(e2e: dict, pure: dict) -> dict:
    """The train task's time beside its pure compute, part by part (bench/e2e.py `train_parts`)."""
    parts, ph = e2e.get("train_parts") or {}, e2e.get("phases_s", {})
    if not parts:
        return {}
    keys = (
        "worker_group_start_s",
        "worker_imports_s",
        "wait_for_group_s",
        "ddp_init_s",
        "ddp_init_to_first_epoch_s",
        "checkpoint_write_s_sum",
        "controller_polling_s_sum",
        "last_report_to_fit_end_s",
        "run_train_before_fit_s",
        "result_copy_out_s",
    )
    return {
        "train_task_s": ph.get("train"),
        "pure_train_s": pure.get("train_s"),
        "fit_s": parts.get("fit_s"),
        **{k: parts.get(k) for k in keys},
        "ddp_init_of_which_first_build_s": parts.get("of_which_first_build_s"),
        "checkpoint_write_s_mean": parts.get("checkpoint_write_s_mean"),
        "plain_report_s_mean": parts.get("plain_report_s_mean"),
        "controller_polling_s_mean": parts.get("controller_polling_s_mean"),
        "epoch_compute_s_per_worker": parts.get("epoch_compute_s_sum_rank_mean"),
        "task_minus_fit_s": round((ph.get("train") or 0) - (parts.get("fit_s") or 0), 2),
        "note": "per-worker parts are means over the workers; checkpoint_write = rank 0's _report_checkpoint (torch.save, "
        "DVCLive copy, ray.train.report with the checkpoint, incl. waiting for the other ranks); controller_polling = "
        "the last rank's report returned -> the controller's callback saw it",
    }


def meets(key: str, value) -> bool | None:
    if not isinstance(value, (int, float)):
        return None
    op, bound = TARGETS[key]
    return value <= bound if op == "<=" else value >= bound


def main() -> None:
    started = time.time()
    E.OUT_DIR.mkdir(parents=True, exist_ok=True)
    for old in E.OUT_DIR.glob("*.json"):
        old.unlink()
    results: dict = {"quick": E.QUICK, "load_before": E.machine_load(), "sections": []}
    run = lambda *a, **k: results["sections"].append(section(*a, **k)) or results["sections"][-1]  # noqa: E731

    run("e2e", "default")
    pure_default = run("pure", "default")
    run("ddp_split", "default", timeout=300)
    run("bridge_wire")
    pure_tutorial = None
    if E.QUICK:
        tutorial_label = "default"  # the quick run is the only size
    else:
        run("e2e", "tutorial", timeout=1200)
        tutorial_label = "tutorial"
    run("rebuilt_peer", "tutorial", timeout=1200)
    if E.QUICK:
        run("curves", timeout=600)  # one tiny point for every axis; the full curves are `python -m bench.curves`
    else:
        pure_tutorial = run("pure", "tutorial", timeout=900)
    run("searchers", timeout=600 if E.QUICK else 7200)  # random vs optuna on the same budget (bench/searchers.py)
    if not E.QUICK:  # its harness runs in the suite already (tests/tasks/test_streaming_memory.py, the 4x point)
        run("streaming", timeout=3600)  # the data axis: 0.1x-10x the object store (bench/streaming.py)
    results["load_after"] = E.machine_load()

    def load(name):
        try:
            return E.read_json(name)
        except FileNotFoundError:
            return {}

    e2e, pure, bridge, peer = load("e2e-default"), load("pure-default"), load("bridge"), load("rebuilt_peer")
    ddp = load("ddp_split-default")
    tut = load(f"e2e-{tutorial_label}")
    pure_tut = load("pure-tutorial") if pure_tutorial else pure
    results.update(
        {
            "e2e": e2e,
            "pure": pure,
            "ddp_split": ddp,
            "bridge": bridge,
            "rebuilt_peer": peer,
            "e2e_tutorial": tut if not E.QUICK else "same as e2e (quick)",
        }
    )
    results["rebuilt_peer_vs_ours"] = peer_vs_ours(tut, peer)
    if pure_tutorial:
        results["pure_tutorial"] = pure_tut
        results["pure_tutorial"]["process_wall_s_outside"] = pure_tutorial["wall_s"]
    curves = load("curves")
    if not curves and (E.PROJECT_ROOT / "bench" / "curves" / "curves.json").exists():
        curves = {
            "curves_json": str(E.PROJECT_ROOT / "bench" / "curves" / "curves.json"),
            "note": "from the last full `python -m bench.curves`",
        }
    results["curves"] = curves
    results["searchers"] = load("searchers")  # its own section of results.json; the JSON line's keys are unchanged
    results["streaming"] = load("streaming")  # likewise

    def baseline(section_row, doc):
        """The plain process's wall from outside, less the same-threads epochs it times after the replay."""
        if not section_row or not section_row.get("wall_s") or not doc:
            return None
        return round(section_row["wall_s"] - (doc.get("after_baseline_s") or 0), 2)

    pure_wall = baseline(pure_default, pure)
    pure_tut_wall = baseline(pure_tutorial, pure_tut) if pure_tutorial else pure_wall
    ph, ph_tut = e2e.get("phases_s", {}), tut.get("phases_s", {})
    try:
        results["time_budget"] = time_budget(e2e, pure, pure_wall)
    except (KeyError, TypeError):
        pass
    try:
        results["throughput"] = throughput(e2e, pure, ddp)
    except (KeyError, TypeError):
        results["throughput"] = {}
    results["train_overhead_parts"] = {"default": train_overhead_parts(e2e, pure)}
    if not E.QUICK:
        results["train_overhead_parts"]["tutorial"] = train_overhead_parts(tut, pure_tut if pure_tutorial else {})
    tp = results["throughput"]
    ok = lambda doc: doc.get("returncode") == 0  # noqa: E731
    ratios = {
        "overhead_ratio_smoke": _ratio(e2e.get("wall_s"), pure_wall) if ok(e2e) else None,
        "overhead_ratio_tutorial": _ratio(tut.get("wall_s"), pure_tut_wall) if ok(tut) else None,
        "tune_task_ratio": _ratio(ph.get("tune"), pure.get("tune_s")),
        "train_task_ratio": _ratio(ph.get("train"), pure.get("train_s")),
        "ddp_throughput_ratio": tp.get("ddp_throughput_ratio"),
        "bridge_throughput_ratio": bridge.get("bridge_throughput_ratio"),
        "bridge_fixed_s": bridge.get("bridge_fixed_s"),
        "pss_ratio_vs_rebuilt_peer": _ratio(
            tut.get("pss", {}).get("peak_pss_gib"), peer.get("pss", {}).get("peak_pss_gib")
        )
        if ok(tut) and ok(peer)
        else None,
    }
    ratios = {k: ratios.get(k) for k in RATIOS}
    context = {
        "smoke_wall_s": e2e.get("wall_s"),
        "smoke_pure_s": pure_wall,
        "tutorial_wall_s": tut.get("wall_s"),
        "tutorial_pure_s": pure_tut_wall,
        "tune_task_s": ph.get("tune"),
        "tune_pure_s": pure.get("tune_s"),
        "train_task_s": ph.get("train"),
        "train_pure_s": pure.get("train_s"),
        "ray_start_s": ph.get("ray_start"),
        "tune_task_ratio_tutorial": _ratio(ph_tut.get("tune"), pure_tut.get("tune_s")) if pure_tutorial else None,
        "train_task_ratio_tutorial": _ratio(ph_tut.get("train"), pure_tut.get("train_s")) if pure_tutorial else None,
        "ddp_samples_per_s": tp.get("ray_train_steady_samples_per_s"),
        "plain_same_threads_samples_per_s": tp.get("plain_same_threads_steady_samples_per_s"),
        "ddp_global_batch": tp.get("global_batch_size"),
        "bridge_mb_per_s": (bridge.get("fit") or {}).get("bridge_marginal_mb_per_s"),
        "raw_mb_per_s": (bridge.get("fit") or {}).get("raw_marginal_mb_per_s"),
        "peak_pss_gib_tutorial": tut.get("pss", {}).get("peak_pss_gib"),
        "rebuilt_peer_peak_pss_gib": peer.get("pss", {}).get("peak_pss_gib"),
        "rebuilt_peer_wall_s": peer.get("wall_s"),
    }
    headline = {
        "overhead_s": round(e2e["wall_s"] - pure_wall, 2) if e2e.get("wall_s") and pure_wall else None,
        "wall_ratio_vs_rebuilt_peer": _ratio(tut.get("wall_s"), peer.get("wall_s")) if ok(tut) and ok(peer) else None,
        "tutorial_size_wall_s": tut.get("wall_s"),
        "tutorial_size_accuracy": tut.get("experiment", {}).get("accuracy"),  # the test score (run.json test)
        "train_throughput_ratio": tp.get("ratio"),
        "peak_pss_gib": e2e.get("pss", {}).get("peak_pss_gib"),
    }
    extras = {
        "tutorial_size_val_accuracy": tut.get("experiment", {}).get("val_accuracy"),
        "rebuilt_peer_accuracy": peer.get("accuracy"),
        "rebuilt_peer_cpu_ratio": _ratio(tut.get("pss", {}).get("cpu_s_total"), peer.get("pss", {}).get("cpu_s_total")),
        "ddp_split_over_full_throughput": ddp.get("split_over_full_throughput"),
        "loadavg_before": results["load_before"]["loadavg_1_5_15"],
        "loadavg_after": results["load_after"]["loadavg_1_5_15"],
        "quick": E.QUICK,
        "bench_wall_s": round(time.time() - started, 1),
    }
    results["ratios"] = ratios
    results["targets"] = {
        k: {"target": f"{TARGETS[k][0]} {TARGETS[k][1]}", "measured": v, "met": meets(k, v)} for k, v in ratios.items()
    }
    results["context"] = context
    results["headline"] = headline
    results["extras"] = extras
    path = E.write_json("results", results)

    print(f"[bench] results: {path}")
    for row in results.get("time_budget", []):
        print(
            f"[bench]   {row['phase']:<40} workflow {row['workflow_s'] or 0:7.2f}s  pure {row['pure_s'] or 0:7.2f}s  overhead {row['overhead_s']:7.2f}s"
        )
    for k, t in results["targets"].items():
        print(
            f"[bench]   {k:<28} {t['measured']!s:>8}  target {t['target']:<7} {'met' if t['met'] else 'NOT met' if t['met'] is False else '-'}"
        )
    print(json.dumps({**ratios, **context, **headline, **extras}), flush=True)


if __name__ == "__main__":
    main()
