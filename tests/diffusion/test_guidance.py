"""Classifier-free guidance and condition dropout (docs/conditioning.md §3): the combination's closed forms, the
batched 2B call, the null condition, and the dropout rate."""

import pytest
import torch

from ractd.diffusion import (
    DDPMConfig,
    cfg_combine,
    condition_dropout_mask,
    drop_condition,
    guided,
    null_condition,
    sample_ddpm,
)

torch.set_num_threads(1)


class Recorder:
    """A deterministic conditional network that remembers the batch size of every call."""

    def __init__(self):
        self.batches: list[int] = []
        g = torch.Generator().manual_seed(0)
        self.w = torch.randn(5, 2, generator=g)

    def __call__(self, x, t, cond=None):
        self.batches.append(x.shape[0])
        c = cond.flatten(1) @ self.w  # (B, 2): the condition moves the output
        return torch.tanh(x) * 0.5 + c[:, None, :] + 0.01 * t.reshape(-1, 1, 1)


def test_cfg_combine_closed_forms():
    cond, null = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 3.0])
    torch.testing.assert_close(cfg_combine(cond, null, 1.3), 2.3 * cond - 1.3 * null)
    assert torch.equal(cfg_combine(cond, null, 0.0), cond)  # λ = 0: the conditional output
    for lam in (0.0, 0.7, 1.3, 4.0):
        torch.testing.assert_close(cfg_combine(cond, null, 1 + lam, "interp"), cfg_combine(cond, null, lam, "ho"))
        torch.testing.assert_close(cfg_combine(null, null, lam), null)  # equal predictions are a fixed point
    with pytest.raises(ValueError, match="guidance form must be one of"):
        cfg_combine(cond, null, 1.0, "cfg++")


def test_guided_net_is_one_batched_call_and_combines():
    net = Recorder()
    x, t, cond = torch.randn(3, 4, 2), torch.tensor([5.0, 6.0, 7.0]), torch.randn(3, 1, 5)
    out = guided(net, 1.3)(x, t, cond=cond)
    assert net.batches == [6]  # conditional and null together: 2B
    expected = 2.3 * net(x, t, cond=cond) - 1.3 * net(x, t, cond=torch.zeros_like(cond))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(guided(net, 0.0)(x, t, cond=cond), net(x, t, cond=cond))  # λ = 0
    torch.testing.assert_close(guided(net, 2.3, form="interp")(x, t, cond=cond), out)
    # with the null condition as the condition, every λ gives the unconditional output
    uncond = net(x, t, cond=torch.zeros_like(cond))
    for lam in (0.5, 1.0, 3.0):
        torch.testing.assert_close(guided(net, lam)(x, t, cond=torch.zeros_like(cond)), uncond)
    with pytest.raises(ValueError, match="needs a condition"):
        guided(net, 1.0)(x, t)
    with pytest.raises(ValueError, match="guidance form"):
        guided(net, 1.0, form="x")


def test_learned_null_condition():
    net = Recorder()
    null = torch.randn(1, 5)
    x, t, cond = torch.randn(2, 4, 2), torch.tensor([1.0, 2.0]), torch.randn(2, 1, 5)
    expected = 2.0 * net(x, t, cond=cond) - 1.0 * net(x, t, cond=null.expand(2, 1, 5))
    torch.testing.assert_close(guided(net, 1.0, null=null)(x, t, cond=cond), expected)
    torch.testing.assert_close(guided(net, 2.0, null=null)(x, t, cond=null.expand(2, 1, 5)),
                               net(x, t, cond=null.expand(2, 1, 5)))
    assert torch.equal(null_condition(cond), torch.zeros_like(cond))
    with pytest.raises(ValueError, match=r"null condition of shape \(5,\) does not match"):
        null_condition(cond, torch.zeros(5))


def test_guided_ddpm_sampling_makes_T_calls_of_2B():
    net = Recorder()
    cfg = DDPMConfig(num_train_steps=12)
    out = sample_ddpm(guided(net, 1.0), torch.randn(3, 4, 2), torch.randn(3, 1, 5), cfg,
                      generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 4, 2)
    assert net.batches == [6] * 12


def test_condition_dropout_rate_over_10000_draws():
    g = torch.Generator().manual_seed(0)
    cond = torch.randn(10_000, 3, 4, generator=g) + 5  # no row is zero by chance
    dropped = drop_condition(cond, 0.1, g)
    is_null = (dropped == 0).all(dim=(1, 2))
    kept = (dropped == cond).all(dim=(1, 2))
    assert bool((is_null | kept).all())  # each sample is either kept whole or dropped whole
    assert float(is_null.float().mean()) == pytest.approx(0.10, abs=0.01)
    assert float(condition_dropout_mask(10_000, 0.1, g).float().mean()) == pytest.approx(0.10, abs=0.01)
    assert bool((drop_condition(cond, 0.0, g) == cond).all())
    assert bool((drop_condition(cond, 1.0, g) == 0).all())
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        drop_condition(cond, 1.5, g)


def test_condition_dropout_to_a_learned_null_passes_gradients():
    g = torch.Generator().manual_seed(1)
    null = torch.zeros(2, 3, requires_grad=True)
    cond = torch.ones(1000, 2, 3)
    out = drop_condition(cond, 0.1, g, null=null)
    n_dropped = int((out[:, 0, 0] == 0).sum())
    assert 50 < n_dropped < 150
    out.sum().backward()
    assert torch.equal(null.grad, torch.full((2, 3), float(n_dropped)))  # one unit per dropped sample and entry
