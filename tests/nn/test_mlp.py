"""Residual reward MLP (docs/algorithm.md §2.2) and the inverse-dynamics MLP: structure by hand, parameter counts."""

import pytest
import torch
from torch import nn

from ractd.nn import InverseDynamics, ResidualMLP, count_parameters
from ractd.nn.mlp import ResidualLinearBlock

torch.set_num_threads(1)


def hand_count(d_in: int, dims: list[int]) -> int:
    """Two residual blocks per pair (A: d_in→d_out with a projection skip, B: d_out→d_out identity), head → 1."""
    def lin(a, b):
        return a * b + b

    total = 0
    for i, o in zip([d_in, *dims[:-1]], dims, strict=True):
        total += lin(i, o) + lin(o, o) + (lin(i, o) if i != o else 0)  # block A
        total += 2 * lin(o, o)  # block B
    return total + lin(dims[-1], 1)


def test_reward_mlp_parameter_count():
    # hopper reward input: action (3) + observation (11) = 14; docs/algorithm.md §2.2: ≈ 0.34 M
    net = ResidualMLP(14, (64, 128, 256))
    assert count_parameters(net) == hand_count(14, [64, 128, 256]) == 344_257
    assert count_parameters(ResidualMLP(4)) == hand_count(4, [64, 128, 256])


def test_reward_mlp_has_no_norm_no_dropout_no_activation_between_blocks():
    net = ResidualMLP(14)
    kinds = {type(m) for m in net.modules()}
    assert not kinds & {nn.Dropout, nn.LayerNorm, nn.BatchNorm1d, nn.GroupNorm}
    assert len(net.blocks) == 6 and all(isinstance(b, ResidualLinearBlock) for b in net.blocks)
    x = torch.randn(5, 14)
    h = x
    for b in net.blocks:  # plain composition: the output of a block is linear (no activation after it)
        h = b(h)
    torch.testing.assert_close(net(x), net.head(h).squeeze(-1))


def test_residual_block_by_hand():
    torch.manual_seed(0)
    proj, ident = ResidualLinearBlock(3, 5), ResidualLinearBlock(5, 5)
    x = torch.randn(4, 3)
    expected = proj.fc2(nn.functional.mish(proj.fc1(x))) + x @ proj.skip.weight.T + proj.skip.bias
    torch.testing.assert_close(proj(x), expected)
    y = torch.randn(4, 5)
    torch.testing.assert_close(ident(y), ident.fc2(nn.functional.mish(ident.fc1(y))) + y)
    assert isinstance(ident.skip, nn.Identity)


def test_reward_mlp_output_shape_and_gradient_to_input():
    net = ResidualMLP(8)
    x = torch.randn(7, 8, requires_grad=True)
    out = net(x)
    assert out.shape == (7,)
    out.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert ResidualMLP(8, output_dim=3)(torch.randn(2, 8)).shape == (2, 3)
    assert ResidualMLP(4)(torch.randn(2, 16, 4)).shape == (2, 16)  # Maze2d: every state of a window


def test_inverse_dynamics():
    net = InverseDynamics(4, 2, (32, 32))
    s, s_next = torch.randn(6, 4), torch.randn(6, 4)
    assert net(s, s_next).shape == (6, 2)
    assert count_parameters(net) == (8 * 32 + 32) + (32 * 32 + 32) + (32 * 2 + 2)
    torch.testing.assert_close(net(s, s_next), net.net(torch.cat([s, s_next], -1)))
    assert not torch.allclose(net(s, s_next), net(s_next, s))  # order of the transition matters


@pytest.mark.parametrize("dims", [(64, 128, 256), (32, 64, 128, 256)])
def test_reward_mlp_dims(dims):
    net = ResidualMLP(14, dims)
    assert net.head.in_features == dims[-1] and len(net.blocks) == 2 * len(dims)
