"""Pure compute: the trials and epochs a workflow run did, replayed in one plain process.

    python -m bench.pure default|tutorial

Reads what the run committed (bench/out/e2e-<label>.json: params.yaml, best params, the trials
table, results/run.json) and replays it with the project's own code (tasks.problem, tasks.data.arrays,
tasks.training.loop) and no Flyte or Ray, under the run's evaluation protocol: the same three splits;
every trial with its sampled hyper-parameters (the searched ones from `trials.csv`, the fixed
ones from the recorded `tune.space`) for the epochs ASHA let it run, training and then scoring
on validation each epoch, as `trial_on_worker` does; then the final training with the best
parameters for `train.epochs` epochs over the whole training split at the global batch the run
trained with (run.json `global_batch_size`: in one plain process every step takes the whole
global batch, which the DDP workers share), validation each epoch, and the test split scored
once at the end.

torch runs on BENCH_PURE_THREADS threads (default 1): for this small ConvNet one thread is the
fastest plain setting measured here, and two OpenMP threads on a 2-core machine shared with other
work stall on their barriers (3-20x slower epochs, measured). A few extra epochs with as many
threads as the run had DDP workers are timed too (the reference of `ddp_throughput_ratio`).

The wall of this process, imports included (a plain script pays them too), up to the end of the
replay is the compute baseline: overhead = workflow wall - this (the driver subtracts the
same-threads epochs timed after it, `after_baseline_s`, from the wall it measures outside).
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


def _typed(problem, name: str, text: str):
    """A trials.csv cell as the hyper-parameter's type (the CSV holds text)."""
    kind = problem.hyperparams[name].type
    if kind is bool:
        return text.strip().lower() in ("true", "1")
    if kind in (int, float):
        return kind(float(text))
    return text


def fixed_values(space: dict) -> dict:
    """The hyper-parameters a recorded space fixed (a value, not a {"kind": bounds} domain)."""
    return {k: v for k, v in (space or {}).items() if not isinstance(v, dict)}


def replay(run: dict) -> dict:
    t_imports = time.time()
    import torch

    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import complete, load_problem, metric_key
    from tasks.training.loop import EVAL_BATCH, build, evaluate, make_loader, start_from_data, train_epoch

    t_torch = time.time()
    default_threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("BENCH_PURE_THREADS", "1")))
    exp = run["experiment"]
    params = yaml.safe_load(exp["params_yaml"])
    run_info = exp.get("run_info") or {}
    problem = load_problem(params.get("problem") or "")
    tune, train = params["tune"], params["train"]
    val_key, test_key = metric_key("val", problem.select), metric_key("test", problem.select)
    best = complete(problem, yaml.safe_load(exp["best_params_yaml"]))
    global_batch = int(run_info.get("global_batch_size") or best["batch_size"])
    fixed = fixed_values(tune.get("space", {}))

    t0 = time.time()
    raw, _ = load_raw(parse_source(params["data"].get("source", "")), problem)
    data = make_splits(raw, problem, seed=int(params["data"].get("seed", 0)))
    t_data = time.time() - t0

    trials = [r for r in csv.DictReader(io.StringIO(open(exp["trials_csv"]).read())) if r["status"] != "error"]
    loss_fn = problem.loss()
    val_loader = make_loader(data.x_val, data.y_val, EVAL_BATCH, shuffle=False)
    train_rows = make_loader(data.x_train, data.y_train, EVAL_BATCH, shuffle=False)  # the problem's start reads them
    trial_rows = []
    t0 = time.time()
    for row in trials:
        searched = {k: _typed(problem, k, v) for k, v in row.items() if k in problem.hyperparams and v != ""}
        hp = complete(problem, {**fixed, **searched})
        started = time.time()
        model, optimizer = build(problem, hp, tune["seed"])
        start_from_data(problem, model, train_rows)
        loader = make_loader(data.x_train, data.y_train, hp["batch_size"], shuffle=True, seed=tune["seed"])
        epoch_s, scores = [], {}
        for epoch in range(1, int(row["epochs"]) + 1):
            e0 = time.time()
            train_epoch(model, loader, optimizer, loss_fn, epoch)
            scores = evaluate(model, val_loader, problem).scores(problem, "val")
            epoch_s.append(round(time.time() - e0, 3))
        in_run = row.get(val_key, "")
        trial_rows.append(
            {
                "trial_id": row["trial_id"][:40],
                "batch_size": hp["batch_size"],
                "epochs": int(row["epochs"]),
                "epoch_s": epoch_s,
                "wall_s": round(time.time() - started, 3),
                val_key: scores.get(val_key),
                f"{val_key}_in_run": float(in_run) if in_run else None,
            }
        )
    t_tune = time.time() - t0

    t0 = time.time()
    model, optimizer = build(problem, best, train["seed"])
    start_from_data(problem, model, train_rows)
    loader = make_loader(data.x_train, data.y_train, global_batch, shuffle=True, seed=train["seed"])
    train_epoch_s, eval_s, val_scores = [], [], {}
    for epoch in range(1, int(train["epochs"]) + 1):
        e0 = time.perf_counter()
        train_epoch(model, loader, optimizer, loss_fn, epoch)
        e1 = time.perf_counter()
        val_scores = evaluate(model, val_loader, problem).scores(problem, "val")
        train_epoch_s.append(e1 - e0)
        eval_s.append(time.perf_counter() - e1)
    e0 = time.perf_counter()
    test_scores = evaluate(model, make_loader(data.x_test, data.y_test, EVAL_BATCH, shuffle=False), problem).scores(
        problem, "test"
    )
    test_eval_s = time.perf_counter() - e0
    t_train = time.time() - t0
    n_train = len(data.y_train)
    threads = torch.get_num_threads()

    # Throughput with as many torch threads as the run had DDP workers (one thread each): the plain
    # reference of `ddp_throughput_ratio`. Not part of the compute baseline, so timed apart
    # (`after_baseline_s`) and left out of it (on a loaded machine these epochs can take many seconds).
    t_baseline_end = time.time()
    same_threads = int(train.get("num_workers", 2))
    torch.set_num_threads(same_threads)
    model, optimizer = build(problem, best, train["seed"])
    default_epoch_s = []
    for epoch in range(1, min(int(train["epochs"]), 3) + 1):
        e0 = time.perf_counter()
        train_epoch(model, loader, optimizer, loss_fn, epoch)
        default_epoch_s.append(time.perf_counter() - e0)
    after_baseline_s = time.time() - t_baseline_end
    steady = lambda xs: xs[1:] or xs  # noqa: E731  (epoch 1 warms up allocators and caches)
    run_val, run_test = run_info.get("val") or {}, run_info.get("test") or {}
    return {
        "problem": problem.name,
        "torch_threads": threads,
        "interpreter_and_yaml_s": round(t_imports - T_START, 2),
        "torch_and_project_import_s": round(t_torch - t_imports, 2),
        "data_s": round(t_data, 2),
        "tune_s": round(t_tune, 2),
        "train_s": round(t_train, 2),
        "compute_s": round(t_data + t_tune + t_train, 2),
        "baseline_process_wall_s": round(
            t_baseline_end - T_START, 2
        ),  # this process's wall up to the end of the replay
        "after_baseline_s": round(after_baseline_s, 2),  # the default-threads epochs after it
        "splits": data.sizes(),
        "trials": trial_rows,
        "trial_epochs": sum(r["epochs"] for r in trial_rows),
        "train": {
            "epochs": int(train["epochs"]),
            "batch_size": global_batch,  # the global batch: one plain process takes all of it each step
            "tuned_batch_size": best["batch_size"],
            "epoch_train_s": [round(s, 3) for s in train_epoch_s],
            "epoch_eval_s": [round(s, 3) for s in eval_s],
            "test_eval_s": round(test_eval_s, 3),
            "samples_per_s": [round(n_train / s, 1) for s in train_epoch_s],
            "steady_samples_per_s": round(n_train / statistics.median(steady(train_epoch_s)), 1),
            "default_threads": default_threads,
            "same_threads": same_threads,  # = the run's DDP workers x 1 thread each
            "same_threads_epoch_train_s": [round(s, 3) for s in default_epoch_s],
            "same_threads_steady_samples_per_s": round(n_train / statistics.median(steady(default_epoch_s)), 1),
            "val": val_scores,
            "test": test_scores,
            # `accuracy` is the test score (the gate's), as in the run's results/run.json
            "accuracy": test_scores.get(test_key),
            "val_accuracy": val_scores.get(val_key),
            "accuracy_in_run": run_test.get(test_key, exp.get("accuracy")),
            "val_accuracy_in_run": run_val.get(val_key, exp.get("val_accuracy")),
        },
    }


def main() -> None:
    from bench import env as E

    label = sys.argv[1] if len(sys.argv) > 1 else "default"
    result = replay(E.read_json(f"e2e-{label}"))
    result["process_wall_s"] = round(time.time() - T_START, 2)
    path = E.write_json(f"pure-{label}", result)
    print(
        json.dumps(
            {
                k: result[k]
                for k in (
                    "process_wall_s",
                    "baseline_process_wall_s",
                    "compute_s",
                    "tune_s",
                    "train_s",
                    "torch_threads",
                )
            }
            | {"results": str(path)}
        )
    )


if __name__ == "__main__":
    main()
