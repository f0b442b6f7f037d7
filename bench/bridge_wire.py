"""The bridge against the wire: record_experiment with models of 10, 100 and 500 MB vs a raw S3 upload.

    python -m bench.bridge_wire          # BENCH_QUICK=1: 1, 4 and 16 MB

For each size: a bare git remote whose DVC remote is a bucket on moto's S3 server on loopback
(built like the tests' `remote_target` fixture: tasks.scaffold + a bare clone),
random bytes as model.pth, then `dvc_bridge.bridge.record_experiment` timed as a whole and by
step (clone, dvc commit, exp save, dvc push, git push); then the same bytes uploaded raw to the
same endpoint with boto3 (`upload_file`, multipart, and one `put_object`; the faster is the
raw rate) and with s3fs `put_file` (the path DVC's push takes, without DVC). The server is reset
between sizes so it holds at most one size at a time.
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from collections import defaultdict
from pathlib import Path

from bench import env as E
from emulator.host import moto_server

MB = 1_000_000


class StepTimer:
    """Wraps named callables to add up the wall time spent in each."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._undo = []

    def wrap(self, owner, name: str, label: str, by_first_arg: bool = False) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        @functools.wraps(original)
        def wrapper(*args, **kwargs):
            key = f"{label} {args[1]}" if by_first_arg and len(args) > 1 else label
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[key] += time.perf_counter() - t

        setattr(owner, name, wrapper)
        self._undo.append((owner, name, original))

    def reset(self) -> dict[str, float]:
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        self.seconds.clear()
        return out

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def materials(work: Path, size_mb: int, name: str):
    """Random bytes as the model and a run's small outputs, described as tasks.record.experiment does for a digits run."""
    from tasks.problem import load_problem
    from tasks.record import experiment

    model = work / "model.pth"
    with open(model, "wb") as f:
        for _ in range(size_mb):
            f.write(os.urandom(MB))
    live = work / "dvclive"
    for split in ("train", "val"):
        (live / "plots" / "metrics" / split).mkdir(parents=True)
    (live / "metrics.json").write_text(
        json.dumps(
            {
                "train": {"loss": 0.2},
                "val": {"loss": 0.2, "accuracy": 0.95},
                "test": {"loss": 0.2, "accuracy": 0.95},
                "step": 0,
            }
        )
    )
    (live / "plots" / "metrics" / "train" / "loss.tsv").write_text("step\tloss\n0\t0.2\n")
    (live / "plots" / "metrics" / "val" / "accuracy.tsv").write_text("step\taccuracy\n0\t0.95\n")
    (work / "trials.csv").write_text(
        "trial_id,lr,momentum,batch_size,status,epochs,val/accuracy,error\nt0,0.05,0.9,64,completed,1,0.95,\n"
    )
    (work / "trials.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    problem = load_problem("digits")
    record = experiment.describe_run(
        problem,
        params=experiment.params_document("digits", {"source": "bench", "seed": 0}, {}, {}),
        best={"lr": 0.05, "momentum": 0.9, "batch_size": 64, "channels": 16, "hidden": 64},
        trials_csv=work / "trials.csv",
        trials_png=work / "trials.png",
        model=model,
        live_dir=live,
        val={"val/loss": 0.2, "val/accuracy": 0.95},
        test={"test/loss": 0.2, "test/accuracy": 0.95},
        run_info={"execution_id": name},
        gate=0.9,  # passes: the branch push is timed too, as it was with min_accuracy=0.9
    )
    return model, record


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = a + b x; returns (a, b)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def run(sizes_mb: list[int]) -> dict:
    import boto3
    import requests
    import s3fs
    from dvc.repo import Repo
    from dvc.repo.experiments import Experiments

    from dvc_bridge import bridge, gitops

    root = E.scratch("bridge")
    E.use_env(E.isolated_env(root))
    timer = StepTimer()
    timer.wrap(bridge, "clone", "clone")
    timer.wrap(bridge, "materialize", "write files")
    timer.wrap(Repo, "commit", "dvc commit")
    timer.wrap(Experiments, "save", "dvc exp save")
    timer.wrap(Repo, "push", "dvc push")
    # the bridge's own upload steps around dvc push (a missing one is skipped by wrap)
    timer.wrap(bridge, "preupload_large_files", "boto3 pre-upload")
    timer.wrap(bridge, "push_run_cache", "dvc push --run-cache")
    timer.wrap(bridge, "check_no_secrets", "secret check")
    timer.wrap(gitops.Git, "__call__", "git", by_first_arg=True)
    rows = []
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        for size in sizes_mb:
            requests.post(f"{endpoint}/moto-api/reset", timeout=30)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=bucket)
            url = E.remote_target(root, endpoint, bucket)
            work = root / f"work-{size}"
            work.mkdir()
            name = f"bench-{size}mb"
            model, mats = materials(work, size, name)
            timer.reset()
            t = time.perf_counter()
            ref = bridge.record_experiment(bridge.Target(url, local=False), name, mats, work / "bridge")
            bridge_s = time.perf_counter() - t
            steps = timer.reset()
            assert ref.data_pushed and ref.ref_pushed

            t = time.perf_counter()
            s3.upload_file(str(model), bucket, f"raw/{name}")
            upload_file_s = time.perf_counter() - t
            body = model.read_bytes()
            t = time.perf_counter()
            s3.put_object(Bucket=bucket, Key=f"raw/{name}-put", Body=body)
            put_object_s = time.perf_counter() - t
            del body
            # the transfer path DVC itself uses (s3fs put_file: 50 MiB parts, 10 at a time), without DVC
            fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
            t = time.perf_counter()
            fs.put_file(str(model), f"{bucket}/raw/{name}-s3fs")
            s3fs_put_s = time.perf_counter() - t
            raw_s = min(upload_file_s, put_object_s)
            rows.append(
                {
                    "size_mb": size,
                    "bridge_s": round(bridge_s, 3),
                    "bridge_mb_per_s": round(size / bridge_s, 1),
                    "bridge_steps_s": steps,
                    "raw_upload_file_s": round(upload_file_s, 3),
                    "raw_put_object_s": round(put_object_s, 3),
                    "raw_s3fs_put_file_s": round(s3fs_put_s, 3),
                    "raw_mb_per_s": round(size / raw_s, 1),
                    "ratio": round(raw_s / bridge_s, 3),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
            E.cleanup(work)
    timer.restore()
    E.cleanup(root)

    xs = [r["size_mb"] for r in rows]
    b0, b1 = fit(xs, [r["bridge_s"] for r in rows])
    r0, r1 = fit(xs, [min(r["raw_upload_file_s"], r["raw_put_object_s"]) for r in rows])
    largest = rows[-1]
    return {
        "sizes": rows,
        "fit": {
            "bridge_fixed_s": round(b0, 3),
            "bridge_marginal_mb_per_s": round(1 / b1, 1) if b1 > 0 else None,
            "raw_fixed_s": round(r0, 3),
            "raw_marginal_mb_per_s": round(1 / r1, 1) if r1 > 0 else None,
        },
        # The model: time = fixed cost + size / rate. The throughput ratio compares the rates
        # (slopes of one fit each), the fixed cost is the bridge's intercept; the plain time ratio at
        # the largest size mixes both and is kept beside them.
        "bridge_throughput_ratio": round(r1 / b1, 3) if b1 > 0 and r1 > 0 else largest["ratio"],  # tiny sizes: no slope
        "bridge_fixed_s": round(b0, 3),
        "time_ratio_at_largest": largest["ratio"],
    }


def main() -> None:
    result = run(E.BRIDGE_MB)
    path = E.write_json("bridge", result)
    print(
        json.dumps(
            {
                "bridge_throughput_ratio": result["bridge_throughput_ratio"],
                "bridge_fixed_s": result["bridge_fixed_s"],
                **result["fit"],
                "results": str(path),
            }
        )
    )


if __name__ == "__main__":
    main()
