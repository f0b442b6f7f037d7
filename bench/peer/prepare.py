"""Stage `prepare`: the embedded 5000 digits, split and normalized as the workflow does it."""

from pathlib import Path

import yaml

from tasks.data import load_raw, make_splits, parse_source

params = yaml.safe_load(open("params.yaml"))["data"]
raw, _ = load_raw(parse_source(""))
Path("data").mkdir(exist_ok=True)
make_splits(raw, seed=params["seed"]).save("data/digits.npz")
