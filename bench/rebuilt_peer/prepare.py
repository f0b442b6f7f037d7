"""Stage `prepare`: the problem's embedded data, split (train / validation / test) and prepared as the workflow does it."""

from pathlib import Path

import yaml

from tasks.data.arrays import load_raw, make_splits, parse_source
from tasks.problem import load_problem

params = yaml.safe_load(open("params.yaml"))
problem = load_problem(params["problem"])
raw, _ = load_raw(parse_source(""), problem)
Path("data").mkdir(exist_ok=True)
make_splits(raw, problem, seed=params["data"]["seed"]).save("data/digits.npz")
