"""Cost curves: wall time and peak PSS as the work grows.

    python -m bench.curves          # full points (~15-25 min on 2 cores): bench/curves/*.png + curves.json
    python -m bench.curves data     # measure one axis again, keep the others' points from curves.json
    BENCH_QUICK=1 python -m bench.curves   # one tiny point for every axis, into bench/out/curves/

Axes (each point varies one thing from a base, everything else fixed):
* trials:  Ray Tune only, 4 / 16 / 64 trials of 1 epoch on the 5k digits;
* data:    tune (2 trials x 1 epoch) + train (2 workers x 1 epoch) on 5k / 50k / 500k samples;
* workers: Ray Train only, 1 / 2 DDP workers x 5 epochs on the 5k digits;
* epochs:  Ray Train only, 2 workers x 1 / 5 / 20 epochs on the 5k digits.

Each point is its own process (`python -m bench.curves point '<json>'`) with its own local Ray
cluster (tasks.ray_glue.local.init_local_ray: all the machine's CPUs, as a local `pyflyte run` starts it), running the
project's own Ray code (tasks.ray_glue.tune.run_tune, tasks.ray_glue.train.run_train) on the project's data
path (tasks.data.arrays.make_splits) - not pyflyte, so a point costs Ray's and the work's time, not
Flyte's, and the curves show how the Ray part scales. The PSS of the point's whole process tree
(driver, raylet with the object store, gcs, every trial / worker process) is sampled every 0.2 s.

Larger data is made deterministically from the 5000 embedded digits: copy k of the images is
shifted by its own (dy, dx) of -4..5 pixels (copy 0 unshifted; 100 copies for 500k), then split as usual.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import env as E

COMMITTED = E.PROJECT_ROOT / "bench" / "curves"  # the full curves' plots and figures, linked from bench/README.md
BASE = {"trials": 0, "tune_epochs": 1, "n": 5000, "workers": 2, "epochs": 0}
FULL_AXES = {
    "trials": [{**BASE, "trials": t} for t in (4, 16, 64)],
    "data": [{**BASE, "trials": 2, "epochs": 1, "n": n} for n in (5000, 50000, 500000)],
    "workers": [{**BASE, "workers": w, "epochs": 5} for w in (1, 2)],
    "epochs": [{**BASE, "epochs": e} for e in (1, 5, 20)],
}
# quick: one tiny point (tune 1 trial + train 1 worker, 1 epoch each, 1000 samples: two shifted copies
# of 500 digits) stands for every axis, so the whole harness runs in one Ray start
QUICK_POINT = {"trials": 1, "tune_epochs": 1, "n": 1000, "workers": 1, "epochs": 1, "base_n": 500}
QUICK_AXES = {axis: [QUICK_POINT] for axis in FULL_AXES}
X_OF = {"trials": "trials", "data": "n", "workers": "workers", "epochs": "epochs"}
# 100 distinct (dy, dx) shifts of -4..5 pixels, the smallest first, (0, 0) = the digits themselves
SHIFTS = sorted(((dy, dx) for dy in range(-4, 6) for dx in range(-4, 6)), key=lambda s: (abs(s[0]) + abs(s[1]), s))


def grown_digits(n: int, base_n: int = 0) -> dict:
    """n samples from the embedded digits: shifted copies (deterministic), the first n of them."""
    import numpy as np

    from tasks.problem import load_problem

    raw = load_problem("digits").load_default()
    x, y = raw["x"].reshape(-1, 28, 28), raw["y"]
    if base_n:
        x, y = x[:base_n], y[:base_n]
    copies = -(-n // len(x))
    if copies > len(SHIFTS):
        raise ValueError(f"{n} samples need {copies} copies of {len(x)} digits; {len(SHIFTS)} shifts are defined")
    xs, ys = [], []
    for dy, dx in SHIFTS[:copies]:
        xs.append(np.roll(x, (dy, dx), axis=(1, 2)))  # MNIST digits sit in a 20x20 box with a 4-pixel margin
        ys.append(y)
    return {"x": np.concatenate(xs)[:n], "y": np.concatenate(ys)[:n]}


def run_point(cfg: dict) -> dict:
    """One point, in this process: ray.init, data, Tuner.fit and/or TorchTrainer.fit; timings as JSON."""
    t0 = time.time()
    import ray

    from tasks.data.arrays import make_splits
    from tasks.problem import complete, load_problem
    from tasks.training.settings import TrainSettings, TuneSettings

    problem = load_problem("digits")
    out: dict = {"config": cfg, "imports_s": round(time.time() - t0, 2)}
    t = time.time()
    data = make_splits(grown_digits(cfg["n"], cfg.get("base_n", 0)), problem, seed=0)
    out["data_s"] = round(time.time() - t, 2)
    out["splits"] = data.sizes()
    out["data_gib"] = round(data.nbytes() / 1024**3, 3)
    t = time.time()
    out["ray_start_at"] = (
        t  # absolute: the peak PSS from here on is the Ray part's (the data made above is the bench's)
    )
    from tasks.flyte.clusters import init_local_ray  # the project's local start as a local pyflyte run's Ray task

    init_local_ray()
    out["ray_init_s"] = round(time.time() - t, 2)
    data = ray.put(data)  # as the Ray tasks do: one copy, in the object store; the driver keeps none
    storage = tempfile.mkdtemp(prefix="curve-")
    if cfg["trials"]:
        from tasks.ray_glue.tune import run_tune

        t = time.time()
        outcome = run_tune(
            data, "digits", TuneSettings(num_samples=cfg["trials"], max_epochs=cfg["tune_epochs"], seed=0), storage
        )
        out["tune_s"] = round(time.time() - t, 2)
        out["tune_best_val"] = round(outcome.best_score, 4)
        out["tune_trials"] = len(outcome.trials)
    if cfg["epochs"]:
        from tasks.ray_glue.train import run_train

        t = time.time()
        result = run_train(
            data,
            "digits",
            complete(problem, {}),
            TrainSettings(epochs=cfg["epochs"], num_workers=cfg["workers"]),
            Path(storage) / "model",
            storage,
        )
        out["train_s"] = round(time.time() - t, 2)
        out["train_epoch_s"] = [round(h["epoch_time_s"], 3) for h in result.history]
        out["test"] = result.test
    t = time.time()
    ray.shutdown()
    out["shutdown_s"] = round(time.time() - t, 2)
    return out


def measure_point(cfg: dict) -> dict:
    """Run one point in its own process tree (own HOME, RAY_TMPDIR) and sample its PSS."""
    from bench.e2e import kill_leftovers, run_watched

    root = E.scratch("curve")
    load_before = os.getloadavg()[0]
    env = E.isolated_env(root)
    env.pop("BENCH_MARKS", None)
    watched = run_watched(
        [sys.executable, "-m", "bench.curves", "point", json.dumps(cfg)], cwd=root, env=env, root=root
    )
    leftovers = kill_leftovers(watched)
    lines = [line for _, line in watched.lines]
    doc = next((json.loads(line[len("POINT ") :]) for line in reversed(lines) if line.startswith("POINT ")), {})
    pss = watched.stats.to_dict(watched.t0)
    # A Ray task gets its splits made (prepare_data is a task of its own): the peak from the point's Ray start on
    ray_peak, ray_kinds = watched.stats.peak_since(doc.get("ray_start_at", watched.t0))
    E.cleanup(root)
    return {
        **doc,
        "config": cfg,
        "returncode": watched.proc.returncode,
        "wall_s": round(watched.t_end - watched.t0, 2),
        "peak_pss_gib": pss["peak_pss_gib"],
        "peak_pss_gib_from_ray_start": round(ray_peak, 3),
        "peak_by_kind_gib": pss["peak_by_kind_gib"],
        "peak_from_ray_start_by_kind_gib": {
            k: round(v, 3) for k, v in sorted(ray_kinds.items(), key=lambda kv: -kv[1])
        },
        "cpu_s_total": pss["cpu_s_total"],
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "leftover_processes": leftovers,
        **({} if watched.proc.returncode == 0 else {"error_tail": lines[-30:]}),
    }


def plot(curves: dict, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for axis, points in curves.items():
        xs = [p["config"][X_OF[axis]] for p in points]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
        a1.plot(xs, [p.get("wall_s") for p in points], "o-", label="whole point (process wall)")
        if any("tune_s" in p for p in points):
            a1.plot(xs, [p.get("tune_s") for p in points], "s--", label="run_tune (Tuner.fit)")
        if any("train_s" in p for p in points):
            a1.plot(xs, [p.get("train_s") for p in points], "^--", label="run_train (TorchTrainer.fit)")
        a2.plot(xs, [p.get("peak_pss_gib") for p in points], "o-", color="C3", label="peak PSS, process tree")
        if any("peak_pss_gib_from_ray_start" in p for p in points):
            a2.plot(
                xs,
                [p.get("peak_pss_gib_from_ray_start") for p in points],
                "s--",
                color="C1",
                label="the same from Ray's start (data made before)",
            )
        if axis == "data":
            one_copy = [
                p.get("data_gib") or round(p["config"]["n"] * (28 * 28 * 4 + 8) / 1024**3, 3) for p in points
            ]  # float32 images + int64 labels
            a2.plot(xs, one_copy, "x:", color="C7", label="the splits' arrays (one copy)")
        for p, x in zip(points, xs):
            if p.get("returncode") != 0:  # a point that did not finish: its figures are lower bounds
                for a, y in ((a1, p.get("wall_s")), (a2, p.get("peak_pss_gib"))):
                    a.annotate("stopped, >=", (x, y), fontsize=7, color="C3", ha="right")
        for a, ylabel in ((a1, "wall (s)"), (a2, "peak PSS (GiB)")):
            a.set_xlabel(X_OF[axis] if axis != "data" else "samples")
            a.set_ylabel(ylabel)
            a.grid(True, alpha=0.3)
            a.legend(fontsize=7)
            if axis in ("trials", "data") and len(set(xs)) > 1:
                a.set_xscale("log")
                a.minorticks_off()
            a.set_xticks(sorted(set(xs)), [f"{x:,}" for x in sorted(set(xs))])
            a.set_ylim(bottom=0)
        fig.suptitle(f"cost as {axis} grow{'s' if axis == 'data' else ''}", fontsize=10)
        fig.tight_layout()
        path = out_dir / f"{axis}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    return written


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "point":
        print("POINT " + json.dumps(run_point(json.loads(sys.argv[2]))), flush=True)
        return
    started = time.time()
    load_before = E.machine_load()["loadavg_1_5_15"]
    axes = QUICK_AXES if E.QUICK else FULL_AXES
    out_dir = E.OUT_DIR / "curves" if E.QUICK else COMMITTED
    out_dir.mkdir(parents=True, exist_ok=True)
    measured: dict[str, dict] = {}
    only = sys.argv[1:]  # `python -m bench.curves data`: measure these axes again, keep the other axes' points
    previous = out_dir / "curves.json"
    if only and previous.exists():
        for axis, points in json.loads(previous.read_text())["curves"].items():
            for p in points:
                if axis not in only:
                    measured[json.dumps(p["config"], sort_keys=True)] = p
    for axis, points in axes.items():
        for cfg in points:
            if only and axis not in only and json.dumps(cfg, sort_keys=True) in measured:
                continue
            key = json.dumps(cfg, sort_keys=True)
            if key not in measured:
                measured[key] = measure_point(cfg)
                p = measured[key]
                print(
                    f"[curves] {cfg} wall {p['wall_s']}s peak {p['peak_pss_gib']} GiB rc={p['returncode']}", flush=True
                )
    curves = {axis: [measured[json.dumps(c, sort_keys=True)] for c in points] for axis, points in axes.items()}
    doc = {
        "quick": E.QUICK,
        "loadavg_before": load_before,
        "curves": curves,
        "wall_s": round(time.time() - started, 1),
        "loadavg_after": E.machine_load()["loadavg_1_5_15"],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    doc["plots"] = plot(curves, out_dir)
    (out_dir / "curves.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    E.write_json(
        "curves",
        {
            "curves_json": str(out_dir / "curves.json"),
            "plots": doc["plots"],
            "wall_s": doc["wall_s"],
            "points": len(measured),
            "failed": sum(1 for p in measured.values() if p["returncode"] != 0),
        },
    )
    print(
        json.dumps(
            {
                "points": len(measured),
                "failed": sum(1 for p in measured.values() if p["returncode"] != 0),
                "wall_s": doc["wall_s"],
                "plots": doc["plots"],
            }
        )
    )


if __name__ == "__main__":
    main()
