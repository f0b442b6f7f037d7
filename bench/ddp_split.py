"""What splitting the global batch over the DDP workers costs: plain DDP epochs at two per-worker batch sizes.

    python -m bench.ddp_split default|tutorial

Training now takes the tuned batch as the global one: each of the N workers takes batch / N a
step (tasks.training.loop.worker_batch_size), so there are N times as many steps, and gradient
all-reduces, per epoch as when every worker took the whole tuned batch (the way before
2026-12-01, a global batch of N x the tuned one). This times both on the run's own model, data and
best hyper-parameters (bench/out/e2e-<label>.json), with N plain processes running DDP over gloo
on loopback (torch.distributed, no Ray: the same DDP the Ray Train workers run, without their
start-up), one torch thread each, the project's `make_loader` / `train_epoch`. Writes
bench/out/ddp_split-<label>.json. A figure, not a pass/fail: the run's own Ray Train throughput
(at the split batch) sits beside it in results.json's `throughput.batch_split`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, job: dict, out: str) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from tasks.problem import complete, load_problem
    from tasks.training.loop import build, make_loader, train_epoch

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    problem = load_problem(job["problem"])
    with np.load(job["data"]) as f:
        x, y = f["x_train"], f["y_train"]
    rows = []
    for name, per_worker in job["configs"]:
        hp = complete(problem, {**job["hp"], "batch_size": per_worker})
        model, optimizer = build(problem, hp, job["seed"])
        model = DistributedDataParallel(model)
        loader = make_loader(x, y, per_worker, shuffle=True, seed=job["seed"], rank=rank, world_size=world)
        loss_fn = problem.loss()
        epoch_s = []
        for epoch in range(1, job["epochs"] + 1):
            dist.barrier()
            t = time.perf_counter()
            train_epoch(model, loader, optimizer, loss_fn, epoch)
            dist.barrier()  # the epoch ends when the slowest worker is done
            epoch_s.append(time.perf_counter() - t)
        rows.append(
            {
                "name": name,
                "batch_per_worker": per_worker,
                "global_batch": per_worker * world,
                "steps_per_epoch": len(loader),
                "epoch_s": [round(s, 3) for s in epoch_s],
            }
        )
    if rank == 0:
        Path(out).write_text(json.dumps(rows))
    dist.destroy_process_group()


def measure(run: dict, epochs: int) -> dict:
    import torch.multiprocessing as mp
    import yaml

    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import complete, load_problem
    from tasks.training.loop import worker_batch_size

    exp = run["experiment"]
    params = yaml.safe_load(exp["params_yaml"])
    problem_ref = params.get("problem") or ""
    problem = load_problem(problem_ref)
    best = complete(problem, yaml.safe_load(exp["best_params_yaml"]))
    world = int(params["train"].get("num_workers", 2))
    tuned = int(best["batch_size"])
    split = worker_batch_size(tuned, world)
    raw, _ = load_raw(parse_source(params["data"].get("source", "")), problem)
    data = make_splits(raw, problem, seed=int(params["data"].get("seed", 0)))
    n_train = len(data.y_train)
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as d:
        data_path, out = Path(d) / "splits.npz", Path(d) / "rows.json"
        data.save(data_path)
        job = {
            "problem": problem_ref,
            "hp": best,
            "seed": int(params["train"].get("seed", 0)),
            "epochs": epochs,
            "data": str(data_path),
            "configs": [["split", split], ["full_per_worker", tuned]],
        }
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        t = time.perf_counter()
        mp.spawn(_worker, args=(world, _free_port(), job, str(out)), nprocs=world, join=True)
        wall = time.perf_counter() - t
        rows = json.loads(out.read_text())
    for row in rows:
        steady = row["epoch_s"][1:] or row["epoch_s"]  # epoch 1 warms up
        row["steady_samples_per_s"] = round(n_train / statistics.median(steady), 1)
        row["allreduces_per_epoch"] = row["steps_per_epoch"]
    by = {r["name"]: r for r in rows}
    return {
        "workers": world,
        "tuned_batch_size": tuned,
        "n_train": n_train,
        "epochs": epochs,
        "torch_threads_per_worker": 1,
        "split": by["split"],  # what training does now: global batch = tuned, batch / N per worker
        "full_per_worker": by["full_per_worker"],  # before 2026-12-01: the tuned batch on every worker
        "split_over_full_throughput": round(
            by["split"]["steady_samples_per_s"] / by["full_per_worker"]["steady_samples_per_s"], 3
        ),
        "wall_s": round(wall, 2),
        "note": "plain torch DDP over gloo, no Ray; steady state = epochs 2..N (median); a figure, not a pass/fail",
    }


def main() -> None:
    from bench import env as E

    label = sys.argv[1] if len(sys.argv) > 1 else "default"
    result = measure(E.read_json(f"e2e-{label}"), epochs=2 if E.QUICK else 4)
    path = E.write_json(f"ddp_split-{label}", result)
    print(
        json.dumps(
            {
                "split_samples_per_s": result["split"]["steady_samples_per_s"],
                "full_per_worker_samples_per_s": result["full_per_worker"]["steady_samples_per_s"],
                "split_over_full_throughput": result["split_over_full_throughput"],
                "results": str(path),
            }
        )
    )


if __name__ == "__main__":
    main()
