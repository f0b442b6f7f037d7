"""The data axis of the streaming path: memory stays flat past Ray's object-store budget.

    python -m bench.streaming                      # 0.1x, 1x, 4x, 10x (or --sizes) the store, then streaming vs in memory
    python -m bench.streaming one DIR STORE_MIB    # one run in this fresh process, JSON on stdout (the memory test's)

Each point is a fresh process: a local Ray with a small object store (`object_store_memory`), a
Ray Train run (2 workers, 2 epochs) streaming a directory of Parquet shards of the `WIDE` problem
(16 KiB rows of incompressible bytes, so the bytes read are the bytes on disk), sampled every 0.25 s
for the object store's use (Ray's memory summary) and the process tree's PSS. Figures go to
bench/README.md ("Streaming"). Last, throughput at a size both paths hold: 20000 enlarged digits,
streamed from 4 shards and in memory (decoded, `ray.put` once, as `prepare_data` does), same rows.
`make bench` runs it as its "streaming" section (results.json); BENCH_QUICK=1 leaves it out.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from torch import nn

from tasks.problem import Choice, HyperParam, LogUniform, Metric, Problem, Rows, Schema

FEATURES = 8
BLOB_BYTES = 16 * 1024
ROW_BYTES = BLOB_BYTES + 4 * FEATURES + 8
MIB = 2**20
DIGITS_ROWS = 20000


def _decode(columns):
    x = np.frombuffer(b"".join(columns["features"]), dtype=np.float32).reshape(-1, FEATURES)
    return x.copy(), np.asarray(columns["label"]).astype(np.int64)


def _encode(x, y):
    raise ValueError("WIDE rows are written by bench.streaming.write_wide")


def _wide_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, FEATURES)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y, rng.integers(0, 256, (n, BLOB_BYTES), dtype=np.uint8)


def _load_default():
    x, y, _ = _wide_rows(1000, 0)
    return {"x": x, "y": y}


# A problem whose rows are wide (16 KiB each) and whose model is tiny: the run is all data movement.
WIDE = Problem(
    name="wide",
    description="linear classifier of 8 features carried in 16 KiB rows (streaming benchmark)",
    schema=Schema(feature_shape=(FEATURES,), target="class", classes=2),
    load_default=_load_default,
    build_model=lambda hp: nn.Linear(FEATURES, 2),
    hyperparams={
        "lr": HyperParam(float, 0.1, LogUniform(0.01, 0.3), lambda v: v > 0, "> 0"),
        "batch_size": HyperParam(int, 256, Choice((128, 256)), lambda v: v >= 1, ">= 1"),
    },
    metrics=(Metric("accuracy", lambda out, y: (out.argmax(1) == y).sum(), mode="max"),),
    select="accuracy",
    gate=0.5,
    rows=Rows(columns=("features", "blob", "label"), decode=_decode, encode=_encode),
)


def write_wide(out_dir: Path, total_bytes: int, shard_bytes: int = 8 * MIB, row_group_rows: int = 64) -> int:
    """Parquet shards of WIDE rows, about `total_bytes` in all; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = max(1, total_bytes // ROW_BYTES)
    per_shard = max(1, shard_bytes // ROW_BYTES)
    for s, start in enumerate(range(0, rows, per_shard)):
        n = min(per_shard, rows - start)
        x, y, blob = _wide_rows(n, s + 1)
        table = pa.table(
            {
                "features": pa.array([r.tobytes() for r in x], pa.binary()),
                "blob": pa.array([r.tobytes() for r in blob], pa.binary()),
                "label": pa.array(y),
            }
        )
        pq.write_table(table, out_dir / f"part-{s:05d}.parquet", row_group_size=row_group_rows, compression="none")
    return rows


class Sampler(threading.Thread):
    """Every 0.25 s: the object store's use and spilled bytes (Ray's memory summary), the process tree's PSS.

    Store use is Ray's "Plasma memory usage": every object in the store, the ones no reference holds any more
    (evictable, kept until the space is wanted) too; "needed" is the part held by references (Ray's "% needed",
    primary copies); "fallback" is what Ray had to place outside the store, in files, when it was full.
    """

    def __init__(self, gcs_address: str) -> None:
        super().__init__(daemon=True)
        self.gcs_address, self.stop = gcs_address, threading.Event()
        self.peak_store_mib = self.spilled_mib = self.peak_pss_mib = 0.0
        self.peak_needed_mib = self.fallback_mib = 0.0

    def run(self) -> None:
        import psutil

        from bench.proctree import read_pss_kb
        from compat.ray import memory_summary

        me = psutil.Process()
        while not self.stop.wait(0.25):
            try:
                text = memory_summary(self.gcs_address)
            except Exception:
                continue
            used = re.search(r"Plasma memory usage (\d+) MiB", text)
            spilled = re.search(r"Spilled (\d+) MiB", text)
            self.peak_store_mib = max(self.peak_store_mib, float(used.group(1)) if used else 0.0)
            self.spilled_mib = max(self.spilled_mib, float(spilled.group(1)) if spilled else 0.0)
            shares = re.search(r"([\d.]+)% full, ([\d.]+)% needed", text)
            if used and shares and float(shares.group(1)) > 0:  # needed, in MiB of the store's capacity
                needed = float(used.group(1)) * float(shares.group(2)) / float(shares.group(1))
                self.peak_needed_mib = max(self.peak_needed_mib, round(needed, 1))
            fallback = re.search(r"Plasma filesystem mmap usage: (\d+) MiB", text)
            self.fallback_mib = max(self.fallback_mib, float(fallback.group(1)) if fallback else 0.0)
            pids = [me.pid] + [c.pid for c in me.children(recursive=True)]
            self.peak_pss_mib = max(self.peak_pss_mib, sum(read_pss_kb(p) for p in pids) / 1024)


def one(data_dir: str, store_mib: int, epochs: int = 2, in_memory: bool = False, problem_ref: str = "") -> dict:
    """One training run in this process on a fresh local Ray with a `store_mib` object store; the figures."""
    import ray

    from tasks.data.arrays import make_splits
    from tasks.data.shards import iter_samples, resolve
    from tasks.problem import load_problem
    from tasks.ray_glue.local import local_worker_env
    from tasks.ray_glue.train import run_train
    from tasks.training.settings import TrainSettings

    problem_ref = problem_ref or "bench.streaming:WIDE"
    problem = load_problem(problem_ref)
    manifest = resolve(data_dir, problem, problem_ref)
    ctx = ray.init(
        num_cpus=2,
        object_store_memory=store_mib * MIB,
        include_dashboard=False,
        runtime_env={"env_vars": local_worker_env()},
        logging_level="WARNING",
    )
    sampler = Sampler(ctx.address_info["gcs_address"])
    sampler.start()
    if in_memory:  # the in-memory path on the same rows: decoded whole, split by the same rule, put once
        parts = {s: list(iter_samples(manifest, problem, s, 4096)) for s in ("train", "val", "test")}
        arrays = {f"{a}_{s}": np.concatenate([b[i] for b in parts[s]]) for s in parts for i, a in enumerate("xy")}
        data = ray.put(make_splits(arrays, problem))
        del parts, arrays
    else:
        data = manifest
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        out = run_train(
            data,
            problem_ref,
            {},
            TrainSettings(epochs=epochs, num_workers=2),
            Path(d) / "out",
            str(Path(d) / "ray"),
        )
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    ray.shutdown()
    rows_seen = [round(h["samples_per_s"] * h["epoch_time_s"]) for h in out.history]
    return {
        "mode": "in-memory" if in_memory else "streaming",
        "store_mib": store_mib,
        "data_mib": round(sum(os.path.getsize(f) for f in manifest.files) / MIB, 1),
        "rows": manifest.total_rows,
        "epochs": len(out.history),
        "train_rows_per_epoch": rows_seen,
        "samples_per_s_last_epoch": round(out.history[-1]["samples_per_s"], 1),
        "wall_s": round(wall, 1),
        "peak_store_mib": sampler.peak_store_mib,
        "peak_needed_mib": sampler.peak_needed_mib,
        "spilled_mib": sampler.spilled_mib,
        "fallback_mib": sampler.fallback_mib,
        "peak_pss_mib": round(sampler.peak_pss_mib),
        "test": out.test,
    }


def run_child(data_dir: Path, store_mib: int, *extra: str, timeout: float = 1200) -> dict:
    """`one` in a fresh process (its own Ray); the figures."""
    ray_tmp = tempfile.mkdtemp(prefix="frdbs", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "bench.streaming", "one", str(data_dir), str(store_mib), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.streaming one failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if argv[:1] == ["one"]:
        problem = argv[argv.index("--problem") + 1] if "--problem" in argv else ""
        result = one(argv[1], int(argv[2]), in_memory="--in-memory" in argv, problem_ref=problem)
        print(json.dumps(result), flush=True)
        return 0
    store = 100
    from bench import env as E

    default = "0.1" if E.QUICK else "0.1,1,4,10"  # quick: a smoke run of this module alone
    factors = [float(f) for f in (argv[argv.index("--sizes") + 1] if "--sizes" in argv else default).split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="frd-bench-streaming-") as d:
        for f in factors:
            data = Path(d) / f"x{f}"
            write_wide(data, int(f * store * MIB))
            results.append({"factor": f, **run_child(data, store)})
            print(json.dumps(results[-1]), flush=True)
        # Throughput at a size both paths hold: digits (the streamed bytes are the model's input), same rows.
        from tasks.data.shard_writer import write_shards
        from tasks.problem import load_problem

        digits = Path(d) / "digits"
        if not E.QUICK:
            write_shards(load_problem("digits"), digits, 4, DIGITS_ROWS)
            for extra in ((), ("--in-memory",)):
                results.append({"factor": None, **run_child(digits, store, "--problem", "digits", *extra)})
                print(json.dumps(results[-1]), flush=True)
    E.write_json("streaming", {"store_mib": store, "points": results})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
