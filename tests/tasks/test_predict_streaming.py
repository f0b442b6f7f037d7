"""Batch prediction on Parquet shards, streamed: real Ray (the local test cluster), real Parquet files, a real
model. Every row is scored exactly once, as the model scores it in this process, and the metrics are the
exact ones over all rows (one Ray Data execution, over shards on S3 on loopback: the suite runs on 2 cores);
a problem with no Parquet form is refused naming the fix."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from support import ray_cluster  # noqa: F401 (fixture)

from tasks.data.arrays import DataError
from tasks.data.shard_writer import write_shards
from tasks.data.shards import columns_of, decode_checked, open_file, resolve, row_hash, split_of
from tasks.problem import complete, load_problem

ROWS, FILES = 2000, 3


@pytest.fixture(scope="module")
def digits_shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "digits"
    write_shards(load_problem("digits"), out, FILES, ROWS)
    return out


@pytest.fixture(scope="module")
def model():
    """An untrained digits ConvNet (seed 2, weights scaled up so its answers vary with the image), its weights."""
    problem = load_problem("digits")
    hp = complete(problem, {})
    torch.manual_seed(2)
    net = problem.build_model(hp).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_(3)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return net, hp, buf.getvalue()


def _in_process(
    manifest, problem, net
) -> tuple[dict[tuple[int, int], tuple[int, float, int]], torch.Tensor, torch.Tensor]:
    """{(file, row_hash): (prediction, confidence, target)} and all outputs and targets, scored here with torch."""
    expected, outs, ys = {}, [], []
    for i, url in enumerate(manifest.files):
        with open_file(url) as f:
            cols = columns_of(pq.read_table(f, columns=manifest.columns))
        x, y = decode_checked(cols, problem, url, manifest.columns)
        with torch.no_grad():
            out = net(torch.from_numpy(x))
        conf, label = torch.softmax(out, 1).max(1)
        for h, p, c, t in zip(row_hash(cols, manifest.columns), label.tolist(), conf.tolist(), y.tolist()):
            assert (i, int(h)) not in expected  # the test data's rows are distinct: (file, hash) names one row
            expected[(i, int(h))] = (p, c, t)
        outs.append(out)
        ys.append(torch.from_numpy(y))
    return expected, torch.cat(outs), torch.cat(ys)


def test_shards_on_s3_are_scored_by_ray_data_each_row_once_with_exact_metrics(
    ray_cluster,  # noqa: F811
    digits_shards,
    model,
    tmp_path,
    s3_endpoint,
    bucket,
    monkeypatch,
):
    """Shards under an s3:// prefix (moto on loopback), as on a cluster: the Ray workers read them through the
    endpoint-only filesystem with their own credentials. (A local directory: tests/workflows/test_predict.py.)"""
    import s3fs

    from tasks.ray_glue.predict import run_predict_shards

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    problem = load_problem("digits")
    net, hp, weights = model
    s3 = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    s3.put(str(digits_shards), f"{bucket}/d", recursive=True)
    manifest = resolve(f"s3://{bucket}/d", problem, "digits")
    assert len(manifest.files) == FILES and all(f.startswith(f"s3://{bucket}/d/") for f in manifest.files)
    out = f"s3://{bucket}/run/predictions-1"  # as on Flyte: under the execution's raw-output prefix
    scored = run_predict_shards(manifest, "digits", hp, weights, out, batch_size=128, concurrency=1)

    written = s3.find(out)
    assert written and all(p.endswith(".parquet") for p in written), written
    frame = pq.read_table(out.removeprefix("s3://"), filesystem=s3).to_pandas()  # the directory as one data set
    assert scored.path == out and scored.n == len(frame) == ROWS and scored.files == len(written)
    assert {"file", "row_hash", "split", "prediction", "confidence", "target", "output"} <= set(frame.columns)

    expected, outs, ys = _in_process(manifest, problem, net)
    got = list(zip(frame["file"].astype(int), frame["row_hash"].astype(np.uint64).astype(object).map(int)))
    assert len(set(got)) == ROWS and set(got) == set(expected)  # every row of every file, once
    want = np.array([expected[k] for k in got])
    assert np.array_equal(frame["prediction"].to_numpy(), want[:, 0].astype(int))
    assert np.allclose(frame["confidence"].to_numpy(), want[:, 1], atol=1e-5)
    assert np.array_equal(frame["target"].to_numpy(), want[:, 2].astype(int))
    assert len(set(want[:, 0])) > 3  # a model that tells digits apart, not one constant answer
    hashes = frame["row_hash"].to_numpy().astype(np.uint64)
    assert list(frame["split"]) == list(np.array(["train", "val", "test"])[split_of(hashes, manifest.fractions)])

    loss = float(problem.loss()(outs, ys))
    accuracy = float((outs.argmax(1) == ys).float().mean())
    assert scored.metrics["data/loss"] == pytest.approx(loss, rel=1e-5)
    assert scored.metrics["data/accuracy"] == pytest.approx(accuracy, abs=1e-9)


NO_ROWS_MODULE = """
from dataclasses import replace
from tasks.problems import digits
PROBLEM = replace(digits.PROBLEM, name="rowless-digits", rows=None)
"""


def test_a_problem_without_rows_is_refused_shards_naming_the_fix(digits_shards, model, tmp_path, monkeypatch):
    """Before any Ray work: by the Ray glue, and by load_data (the Flyte task) before any cluster exists."""
    import ray
    from flytekit.types.file import FlyteFile

    from tasks.flyte.predict import ModelRef, load_data
    from tasks.ray_glue.predict import run_predict_shards

    (tmp_path / "rowless.py").write_text(NO_ROWS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    digits = load_problem("digits")
    manifest = resolve(str(digits_shards), digits, "digits")
    started = ray.is_initialized()
    fix = r"declares no `rows`.*give its Problem a Rows\(columns, decode, encode\), or give an \.npz file"
    with pytest.raises(DataError, match=fix):
        run_predict_shards(manifest, "rowless:PROBLEM", model[1], model[2], str(tmp_path / "out"))
    assert ray.is_initialized() == started and not (tmp_path / "out").exists()

    weights = tmp_path / "model.pt"
    weights.write_bytes(model[2])
    ref = dict(model="m#s", artifact="m", version="v0.1.0", stage="s", repo="r", rev="0" * 40, path="model.pt")
    rowless = ModelRef(
        **ref, problem="rowless:PROBLEM", hyperparams=model[1], data_sha256="", test={}, file=FlyteFile(str(weights))
    )
    with pytest.raises(Exception, match=fix):
        load_data(dataset=str(digits_shards), model=rowless)
    batch = load_data(
        dataset=str(digits_shards),
        model=ModelRef(
            **{**ref, "problem": "digits"}, hyperparams=model[1], data_sha256="", test={}, file=FlyteFile(str(weights))
        ),
    )
    assert batch.shards is not None and batch.n == ROWS and batch.nbytes == 0 and len(batch.shards.files) == FILES


def test_metrics_added_batch_by_batch_equal_the_metrics_over_all_rows_a_torchmetric_included():
    """What the streamed scoring adds per file: the loss and sums exactly, a TorchMetric (macro-F1) by its object."""
    from examples.custom_loop import PROBLEM
    from tasks.ray_glue.predict import MetricSums
    from tasks.training.baselines import scores_of

    gen = torch.Generator().manual_seed(0)
    out, y = torch.randn(1000, 10, generator=gen), torch.randint(0, 10, (1000,), generator=gen)
    sums = MetricSums(PROBLEM)
    for i in range(0, 1000, 300):  # uneven batches
        sums.add(out[i : i + 300], y[i : i + 300])
    whole = {k.replace("all/", "data/"): v for k, v in scores_of(PROBLEM, out.numpy(), y.numpy(), "all").items()}
    assert set(sums.scores()) == set(whole) == {"data/loss", "data/accuracy", "data/f1_macro"}
    assert sums.scores() == pytest.approx(whole, rel=1e-6)
