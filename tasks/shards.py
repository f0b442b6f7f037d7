"""Write a built-in problem's data as Parquet shards, to try the streaming path or grow data for benchmarks.

python -m tasks.shards digits data/digits --shards 8
python -m tasks.shards digits data/digits-1m --shards 64 --rows 1000000   # shifted copies
dvc add data/digits && git add data/digits.dvc && dvc push       # then --dataset 'dvc://data/digits'
"""

from __future__ import annotations

import argparse
import sys

from tasks.data.arrays import DataError
from tasks.data.shard_writer import write_shards
from tasks.problem import load_problem


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.shards", description=__doc__.split("\n")[0])
    parser.add_argument("problem", help="a built-in problem (digits, diabetes) or module:attribute")
    parser.add_argument("out_dir", help="directory to write part-NNNNN.parquet into")
    parser.add_argument("--shards", type=int, required=True, help="number of Parquet files")
    parser.add_argument("--rows", type=int, default=0, help="rows in all (default: the embedded data's)")
    args = parser.parse_args(argv)
    try:
        paths = write_shards(load_problem(args.problem), args.out_dir, args.shards, args.rows)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} shards to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
