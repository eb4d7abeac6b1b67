"""DDPM/DDIM baseline (ε-prediction, cosine schedule) against closed forms for Gaussian data.

For x0 ~ N(μ, s²) and x_t = √ᾱ x0 + √(1 − ᾱ) ε, the exact ε-predictor is
E[ε | x_t] = √(1 − ᾱ)·(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ) and its residual variance is ᾱ s²/(ᾱ s² + 1 − ᾱ).
"""

import math

import pytest
import torch

from ractd.diffusion import DDPMConfig, cosine_alpha_bars, ddpm_loss, sample_ddim

torch.set_num_threads(1)

CFG = DDPMConfig()
ALPHA_BAR = cosine_alpha_bars(CFG)


def f(t: float) -> float:
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def exact_eps(mu: torch.Tensor, std: torch.Tensor):
    def net(x, t, cond=None):
        a = ALPHA_BAR[t.long()].reshape(-1, 1, 1)
        return (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * std**2 + 1 - a)

    return net


def test_cosine_alpha_bars_monotone_in_unit_interval():
    assert ALPHA_BAR.shape == (100,)
    assert bool((ALPHA_BAR > 0).all()) and bool((ALPHA_BAR <= 1).all())
    assert bool((ALPHA_BAR[1:] < ALPHA_BAR[:-1]).all())


def test_cosine_alpha_bars_closed_form():
    # the betas telescope: ᾱ_t = f((t + 1)/T)/f(0) while β < β_max; the last β is capped at 0.999
    expected = torch.tensor([f((t + 1) / 100) / f(0) for t in range(99)])
    torch.testing.assert_close(ALPHA_BAR[:99], expected, rtol=1e-5, atol=1e-9)
    assert float(ALPHA_BAR[99]) == pytest.approx(float(ALPHA_BAR[98]) * (1 - 0.999), rel=1e-5)
    assert len(cosine_alpha_bars(DDPMConfig(num_train_steps=10))) == 10


def test_ddpm_loss_of_the_exact_predictor_is_the_residual_variance():
    mu, std = torch.linspace(-0.5, 0.5, 8).reshape(4, 2), torch.linspace(0.1, 0.4, 8).reshape(4, 2)
    g = torch.Generator().manual_seed(0)
    x0 = mu + std * torch.randn(40_000, 4, 2, generator=g)
    a = ALPHA_BAR[:, None, None]
    expected = float((a * std**2 / (a * std**2 + 1 - a)).mean())  # t uniform on 0..T−1
    assert float(ddpm_loss(exact_eps(mu, std), x0, None, CFG, g)) == pytest.approx(expected, abs=0.005)
    zero = float(ddpm_loss(lambda x, t, cond=None: torch.zeros_like(x), x0, None, CFG, g))
    assert zero == pytest.approx(1.0, abs=0.01)  # E ε² = 1
    assert expected < 0.25  # the two checks are far apart


def test_ddpm_loss_passes_timestep_and_condition():
    seen = {}

    def net(x, t, cond=None):
        seen.update(t=t, cond=cond)
        return torch.zeros_like(x)

    cond = torch.randn(64, 3)
    ddpm_loss(net, torch.zeros(64, 4, 2), cond, CFG, torch.Generator().manual_seed(0))
    assert seen["cond"] is cond and seen["t"].dtype.is_floating_point
    assert 0 <= float(seen["t"].min()) and float(seen["t"].max()) <= 99


def ddim_errors(mu, std, cfg, steps, n=4000):
    x = torch.randn(n, 4, 2, generator=torch.Generator().manual_seed(1))
    out = sample_ddim(exact_eps(mu, std), x, None, cfg, steps)
    return float((out.mean(0) - mu).abs().max()), float((out.std(0) / std - 1).abs().max())


def test_ddim_with_the_exact_predictor_matches_gaussian_moments():
    mu, std = torch.linspace(-0.5, 0.5, 8).reshape(4, 2), torch.linspace(0.1, 0.4, 8).reshape(4, 2)
    no_clip = DDPMConfig(clip_sample=False)  # this Gaussian has mass beyond ±1
    mean_err, std_err = ddim_errors(mu, std, no_clip, 100)
    assert mean_err < 5 * 0.4 / math.sqrt(4000)
    assert std_err < 0.08  # DDIM is first order: measured 5.5 % at 100 steps
    # …and it converges: fewer steps, larger error in the spread
    errors = [ddim_errors(mu, std, no_clip, k)[1] for k in (5, 20, 100)]
    assert errors[0] > errors[1] > errors[2]


def test_ddim_clip_sample_is_inactive_for_data_inside_the_box():
    mu, std = torch.linspace(-0.3, 0.3, 8).reshape(4, 2), torch.full((4, 2), 0.12)
    clipped, plain = (ddim_errors(mu, std, c, 100) for c in (CFG, DDPMConfig(clip_sample=False)))
    assert clipped == pytest.approx(plain, abs=1e-4)
    assert clipped[1] < 0.08


def test_ddim_network_evaluations_and_timesteps():
    calls = []

    def net(x, t, cond=None):
        calls.append(float(t[0]))
        return torch.zeros_like(x)

    for k in (1, 10, 100):
        calls.clear()
        sample_ddim(net, torch.randn(2, 4, 2), None, CFG, k)
        assert len(calls) == k and calls[0] == 99.0
        assert calls == sorted(calls, reverse=True) and len(set(calls)) == k
    # zero ε with no clip at one step: x0_hat = x/√ᾱ_99, output = x0_hat (ᾱ_prev = 1)
    x = torch.randn(2, 4, 2)
    out = sample_ddim(lambda x, t, cond=None: torch.zeros_like(x), x, None, DDPMConfig(clip_sample=False), 1)
    torch.testing.assert_close(out, x / ALPHA_BAR[99].sqrt())
    with pytest.raises(ValueError, match=r"num_steps must be in \[1, 100\]"):
        sample_ddim(net, x, None, CFG, 0)
    with pytest.raises(ValueError, match=r"num_steps must be in \[1, 100\]"):
        sample_ddim(net, x, None, CFG, 101)
