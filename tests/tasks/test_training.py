"""tasks/training/loop.py: loaders and the DDP batch split, seeding, one epoch, evaluation and the sums that
add across workers, for both built-in problems (and the models they build)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from tasks.problem import complete, metric_key
from tasks.problems.digits import ConvNet
from tasks.training.loop import (
    EvalSums,
    build,
    effective_global_batch,
    evaluate,
    make_loader,
    seed_everything,
    start_from_data,
    train_epoch,
    worker_batch_size,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a small shared machine, two threads spin-wait on each other (10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def small_digits(embedded_splits):
    """800 real training digits and the 500 validation digits of the embedded set."""
    s = embedded_splits
    return s.x_train[:800], s.y_train[:800], s.x_val, s.y_val


def _small_hp(problem, **values):
    """Hyper-parameters for a quick model: a narrow ConvNet for digits, the defaults otherwise."""
    if problem.name == "digits":
        values = {"channels": 4, "hidden": 16, **values}
    return complete(problem, values)


def _labels_in_order(loader) -> list[int]:
    return [int(v) for _, yb in loader for v in yb]


# --------------------------------------------------------------------------- the models


@pytest.mark.parametrize("batch", [1, 7])
def test_convnet_output_shape(batch):
    out = ConvNet()(torch.zeros(batch, 1, 28, 28))
    assert out.shape == (batch, 10) and out.dtype == torch.float32


def test_convnet_gradients_reach_every_parameter():
    model = ConvNet(channels=4, hidden=8)
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), name


def test_models_follow_their_hyper_parameters(digits_problem, diabetes_problem):
    narrow = digits_problem.build_model(complete(digits_problem, {"channels": 4, "hidden": 8}))
    wide = digits_problem.build_model(complete(digits_problem, {}))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(narrow) < count(wide)
    mlp = diabetes_problem.build_model(complete(diabetes_problem, {"layers": 3, "hidden": 32}))
    assert sum(isinstance(m, nn.Linear) for m in mlp.modules()) == 5  # three hidden layers, the output, the linear path
    out = mlp.eval()(torch.zeros(5, 10))
    assert out.shape == (5,)  # one real value per row, as the targets
    assert torch.all(out.isfinite())


# --------------------------------------------------------------------------- loaders


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("world_size", [2, 5])
def test_make_loader_ranks_are_disjoint_shards_covering_the_data(shuffle, world_size):
    n = 50
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    y = np.arange(n, dtype=np.int64)  # the label is the sample's id
    shards = [
        _labels_in_order(make_loader(x, y, 8, shuffle=shuffle, seed=3, rank=r, world_size=world_size))
        for r in range(world_size)
    ]
    assert all(len(shard) == n // world_size for shard in shards)
    for i in range(world_size):
        for j in range(i + 1, world_size):
            assert set(shards[i]).isdisjoint(shards[j])
    assert sorted(sum(shards, [])) == list(range(n))


def test_one_worker_and_many_see_the_same_epoch_order():
    """The shuffled order of one worker, dealt out round-robin, is what the ranks of many see."""
    x = np.zeros((60, 3), dtype=np.float32)
    y = np.arange(60, dtype=np.int64)
    whole = _labels_in_order(make_loader(x, y, 7, shuffle=True, seed=9))
    assert sorted(whole) == list(range(60)) and whole != list(range(60))
    for world in (2, 3):
        for rank in range(world):
            shard = _labels_in_order(make_loader(x, y, 7, shuffle=True, seed=9, rank=rank, world_size=world))
            assert shard == whole[rank::world]


def test_make_loader_uses_a_distributed_sampler_for_shuffling_and_sharding():
    x = np.zeros((10, 1, 28, 28), dtype=np.float32)
    y = np.arange(10, dtype=np.int64)
    loader = make_loader(x, y, 4, shuffle=True, rank=1, world_size=2)
    assert isinstance(loader.sampler, DistributedSampler)
    assert loader.sampler.rank == 1 and loader.sampler.num_replicas == 2
    single = make_loader(x, y, 4, shuffle=True)
    assert isinstance(single.sampler, DistributedSampler) and single.sampler.num_replicas == 1
    assert not isinstance(make_loader(x, y, 4, shuffle=False).sampler, DistributedSampler)


def test_make_loader_shuffle_is_seeded():
    x = np.zeros((64, 1, 28, 28), dtype=np.float32)
    y = np.arange(64, dtype=np.int64)
    a = _labels_in_order(make_loader(x, y, 16, shuffle=True, seed=1))
    b = _labels_in_order(make_loader(x, y, 16, shuffle=True, seed=1))
    c = _labels_in_order(make_loader(x, y, 16, shuffle=True, seed=2))
    assert a == b
    assert a != c
    assert sorted(a) == list(range(64))
    assert _labels_in_order(make_loader(x, y, 16, shuffle=False)) == list(range(64))


def test_train_epoch_sets_the_sampler_epoch(digits_problem):
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    y = (np.arange(16) % 10).astype(np.int64)
    loader = make_loader(x, y, 4, shuffle=True, seed=0, rank=0, world_size=2)
    model, opt = build(digits_problem, _small_hp(digits_problem), seed=0)
    order0 = _labels_in_order(loader)
    train_epoch(model, loader, opt, digits_problem.loss(), epoch=3)
    assert loader.sampler.epoch == 3
    order3 = _labels_in_order(loader)
    assert order3 != order0 and len(order3) == len(order0)  # a new order each epoch
    loader.sampler.set_epoch(0)
    assert _labels_in_order(loader) == order0


def test_make_loader_copies_read_only_arrays():
    x = np.zeros((8, 1, 28, 28), dtype=np.float32)
    y = np.arange(8, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    xb, yb = next(iter(make_loader(x, y, 8, shuffle=False)))
    xb += 1  # writable, and not the caller's memory
    assert x.max() == 0.0
    assert yb.dtype == torch.int64


def test_make_loader_reads_shared_arrays_in_place_copying_only_batches():
    """A trial or DDP worker reads the node's one object-store copy: the loader holds the caller's read-only
    arrays, and a whole epoch allocates about one batch at a time, never a copy of the data."""
    import tracemalloc

    x = np.random.default_rng(0).random((20_000, 256), dtype=np.float32)  # 20 MB; the sampler's index list is ~0.8 MB
    y = np.arange(20_000, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    for loader in (
        make_loader(x, y, 32, shuffle=True, seed=0, rank=1, world_size=2),
        make_loader(x, y, 512, shuffle=False),
    ):
        assert np.shares_memory(loader.dataset.x, x) and np.shares_memory(loader.dataset.y, y)
        tracemalloc.start()
        seen = sum(len(yb) for _, yb in loader)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seen == (len(y) // 2 if isinstance(loader.sampler, DistributedSampler) else len(y))
        assert peak < x.nbytes / 10, f"an epoch allocated {peak} bytes for {x.nbytes} bytes of data"


def test_make_loader_batches_are_the_samples_the_sampler_chose():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64)
    for xb, yb in make_loader(x, y, 4, shuffle=True, seed=2):
        assert torch.equal(xb, torch.from_numpy(x[yb.numpy()]))


def test_make_loader_keeps_real_targets_float32(diabetes_splits):
    s = diabetes_splits
    xb, yb = next(iter(make_loader(s.x_train, s.y_train, 32, shuffle=True, seed=0)))
    assert xb.shape == (32, 10) and xb.dtype == torch.float32 and yb.dtype == torch.float32


# --------------------------------------------------------------------------- the DDP batch split


@pytest.mark.parametrize(
    ("global_batch", "world", "each", "effective"),
    [
        (64, 1, 64, 64),
        (64, 2, 32, 64),
        (64, 3, 21, 63),
        (128, 4, 32, 128),
        (100, 3, 33, 99),
        (32, 5, 6, 30),
        (64, 5, 13, 65),
        (128, 3, 43, 129),
        (1, 4, 1, 4),
        (2, 8, 1, 8),
    ],
)
def test_worker_batch_size_and_effective_global_batch(global_batch, world, each, effective):
    assert worker_batch_size(global_batch, world) == each
    assert effective_global_batch(global_batch, world) == effective


def test_worker_batch_size_is_never_zero_and_close_to_the_global_batch():
    for global_batch in range(1, 200):
        for world in range(1, 9):
            each = worker_batch_size(global_batch, world)
            assert each >= 1
            if global_batch >= world:
                assert abs(effective_global_batch(global_batch, world) - global_batch) <= world / 2


# --------------------------------------------------------------------------- build and seeding


@pytest.mark.parametrize("name", ["digits", "diabetes"])
def test_build_initializes_from_the_seed(name, digits_problem, diabetes_problem):
    problem = digits_problem if name == "digits" else diabetes_problem
    hp = _small_hp(problem)
    a, _ = build(problem, hp, seed=4)
    torch.manual_seed(12345)  # global state in between must not matter: build() reseeds
    np.random.seed(1)
    b, _ = build(problem, hp, seed=4)
    c, _ = build(problem, hp, seed=5)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert any(not torch.equal(sa[k], sc[k]) for k in sa)


def test_build_optimizers_use_the_hyper_parameters(digits_problem, diabetes_problem):
    model, opt = build(digits_problem, complete(digits_problem, {"lr": 0.123, "momentum": 0.45}), seed=0)
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.123) and group["momentum"] == pytest.approx(0.45)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    model, opt = build(diabetes_problem, complete(diabetes_problem, {"lr": 0.02, "weight_decay": 0.001}), seed=0)
    assert isinstance(opt, torch.optim.Adam)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.02) and group["weight_decay"] == pytest.approx(0.001)


def _one_epoch_weights(problem, x, y, seed: int) -> dict[str, torch.Tensor]:
    hp = _small_hp(problem, batch_size=32)
    model, opt = build(problem, hp, seed=seed)
    train_epoch(model, make_loader(x, y, hp["batch_size"], shuffle=True, seed=seed), opt, problem.loss(), epoch=0)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_identical_weights_after_one_epoch(small_digits, digits_problem):
    x, y = small_digits[0][:256], small_digits[1][:256]
    a = _one_epoch_weights(digits_problem, x, y, seed=11)
    torch.manual_seed(12345)
    b = _one_epoch_weights(digits_problem, x, y, seed=11)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    c = _one_epoch_weights(digits_problem, x, y, seed=12)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_seed_everything_seeds_torch_and_numpy():
    seed_everything(3)
    a = (torch.rand(3), np.random.rand(3))
    seed_everything(3)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# --------------------------------------------------------------------------- train_epoch / evaluate


def test_a_digits_epoch_lowers_the_loss_and_raises_accuracy_above_chance(small_digits, digits_problem):
    x_tr, y_tr, x_val, y_val = small_digits
    hp = complete(digits_problem, {"lr": 0.1, "momentum": 0.9, "batch_size": 32})
    model, opt = build(digits_problem, hp, seed=0)
    val_loader = make_loader(x_val, y_val, 256, shuffle=False)
    before = evaluate(model, val_loader, digits_problem).scores(digits_problem, "val")
    initial_train = evaluate(model, make_loader(x_tr, y_tr, 256, shuffle=False), digits_problem).scores(
        digits_problem, "train"
    )
    loss = train_epoch(model, make_loader(x_tr, y_tr, 32, shuffle=True, seed=0), opt, digits_problem.loss(), epoch=0)
    after = evaluate(model, val_loader, digits_problem).scores(digits_problem, "val")
    assert before["val/loss"] == pytest.approx(math.log(10), rel=0.05)  # an untrained net guesses
    assert np.isfinite(loss) and loss < initial_train["train/loss"]
    assert after["val/loss"] < 0.9 * before["val/loss"]
    assert after["val/accuracy"] > 0.3 > before["val/accuracy"]  # chance is 0.1


def test_diabetes_epochs_lower_the_rmse(diabetes_splits, diabetes_problem):
    """From the zero start (no init_from_data), the epochs alone fit the model."""
    s = diabetes_splits
    model, opt = build(diabetes_problem, complete(diabetes_problem, {"lr": 0.01}), seed=0)
    val_loader = make_loader(s.x_val, s.y_val, 512, shuffle=False)
    before = evaluate(model, val_loader, diabetes_problem).scores(diabetes_problem, "val")
    loader = make_loader(s.x_train, s.y_train, 32, shuffle=True, seed=0)
    losses = [train_epoch(model, loader, opt, diabetes_problem.loss(), epoch) for epoch in range(5)]
    after = evaluate(model, val_loader, diabetes_problem).scores(diabetes_problem, "val")
    assert losses[-1] < losses[0]
    assert after["val/rmse"] < 0.85 * before["val/rmse"]
    assert after["val/mae"] < before["val/mae"]
    assert after["val/rmse"] < 70  # the target's standard deviation is about 77


def test_train_epoch_returns_mean_loss_and_updates_weights(digits_problem):
    seed_everything(0)
    x = torch.rand(40, 1, 28, 28).numpy()
    y = (np.arange(40) % 10).astype(np.int64)
    model, opt = build(digits_problem, _small_hp(digits_problem, lr=0.01, momentum=0.0, batch_size=16), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = nn.CrossEntropyLoss()(model(torch.tensor(x)), torch.tensor(y)).item()
    # lr=0 makes the mean over batches equal the loss of the unchanged model on all the data.
    for g in opt.param_groups:
        g["lr"] = 0.0
    loss = train_epoch(model, make_loader(x, y, 16, shuffle=False), opt, nn.CrossEntropyLoss())
    assert loss == pytest.approx(expected, rel=1e-5)
    assert model.training  # train_epoch puts the model in training mode
    for g in opt.param_groups:
        g["lr"] = 0.01
    train_epoch(model, make_loader(x, y, 16, shuffle=False), opt, nn.CrossEntropyLoss())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_sums_match_a_direct_computation(small_digits, digits_problem):
    _, _, x_val, y_val = small_digits
    x_val, y_val = x_val[:203], y_val[:203]  # a last partial batch
    model, _ = build(digits_problem, _small_hp(digits_problem), seed=1)
    sums = evaluate(model, make_loader(x_val, y_val, 64, shuffle=False), digits_problem)
    assert isinstance(sums, EvalSums)
    assert sums.count == 203
    with torch.no_grad():
        out = model(torch.tensor(x_val))
        correct = int((out.argmax(1) == torch.tensor(y_val)).sum())
        loss_sum = nn.CrossEntropyLoss(reduction="sum")(out, torch.tensor(y_val)).item()
    assert sums.sums == {"accuracy": float(correct)}
    assert sums.loss_sum == pytest.approx(loss_sum, rel=1e-4)
    assert not model.training  # evaluate leaves the model in eval mode


def test_evaluate_does_not_depend_on_batch_size_or_order(small_digits, digits_problem):
    _, _, x_val, y_val = small_digits
    model, _ = build(digits_problem, _small_hp(digits_problem), seed=2)
    a = evaluate(model, make_loader(x_val, y_val, 7, shuffle=False), digits_problem)
    b = evaluate(model, make_loader(x_val, y_val, 500, shuffle=True, seed=5), digits_problem)
    assert (a.sums["accuracy"], a.count) == (b.sums["accuracy"], b.count)
    assert a.loss_sum == pytest.approx(b.loss_sum, rel=1e-4)


def test_evaluate_disables_dropout(diabetes_splits, diabetes_problem):
    s = diabetes_splits
    model, _ = build(diabetes_problem, complete(diabetes_problem, {"dropout": 0.5}), seed=0)
    loader = make_loader(s.x_val, s.y_val, 16, shuffle=False)
    a, b = evaluate(model, loader, diabetes_problem), evaluate(model, loader, diabetes_problem)
    assert a.loss_sum == b.loss_sum and a.sums == b.sums


# --------------------------------------------------------------------------- sums across workers


def _sharded(model, x, y, problem, world: int) -> EvalSums:
    """Evaluate as the Ray Train workers do (rank r takes every world-th sample), add the vectors up."""
    names = [m.name for m in problem.metrics]
    vectors = [
        evaluate(model, make_loader(x[rank::world], y[rank::world], 64, shuffle=False), problem).as_vector(names)
        for rank in range(world)
    ]
    return EvalSums.from_vector(np.sum(vectors, axis=0).tolist(), names)


@pytest.mark.parametrize("world", [2, 3])
def test_sums_over_shards_equal_the_unsharded_evaluation(
    small_digits, diabetes_splits, digits_problem, diabetes_problem, world
):
    _, _, x_val, y_val = small_digits
    d = diabetes_splits
    for problem, x, y in ((digits_problem, x_val[:203], y_val[:203]), (diabetes_problem, d.x_val, d.y_val)):
        model, _ = build(problem, _small_hp(problem), seed=7)
        whole = evaluate(model, make_loader(x, y, 64, shuffle=False), problem)
        total = _sharded(model, x, y, problem, world)
        assert total.count == whole.count == len(y)
        assert total.loss_sum == pytest.approx(whole.loss_sum, rel=1e-5)
        assert total.sums.keys() == whole.sums.keys() == {m.name for m in problem.metrics}
        for name in whole.sums:
            assert total.sums[name] == pytest.approx(whole.sums[name], rel=1e-5)
        shard_scores, whole_scores = total.scores(problem, "val"), whole.scores(problem, "val")
        for key in whole_scores:
            assert shard_scores[key] == pytest.approx(whole_scores[key], rel=1e-5)


def test_eval_sums_vector_round_trip():
    names = ["rmse", "mae"]
    sums = EvalSums(12.5, 7, {"rmse": 3.0, "mae": 4.5})
    vector = sums.as_vector(names)
    assert vector == [12.5, 7.0, 3.0, 4.5]
    assert EvalSums.from_vector(vector, names) == sums
    assert EvalSums.from_vector([1.0, 6.9999999, 2.0], ["accuracy"]).count == 7  # float reduction noise
    assert EvalSums(1.0, 2, {}).as_vector(["accuracy"]) == [1.0, 2.0, 0.0]  # a metric not seen counts 0


def test_scores_names_keys_and_applies_finish(digits_problem, diabetes_problem):
    acc = EvalSums(loss_sum=46.0, count=20, sums={"accuracy": 15.0}).scores(digits_problem, "val")
    assert acc == {"val/loss": pytest.approx(2.3), "val/accuracy": pytest.approx(0.75)}
    reg = EvalSums(loss_sum=10000.0, count=4, sums={"rmse": 10000.0, "mae": 160.0}).scores(diabetes_problem, "test")
    assert set(reg) == {metric_key("test", n) for n in ("loss", "rmse", "mae")}
    assert reg["test/loss"] == pytest.approx(2500.0)
    assert reg["test/rmse"] == pytest.approx(50.0)  # sqrt of the mean squared error
    assert reg["test/mae"] == pytest.approx(40.0)  # no finish: the mean


def test_diabetes_starts_at_the_least_squares_fit_of_its_training_rows(diabetes_splits, diabetes_problem):
    """init_from_data: before any epoch the model predicts as a ridge regression fitted to the train split (its
    residual starts at zero), so its validation RMSE is already about its baseline's."""
    from sklearn.linear_model import Ridge

    from tasks.problems.diabetes import FEATURE_GAIN, START_RIDGE, TARGET_MEAN, TARGET_STD
    from tasks.training.baselines import score_baseline

    s = diabetes_splits
    model, _ = build(diabetes_problem, complete(diabetes_problem, {}), seed=0)
    start_from_data(diabetes_problem, model, make_loader(s.x_train, s.y_train, 64, shuffle=False))
    ridge = Ridge(alpha=START_RIDGE).fit(s.x_train * FEATURE_GAIN, (s.y_train - TARGET_MEAN) / TARGET_STD)
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor(s.x_val)).numpy()
    np.testing.assert_allclose(out, ridge.predict(s.x_val * FEATURE_GAIN) * TARGET_STD + TARGET_MEAN, atol=1e-2)
    val = evaluate(model, make_loader(s.x_val, s.y_val, 512, shuffle=False), diabetes_problem)
    baseline = score_baseline(diabetes_problem, s).scores["baseline/val/rmse"]
    assert val.scores(diabetes_problem, "val")["val/rmse"] == pytest.approx(baseline, rel=0.01)


def _start_on_rank(rank: int, world: int, store: str, x: np.ndarray, y: np.ndarray, out: str) -> None:
    import torch.distributed as dist

    from tasks.problem import load_problem

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    problem = load_problem("diabetes")
    model, _ = build(problem, complete(problem, {}), seed=rank)  # other seeds: the start must not depend on them
    shard = make_loader(x[rank::world], y[rank::world], 64, shuffle=False)
    start_from_data(problem, model, shard)  # its sums totalled over the two processes (gloo)
    torch.save(model.linear.state_dict(), f"{out}/{rank}.pt")
    dist.destroy_process_group()


def test_workers_start_from_their_shards_summed_as_one_process_does_from_the_whole_split(
    tmp_path, diabetes_splits, diabetes_problem
):
    """Two real DDP processes (gloo), each with its own shard: the statistics summed across them give every worker
    the start one process gets from all the rows."""
    import torch.multiprocessing as mp

    s = diabetes_splits
    mp.start_processes(
        _start_on_rank,
        args=(2, str(tmp_path / "store"), s.x_train, s.y_train, str(tmp_path)),
        nprocs=2,
        start_method="fork",
    )
    alone, _ = build(diabetes_problem, complete(diabetes_problem, {}), seed=0)
    start_from_data(diabetes_problem, alone, make_loader(s.x_train, s.y_train, 64, shuffle=False))
    for rank in (0, 1):
        got = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["weight"], alone.linear.weight.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got["bias"], alone.linear.bias.detach(), rtol=1e-5, atol=1e-6)


def test_scores_of_an_empty_pass_are_zero_not_an_error(digits_problem):
    assert EvalSums(sums={"accuracy": 0.0}).scores(digits_problem, "val") == {"val/loss": 0.0, "val/accuracy": 0.0}


def test_evaluated_rmse_is_the_root_of_the_mse_loss(diabetes_splits, diabetes_problem):
    s = diabetes_splits
    model, _ = build(diabetes_problem, complete(diabetes_problem, {}), seed=0)
    scores = evaluate(model, make_loader(s.x_test, s.y_test, 16, shuffle=False), diabetes_problem).scores(
        diabetes_problem, "test"
    )
    assert scores["test/rmse"] == pytest.approx(math.sqrt(scores["test/loss"]), rel=1e-5)
    with torch.no_grad():
        out = model(torch.tensor(s.x_test)).numpy()
    assert scores["test/mae"] == pytest.approx(float(np.abs(out - s.y_test).mean()), rel=1e-5)
