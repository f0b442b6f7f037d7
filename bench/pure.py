"""Pure compute: the trials and epochs a workflow run did, replayed in one plain process.

    python -m bench.pure default|tutorial

Reads what the run committed (bench/out/e2e-<label>.json: params, best params, the trials table)
and replays it with the project's own code (tasks.data, tasks.model, tasks.training) and no
Flyte or Ray: the same split; every trial with its sampled lr, momentum and batch size for the
epochs ASHA let it run (train + held-out evaluation each epoch, as `trial_on_worker` does);
then the final training with the best parameters for `train.epochs` epochs over the whole
training split (what the DDP workers do together), evaluating each epoch.

torch runs on BENCH_PURE_THREADS threads (default 1): for this small ConvNet one thread is the
fastest plain setting measured here, and two OpenMP threads on a 2-core machine shared with other
work stall on their barriers (3-20x slower epochs, measured). A few extra epochs at torch's
default thread count are timed too, for the throughput comparison.

The wall of this process, imports included (a plain script pays them too), is the compute
baseline: overhead = workflow wall - this.
"""

from __future__ import annotations

import time

T_START = time.time()

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402


def replay(run: dict) -> dict:
    t_imports = time.time()
    import torch

    from tasks.data import load_raw, make_splits, parse_source
    from tasks.settings import HyperParams
    from tasks.training import build, evaluate, make_loader, train_epoch

    t_torch = time.time()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("BENCH_PURE_THREADS", "1")))
    exp = run["experiment"]
    params = yaml.safe_load(exp["params_yaml"])
    tune, train = params["tune"], params["train"]
    best = HyperParams(**yaml.safe_load(exp["best_params_yaml"]))

    t0 = time.time()
    raw, _ = load_raw(parse_source(""))
    data = make_splits(raw, seed=int(params["data"].get("seed", 0)))
    t_data = time.time() - t0

    trials = [r for r in csv.DictReader(io.StringIO(open(exp["trials_csv"]).read())) if r["status"] != "error"]
    test_loader = make_loader(data.x_test, data.y_test, 512, shuffle=False)
    trial_rows = []
    t0 = time.time()
    for row in trials:
        hp = HyperParams(lr=float(row["lr"]), momentum=float(row["momentum"]), batch_size=int(row["batch_size"]))
        started = time.time()
        model, optimizer = build(hp, tune["seed"])
        loader = make_loader(data.x_train, data.y_train, hp.batch_size, shuffle=True, seed=tune["seed"])
        epoch_s, acc = [], None
        for epoch in range(1, int(row["epochs"]) + 1):
            e0 = time.time()
            train_epoch(model, loader, optimizer, epoch)
            acc = evaluate(model, test_loader).accuracy
            epoch_s.append(round(time.time() - e0, 3))
        trial_rows.append({"trial_id": row["trial_id"][:40], "batch_size": hp.batch_size, "epochs": int(row["epochs"]),
                           "epoch_s": epoch_s, "wall_s": round(time.time() - started, 3),
                           "accuracy": acc, "accuracy_in_run": float(row["accuracy"])})
    t_tune = time.time() - t0

    t0 = time.time()
    model, optimizer = build(best, train["seed"])
    loader = make_loader(data.x_train, data.y_train, best.batch_size, shuffle=True, seed=train["seed"])
    train_epoch_s, eval_s, acc = [], [], None
    for epoch in range(1, int(train["epochs"]) + 1):
        e0 = time.perf_counter()
        train_epoch(model, loader, optimizer, epoch)
        e1 = time.perf_counter()
        acc = evaluate(model, test_loader).accuracy
        train_epoch_s.append(e1 - e0)
        eval_s.append(time.perf_counter() - e1)
    t_train = time.time() - t0
    n_train = len(data.y_train)
    threads = torch.get_num_threads()

    # Throughput at torch's default thread count (not part of the compute baseline).
    torch.set_num_threads(default_threads)
    model, optimizer = build(best, train["seed"])
    default_epoch_s = []
    for epoch in range(1, min(int(train["epochs"]), 3) + 1):
        e0 = time.perf_counter()
        train_epoch(model, loader, optimizer, epoch)
        default_epoch_s.append(time.perf_counter() - e0)
    steady = lambda xs: xs[1:] or xs  # noqa: E731  (epoch 1 warms up allocators and caches)
    return {
        "torch_threads": threads,
        "interpreter_and_yaml_s": round(t_imports - T_START, 2),
        "torch_and_project_import_s": round(t_torch - t_imports, 2),
        "data_s": round(t_data, 2),
        "tune_s": round(t_tune, 2),
        "train_s": round(t_train, 2),
        "compute_s": round(t_data + t_tune + t_train, 2),
        "trials": trial_rows,
        "trial_epochs": sum(r["epochs"] for r in trial_rows),
        "train": {
            "epochs": int(train["epochs"]),
            "batch_size": best.batch_size,
            "epoch_train_s": [round(s, 3) for s in train_epoch_s],
            "epoch_eval_s": [round(s, 3) for s in eval_s],
            "samples_per_s": [round(n_train / s, 1) for s in train_epoch_s],
            "steady_samples_per_s": round(n_train / statistics.median(steady(train_epoch_s)), 1),
            "default_threads": default_threads,
            "default_threads_epoch_train_s": [round(s, 3) for s in default_epoch_s],
            "default_threads_steady_samples_per_s": round(n_train / statistics.median(steady(default_epoch_s)), 1),
            "accuracy": acc,
            "accuracy_in_run": exp.get("accuracy"),
        },
    }


def main() -> None:
    from bench import env as E

    label = sys.argv[1] if len(sys.argv) > 1 else "default"
    result = replay(E.read_json(f"e2e-{label}"))
    result["process_wall_s"] = round(time.time() - T_START, 2)
    path = E.write_json(f"pure-{label}", result)
    print(json.dumps({k: result[k] for k in ("process_wall_s", "compute_s", "tune_s", "train_s", "torch_threads")} | {"results": str(path)}))


if __name__ == "__main__":
    main()
