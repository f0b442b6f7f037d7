"""tasks/model.py and tasks/training.py: the ConvNet, one epoch, evaluation, loaders, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from tasks.model import ConvNet
from tasks.settings import HyperParams
from tasks.training import EvalSums, build, evaluate, make_loader, seed_everything, train_epoch


@pytest.fixture(scope="module")
def small_mnist(embedded_splits):
    """500 real training digits and 500 held-out ones from the embedded set."""
    s = embedded_splits
    return s.x_train[:500], s.y_train[:500], s.x_test[:500], s.y_test[:500]


# --------------------------------------------------------------------------- model


@pytest.mark.parametrize("batch", [1, 7])
def test_convnet_output_shape(batch):
    model = ConvNet()
    out = model(torch.zeros(batch, 1, 28, 28))
    assert out.shape == (batch, 10)
    assert out.dtype == torch.float32


def test_convnet_num_classes():
    assert ConvNet(num_classes=3)(torch.rand(4, 1, 28, 28)).shape == (4, 3)


def test_convnet_gradients_reach_every_parameter():
    model = ConvNet()
    model(torch.rand(2, 1, 28, 28)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), name


# --------------------------------------------------------------------------- train_epoch / evaluate


def test_train_epoch_lowers_the_loss(small_mnist):
    x_tr, y_tr, x_te, y_te = small_mnist
    model, opt = build(HyperParams(lr=0.05, momentum=0.9, batch_size=32), seed=0)
    test_loader = make_loader(x_te, y_te, 256, shuffle=False)
    before = evaluate(model, test_loader)
    loader = make_loader(x_tr, y_tr, 32, shuffle=True, seed=0)
    losses = [train_epoch(model, loader, opt, epoch) for epoch in range(3)]
    after = evaluate(model, test_loader)
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    assert losses[-1] < 0.8 * np.log(10)  # well below chance-level cross-entropy
    assert after.loss < before.loss
    assert after.accuracy > 0.5 > before.accuracy  # chance is 0.1


def test_train_epoch_returns_mean_loss_and_updates_weights():
    seed_everything(0)
    x = torch.rand(40, 1, 28, 28).numpy()
    y = (np.arange(40) % 10).astype(np.int64)
    model, opt = build(HyperParams(lr=0.01, momentum=0.0, batch_size=16), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    expected = nn.CrossEntropyLoss()(model(torch.tensor(x)), torch.tensor(y)).item()
    # lr=0 makes the mean over batches equal the loss of the unchanged model on all the data.
    for g in opt.param_groups:
        g["lr"] = 0.0
    loss = train_epoch(model, make_loader(x, y, 16, shuffle=False), opt)
    assert loss == pytest.approx(expected, rel=1e-5)
    for g in opt.param_groups:
        g["lr"] = 0.01
    train_epoch(model, make_loader(x, y, 16, shuffle=False), opt)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_sums_are_consistent(small_mnist):
    _, _, x_te, y_te = small_mnist
    x_te, y_te = x_te[:203], y_te[:203]  # a last partial batch
    model, _ = build(HyperParams(), seed=1)
    sums = evaluate(model, make_loader(x_te, y_te, 64, shuffle=False))
    assert isinstance(sums, EvalSums)
    assert sums.count == 203
    assert 0 <= sums.correct <= sums.count
    assert sums.accuracy == pytest.approx(sums.correct / sums.count)
    assert sums.loss == pytest.approx(sums.loss_sum / sums.count)
    with torch.no_grad():
        out = model(torch.tensor(x_te))
        correct = int((out.argmax(1) == torch.tensor(y_te)).sum())
        loss_sum = nn.CrossEntropyLoss(reduction="sum")(out, torch.tensor(y_te)).item()
    assert sums.correct == correct
    assert sums.loss_sum == pytest.approx(loss_sum, rel=1e-4)
    assert not model.training  # evaluate leaves the model in eval mode


def test_evaluate_does_not_depend_on_batch_size(small_mnist):
    _, _, x_te, y_te = small_mnist
    model, _ = build(HyperParams(), seed=2)
    a = evaluate(model, make_loader(x_te, y_te, 7, shuffle=False))
    b = evaluate(model, make_loader(x_te, y_te, 500, shuffle=True, seed=5))
    assert (a.correct, a.count) == (b.correct, b.count)
    assert a.loss_sum == pytest.approx(b.loss_sum, rel=1e-4)


def test_eval_sums_add_across_workers_and_handle_zero_count():
    a, b = EvalSums(3.0, 2, 4), EvalSums(1.0, 3, 4)
    total = EvalSums(a.loss_sum + b.loss_sum, a.correct + b.correct, a.count + b.count)
    assert total.loss == pytest.approx(0.5)
    assert total.accuracy == pytest.approx(5 / 8)
    empty = EvalSums(0.0, 0, 0)
    assert empty.loss == 0.0 and empty.accuracy == 0.0


# --------------------------------------------------------------------------- make_loader


def _labels_in_order(loader) -> list[int]:
    return [int(v) for _, yb in loader for v in yb]


@pytest.mark.parametrize("shuffle", [False, True])
def test_make_loader_two_ranks_are_disjoint_shards_covering_the_data(shuffle):
    n = 50
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    y = np.arange(n, dtype=np.int64)  # the label is the sample's id
    shards = [
        _labels_in_order(make_loader(x, y, 8, shuffle=shuffle, seed=3, rank=r, world_size=2)) for r in range(2)
    ]
    assert len(shards[0]) == len(shards[1]) == n // 2
    assert set(shards[0]).isdisjoint(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(n))


def test_make_loader_distributed_uses_a_distributed_sampler():
    x = np.zeros((10, 1, 28, 28), dtype=np.float32)
    y = np.arange(10, dtype=np.int64)
    loader = make_loader(x, y, 4, shuffle=True, rank=1, world_size=2)
    assert isinstance(loader.sampler, DistributedSampler)
    assert loader.sampler.rank == 1 and loader.sampler.num_replicas == 2
    assert not isinstance(make_loader(x, y, 4, shuffle=True).sampler, DistributedSampler)


def test_train_epoch_sets_the_sampler_epoch():
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    y = (np.arange(16) % 10).astype(np.int64)
    loader = make_loader(x, y, 4, shuffle=True, seed=0, rank=0, world_size=2)
    model, opt = build(HyperParams(), seed=0)
    order0 = _labels_in_order(loader)
    train_epoch(model, loader, opt, epoch=3)
    assert loader.sampler.epoch == 3
    loader.sampler.set_epoch(0)
    assert _labels_in_order(loader) == order0


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


def test_make_loader_copies_read_only_arrays():
    x = np.zeros((8, 1, 28, 28), dtype=np.float32)
    y = np.arange(8, dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    loader = make_loader(x, y, 8, shuffle=False)
    xb, yb = next(iter(loader))
    xb += 1  # writable, and not the caller's memory
    assert x.max() == 0.0
    assert yb.dtype == torch.int64


# --------------------------------------------------------------------------- determinism


def _one_epoch_weights(x, y, seed: int) -> dict[str, torch.Tensor]:
    hp = HyperParams(lr=0.05, momentum=0.9, batch_size=32)
    model, opt = build(hp, seed=seed)
    train_epoch(model, make_loader(x, y, hp.batch_size, shuffle=True, seed=seed), opt, epoch=0)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_seed_gives_identical_weights_after_one_epoch(small_mnist):
    x, y = small_mnist[0][:256], small_mnist[1][:256]
    a = _one_epoch_weights(x, y, seed=11)
    torch.manual_seed(12345)  # global state in between must not matter: build() reseeds
    b = _one_epoch_weights(x, y, seed=11)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_another_seed_gives_different_weights(small_mnist):
    x, y = small_mnist[0][:256], small_mnist[1][:256]
    a = _one_epoch_weights(x, y, seed=11)
    b = _one_epoch_weights(x, y, seed=12)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_build_initializes_from_the_seed():
    a, _ = build(HyperParams(), seed=4)
    b, _ = build(HyperParams(), seed=4)
    c, _ = build(HyperParams(), seed=5)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.head[1].weight, c.head[1].weight)


def test_build_optimizer_uses_the_hyper_parameters():
    model, opt = build(HyperParams(lr=0.123, momentum=0.45, batch_size=8), seed=0)
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.123) and group["momentum"] == pytest.approx(0.45)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
