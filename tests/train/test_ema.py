"""EMA with the power schedule of docs/algorithm.md §3.5: ema_decay against hand values, EMA.update by hand."""

import pytest
import torch
from torch import nn

from ractd.train.ema import EMA, ema_decay


@pytest.mark.parametrize("update,expected", [
    (0, 0.0),                      # first two updates copy the model
    (1, 0.0),
    (2, 0.4053964424986395),       # 1 − 2^(−3/4)
    (3, 0.5613086623491692),       # 1 − 3^(−3/4)
    (11, 0.8344399739238298),      # 1 − 11^(−3/4)
    (215443, 0.9998999998367307),  # just below the cap: (1 + k′)^(3/4) < 10^4 until k′ ≈ 10^(16/3) − 1
    (215444, 0.9999),              # clamped to max_decay
    (10**9, 0.9999),
])
def test_ema_decay_hand_values(update, expected):
    assert ema_decay(update) == pytest.approx(expected, abs=1e-13)


def test_ema_decay_knobs():
    assert ema_decay(3, power=1.0) == pytest.approx(1 - 1 / 3)  # 1 − (1 + 2)^−1
    assert ema_decay(10**6, max_decay=0.99) == 0.99
    with pytest.raises(ValueError, match="update_index must be >= 0"):
        ema_decay(-1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)
        self.register_buffer("count", torch.zeros(1))


def test_ema_update_averages_trainable_and_copies_frozen_params_and_buffers():
    net = Net()
    ema = EMA(net)
    history = []
    for k in range(4):
        with torch.no_grad():
            net.lin.weight.fill_(float(k + 1))
            net.frozen.fill_(10.0 * k)
            net.count.fill_(k)
        history.append(ema.update(net))
    assert history == [0.0, 0.0, ema_decay(2), ema_decay(3)] and ema.updates == 4
    # weights 1, 2, 3, 4 through decays 0, 0, d2, d3
    d2, d3 = ema_decay(2), ema_decay(3)
    expected = ((2 * d2 + 3 * (1 - d2)) * d3) + 4 * (1 - d3)
    assert torch.allclose(ema.averaged.lin.weight, torch.full((1, 2), expected))
    assert torch.equal(ema.averaged.frozen, net.frozen) and torch.equal(ema.averaged.count, net.count)
    assert not ema.averaged.training and not any(p.requires_grad for p in ema.averaged.parameters())
    assert net.lin.weight.requires_grad  # the online model is untouched


def test_batchnorm_parameters_are_copied_not_averaged():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(net)
    for _ in range(3):
        ema.update(net)
    with torch.no_grad():
        net[1].weight.fill_(5.0)
        net[0].weight.fill_(5.0)
    ema.update(net)
    assert torch.equal(ema.averaged[1].weight, net[1].weight)
    assert not torch.equal(ema.averaged[0].weight, net[0].weight)
