"""DDPM (cosine schedule; DDIM and the ancestral sampler; ε or x0 prediction) against closed forms for Gaussian data.

For x0 ~ N(μ, s²) and x_t = √ᾱ x0 + √(1 − ᾱ) ε, the exact ε-predictor is
E[ε | x_t] = √(1 − ᾱ)·(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ) and its residual variance is ᾱ s²/(ᾱ s² + 1 − ᾱ); the exact
x0-predictor is E[x0 | x_t] = μ + √ᾱ s²·(x_t − √ᾱ μ)/(ᾱ s² + 1 − ᾱ).
"""

import math

import numpy as np
import pytest
import torch

from ractd.diffusion import (
    DDPMConfig,
    action_loss_weights,
    cosine_alpha_bars,
    cosine_betas,
    ddpm_loss,
    ddpm_step,
    posterior_coefficients,
    sample_ddim,
    sample_ddpm,
)

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


def exact_x0(mu: torch.Tensor, std: torch.Tensor, alpha_bar: torch.Tensor = ALPHA_BAR):
    def net(x, t, cond=None):
        a = alpha_bar[t.long()].reshape(-1, 1, 1)
        return mu + a.sqrt() * std**2 * (x - a.sqrt() * mu) / (a * std**2 + 1 - a)

    return net


def diffuser_cosine_schedule(T: int, s: float = 0.008) -> tuple[np.ndarray, np.ndarray]:
    """Diffuser's `cosine_beta_schedule`, written as it is there: (betas, alphas_cumprod)."""
    steps = T + 1
    x = np.linspace(0, steps, steps)
    alphas_cumprod = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = np.clip(1 - (alphas_cumprod[1:] / alphas_cumprod[:-1]), a_min=0, a_max=0.999)
    return betas, np.cumprod(1 - betas)


@pytest.mark.parametrize("T", [80, 100, 256])
def test_schedule_matches_diffusers_cosine_formula(T):
    betas, alphas_cumprod = diffuser_cosine_schedule(T)
    cfg = DDPMConfig(num_train_steps=T)
    np.testing.assert_allclose(cosine_betas(cfg).numpy(), betas, rtol=0, atol=1e-6)
    np.testing.assert_allclose(cosine_alpha_bars(cfg).numpy(), alphas_cumprod, rtol=0, atol=1e-6)


def test_posterior_coefficients_preserve_the_forward_marginals():
    """If x_t ~ q(x_t | x0), then c0·x0 + ct·x_t + √β̃·ξ ~ q(x_{t−1} | x0) = N(√ᾱ_{t−1}·x0, 1 − ᾱ_{t−1})."""
    cfg = DDPMConfig(num_train_steps=50)
    c0, ct, var = posterior_coefficients(cfg)
    a = torch.cumprod(1 - cosine_betas(cfg), 0)
    prev = torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]])
    torch.testing.assert_close(c0 + ct * a.sqrt(), prev.sqrt(), rtol=0, atol=1e-12)
    torch.testing.assert_close(ct**2 * (1 - a) + var, 1 - prev, rtol=0, atol=1e-12)
    assert float(var[0]) == 0.0 and float(c0[0]) == pytest.approx(1.0) and float(ct[0]) == 0.0
    assert bool((var[1:] > 0).all())
    x, x0, xi = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 2)
    coefficients = tuple(c.float() for c in (c0, ct, var))
    torch.testing.assert_close(ddpm_step(x, x0, 7, coefficients, xi),
                               c0[7].float() * x0 + ct[7].float() * x + var[7].float().sqrt() * xi)
    assert torch.equal(ddpm_step(x, x0, 0, coefficients, xi), ddpm_step(x, x0, 0, coefficients, None))


def test_ancestral_sampler_makes_T_calls_at_decreasing_steps():
    calls = []

    def net(x, t, cond=None):
        calls.append((float(t[0]), x.shape[0], cond))
        return torch.zeros_like(x)

    cond = torch.randn(2, 3)
    sample_ddpm(net, torch.randn(2, 4, 2), cond, DDPMConfig(num_train_steps=37))
    assert [c[0] for c in calls] == [float(t) for t in range(36, -1, -1)]
    assert all(b == 2 and c is cond for _, b, c in calls)


@pytest.mark.parametrize("prediction", ["x0", "epsilon"])
@pytest.mark.parametrize("clip", [True, False])
def test_oracle_network_returns_the_clean_sample(prediction, clip):
    clean = torch.rand(3, 8, 2) * 1.8 - 0.9
    cfg = DDPMConfig(num_train_steps=50)
    alpha_bar = cosine_alpha_bars(cfg)

    def oracle(x, t, cond=None):
        if prediction == "x0":
            return clean
        a = alpha_bar[t.long()].reshape(-1, 1, 1)
        return (x - a.sqrt() * clean) / (1 - a).sqrt()

    out = sample_ddpm(oracle, torch.randn(3, 8, 2), None, cfg, prediction=prediction, clip_denoised=clip,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, clean, rtol=0, atol=1e-5)


def test_clip_denoised_bounds_the_x0_estimate():
    def far(x, t, cond=None):
        return torch.full_like(x, 3.0)

    cfg = DDPMConfig(num_train_steps=20)
    x = torch.randn(2, 4, 1)
    assert torch.allclose(sample_ddpm(far, x, None, cfg, clip_denoised=True), torch.ones_like(x), atol=1e-6)
    assert torch.allclose(sample_ddpm(far, x, None, cfg, clip_denoised=False), torch.full_like(x, 3.0), atol=1e-5)
    assert torch.allclose(sample_ddpm(far, x, None, DDPMConfig(20, clip_sample=True)), torch.ones_like(x), atol=1e-6)
    with pytest.raises(ValueError, match="prediction must be one of"):
        sample_ddpm(far, x, None, cfg, prediction="v")
    with pytest.raises(ValueError, match="inpaint must be one of"):
        sample_ddpm(far, x, None, cfg, inpaint="hard")


def ancestral_moments(mu, std, cfg: DDPMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ancestral sampling with the exact x0-predictor of N(μ, s²), from x_T ~ N(0, I), propagated in
    closed form: every step is linear-Gaussian, x_{t−1} = c0·E[x0 | x_t] + ct·x_t + √β̃·ξ."""
    mu, std = mu.double(), std.double()
    c0, ct, var = posterior_coefficients(cfg)
    a = torch.cumprod(1 - cosine_betas(cfg), 0)
    mean, v = torch.zeros_like(mu), torch.ones_like(mu)
    for t in range(cfg.num_train_steps - 1, -1, -1):
        k = a[t].sqrt() * std**2 / (a[t] * std**2 + 1 - a[t])  # E[x0 | x_t] = μ + k·(x_t − √ᾱ μ)
        mean = c0[t] * (mu - k * a[t].sqrt() * mu) + (c0[t] * k + ct[t]) * mean
        v = (c0[t] * k + ct[t]) ** 2 * v + var[t]
    return mean.float(), v.sqrt().float()


@pytest.mark.parametrize("prediction", ["x0", "epsilon"])
def test_ancestral_sampler_with_the_exact_predictor_matches_closed_form_moments(prediction):
    """The posterior variance β̃ leaves out Var[x0 | x_t], so at T = 100 the spread of N(μ, s²) comes out up to 13 %
    narrow (it vanishes as T grows); the sampler must reproduce exactly that, and the mean μ."""
    mu, std = torch.linspace(-0.5, 0.5, 8).reshape(4, 2), torch.linspace(0.1, 0.4, 8).reshape(4, 2)
    cfg = DDPMConfig(clip_sample=False)
    net = exact_x0(mu, std) if prediction == "x0" else exact_eps(mu, std)
    n = 4000
    x = torch.randn(n, 4, 2, generator=torch.Generator().manual_seed(1))
    out = sample_ddpm(net, x, None, cfg, prediction=prediction, generator=torch.Generator().manual_seed(2))
    mean, spread = ancestral_moments(mu, std, cfg)
    torch.testing.assert_close(mean, mu, rtol=0, atol=1e-5)
    assert float((spread / std - 1).abs().max()) > 0.1  # the closed form is far from s for the small spreads…
    assert float((out.mean(0) - mu).abs().max()) < 5 * 0.4 / math.sqrt(n)
    assert float((out.std(0) / spread - 1).abs().max()) < 0.045  # …and the samples follow it (SE ≈ 1.1 %)
    assert float((ancestral_moments(mu, std, DDPMConfig(1000))[1] / std - 1).abs().max()) < 0.025


def test_ddpm_loss_x0_prediction_and_weights_by_hand():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 4, 3, generator=g)
    cfg = DDPMConfig(num_train_steps=30)
    # an x0 oracle has zero loss; the zero network's loss is mean(x0²)
    assert float(ddpm_loss(lambda x, t, cond=None: x0, x0, None, cfg, prediction="x0")) == 0.0
    zero_net = lambda x, t, cond=None: torch.zeros_like(x)  # noqa: E731
    assert float(ddpm_loss(zero_net, x0, None, cfg, prediction="x0")) == pytest.approx(float((x0**2).mean()))
    w = action_loss_weights(4, 3, 1, 10.0)
    assert w.shape == (4, 3) and float(w[0, 0]) == 10.0 and float(w.sum()) == 4 * 3 - 1 + 10
    expected = float((x0**2 * w).mean())
    assert float(ddpm_loss(zero_net, x0, None, cfg, prediction="x0", weights=w)) == pytest.approx(expected)
    # ε target with weights: replay the loss's own draws (t first, then ε)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.randint(0, 30, (16,), generator=g2)
    eps = torch.randn(x0.shape, generator=g2)
    got = float(ddpm_loss(zero_net, x0, None, cfg, g1, weights=w))
    assert got == pytest.approx(float((eps**2 * w).mean()), rel=1e-6)
    # unweighted ε loss is unchanged by the new options
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert float(ddpm_loss(zero_net, x0, None, cfg, g1)) == float(ddpm_loss(zero_net, x0, None, cfg, g2,
                                                                            weights=torch.ones(4, 3)))
    with pytest.raises(ValueError, match="do not broadcast"):
        ddpm_loss(zero_net, x0, None, cfg, weights=torch.ones(5, 3))
    with pytest.raises(ValueError, match="prediction must be one of"):
        ddpm_loss(zero_net, x0, None, cfg, prediction="v")
    with pytest.raises(ValueError, match="action_dim"):
        action_loss_weights(4, 3, 4, 10.0)


def test_ddpm_loss_clean_known_entries_add_no_error():
    """Clean inpainting in training: the network sees the clean known entries, and what it outputs there is ignored."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(8, 4, 3, generator=g)
    mask = torch.zeros(1, 4, 3, dtype=torch.bool)
    mask[:, 0, 1:] = True
    seen = {}

    def net(x, t, cond=None, junk=0.0):
        seen["x"] = x
        out = torch.zeros_like(x)
        return torch.where(mask, torch.full_like(x, junk), out)

    cfg = DDPMConfig(num_train_steps=30)
    for prediction in ("x0", "epsilon"):
        losses = [float(ddpm_loss(lambda x, t, cond=None, j=j: net(x, t, junk=j), x0, None, cfg,
                                  torch.Generator().manual_seed(1), prediction=prediction, known_mask=mask))
                  for j in (0.0, 100.0)]
        assert losses[0] == losses[1]
        assert torch.equal(seen["x"][:, 0, 1:], x0[:, 0, 1:])
        assert not torch.equal(seen["x"][:, 1:], x0[:, 1:])
    # x0 target, zero output elsewhere: loss = mean over all entries of x0² off the mask
    loss = float(ddpm_loss(lambda x, t, cond=None: net(x, t), x0, None, cfg, prediction="x0", known_mask=mask))
    assert loss == pytest.approx(float((x0**2 * ~mask).mean()))
