"""Random sampling against Optuna (TPE) on the same budget: the best validation score each reaches and its wall
time, per problem, trial budget and seed. Figures, never pass/fail; the table in bench/README.md.

    .venv/bin/python -m bench.searchers                                   # digits and diabetes, 16 and 64 trials, seeds 0-2
    .venv/bin/python -m bench.searchers --problems diabetes --trials 16 --seeds 0 1
    BENCH_QUICK=1 ...                                                     # diabetes, 4 trials, one seed (make bench's smoke)

Each search is the tune task's own driver (`run_tune`) on a local Ray cluster, with the problem's default space,
max_epochs 2 and ASHA as in the defaults; only `search` and the budget change. Ends with one JSON line; writes
searchers.json beside make bench's other results.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from bench import env as E


def one_search(problem_ref: str, data_ref, search: str, trials: int, seed: int, max_epochs: int) -> dict:
    from tasks.ray_glue.tune import run_tune
    from tasks.training.settings import TuneSettings

    settings = TuneSettings(num_samples=trials, max_epochs=max_epochs, search=search, seed=seed)
    with tempfile.TemporaryDirectory(prefix="bench-searchers-") as tmp:
        t = time.perf_counter()
        outcome = run_tune(data_ref, problem_ref, settings, tmp, where="this machine")
        wall = time.perf_counter() - t
    return {
        "problem": problem_ref,
        "search": search,
        "trials": trials,
        "seed": seed,
        "best_val": outcome.best_score,
        "metric": outcome.metric,
        "wall_s": round(wall, 2),
        "completed": int((outcome.trials["status"] == "completed").sum()),
    }


def table(rows: list[dict]) -> list[dict]:
    """One line per problem, budget and searcher: the best validation score's mean and range over seeds, the wall."""
    out = []
    keys = sorted(
        {(r["problem"], r["trials"], r["search"]) for r in rows}, key=lambda k: (k[0], k[1], k[2] != "random")
    )
    for problem, trials, search in keys:
        group = [r for r in rows if (r["problem"], r["trials"], r["search"]) == (problem, trials, search)]
        scores = [r["best_val"] for r in group]
        out.append(
            {
                "problem": problem,
                "trials": trials,
                "search": search,
                "seeds": len(group),
                "metric": group[0]["metric"],
                "best_val_mean": round(statistics.fmean(scores), 4),
                "best_val_min": round(min(scores), 4),
                "best_val_max": round(max(scores), 4),
                "wall_s_mean": round(statistics.fmean(r["wall_s"] for r in group), 1),
            }
        )
    return out


def markdown(lines: list[dict]) -> str:
    head = "| problem | trials | searcher | seeds | best validation score, mean (min-max) | wall s, mean |\n|---|---|---|---|---|---|"
    body = [
        f"| {x['problem']} | {x['trials']} | {x['search']} | {x['seeds']} | {x['metric']} {x['best_val_mean']:.4f} "
        f"({x['best_val_min']:.4f}-{x['best_val_max']:.4f}) | {x['wall_s_mean']:.1f} |"
        for x in lines
    ]
    return "\n".join([head, *body])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=["diabetes"] if E.QUICK else ["digits", "diabetes"])
    parser.add_argument("--trials", nargs="+", type=int, default=[4] if E.QUICK else [16, 64])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0] if E.QUICK else [0, 1, 2])
    parser.add_argument("--searchers", nargs="+", default=["random", "optuna"])
    parser.add_argument("--max-epochs", type=int, default=1 if E.QUICK else 2)
    args = parser.parse_args()

    import ray

    from tasks.data.arrays import load_raw, make_splits, parse_source
    from tasks.problem import load_problem
    from tasks.ray_glue.local import init_local_ray

    init_local_ray()
    rows = []
    for problem_ref in args.problems:
        problem = load_problem(problem_ref)
        raw, _ = load_raw(parse_source(""), problem)
        data_ref = ray.put(make_splits(raw, problem, seed=0))
        for trials in args.trials:
            for seed in args.seeds:
                for search in args.searchers:
                    row = one_search(problem_ref, data_ref, search, trials, seed, args.max_epochs)
                    print(f"[searchers] {json.dumps(row)}", flush=True)
                    rows.append(row)
    lines = table(rows)
    print(markdown(lines), flush=True)
    doc = {"rows": rows, "table": lines, "max_epochs": args.max_epochs, "load": E.machine_load()}
    E.write_json("searchers", doc)
    print(json.dumps({"searchers": lines}), flush=True)


if __name__ == "__main__":
    main()
