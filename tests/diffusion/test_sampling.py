"""ODE samplers against the closed form of Gaussian data (docs/algorithm.md §3.6, §8 items 5–6).

For x0 ~ N(μ, diag(s²)) the noisy marginal at σ is N(μ, s² + σ²), the exact denoiser is
D(x, σ) = μ + s²/(s² + σ²)·(x − μ), and the probability-flow ODE dx/dσ = (x − D)/σ maps σ_a → σ_b by
x_b = μ + sqrt((s² + σ_b²)/(s² + σ_a²))·(x_a − μ).
"""

import math

import pytest
import torch

from ractd.diffusion import (
    EDMConfig,
    edm_denoise,
    heun_nfe,
    heun_step,
    initial_noise,
    karras_sigmas,
    preconditioning,
    sample_euler,
    sample_heun,
)

torch.set_num_threads(1)

MU = torch.linspace(-0.5, 0.5, 8).reshape(4, 2)
STD = torch.linspace(0.1, 0.4, 8).reshape(4, 2)
N_SAMPLES = 4000


def gaussian_denoiser(mu: torch.Tensor = MU, std: torch.Tensor = STD):
    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
        return mu + std**2 / (std**2 + sigma**2) * (x - mu)

    return denoiser


def exact_flow(x: torch.Tensor, sigma_from: float, sigma_to: float) -> torch.Tensor:
    return MU + ((STD**2 + sigma_to**2) / (STD**2 + sigma_from**2)).sqrt() * (x - MU)


def noise(scale: float, seed: int = 0) -> torch.Tensor:
    return initial_noise((N_SAMPLES, 4, 2), scale, torch.Generator().manual_seed(seed))


def assert_moments(samples: torch.Tensor, std_tol: float) -> None:
    target_std = (STD**2 + 0.02**2).sqrt()  # the grid stops at σ_min = 0.02, which adds variance 0.02²
    n = samples.shape[0]
    # 5 standard errors of the mean; relative std tolerance given
    assert ((samples.mean(0) - MU).abs() <= 5 * STD / math.sqrt(n)).all(), samples.mean(0) - MU
    assert ((samples.std(0) / target_std - 1).abs() <= std_tol).all(), samples.std(0) / target_std


def test_initial_noise_scale():
    assert float(noise(80.0).std()) == pytest.approx(80.0, rel=0.02)
    assert float(noise(1.0).std()) == pytest.approx(1.0, rel=0.02)


def test_heun_matches_gaussian_mean_and_std():
    samples = sample_heun(gaussian_denoiser(), noise(80.0), karras_sigmas())
    assert_moments(samples, std_tol=0.06)  # sampling error of a std with n = 4000 is ≈ 1.1 %


def test_heun_is_second_order_accurate_along_each_path():
    """Deterministic check, sharper than moments: 79 Heun steps reproduce the exact flow map to 1 %, Euler does not."""
    x_T = MU + 80.0 * torch.linspace(-1, 1, 5).reshape(5, 1, 1)
    exact = exact_flow(x_T, 80.0, 0.02)
    scale = (exact - MU).abs().clamp(min=1e-3)
    heun = sample_heun(gaussian_denoiser(), x_T, karras_sigmas())
    euler = sample_euler(gaussian_denoiser(), x_T, karras_sigmas())
    assert float(((heun - exact).abs() / scale).max()) < 0.01
    assert 0.01 < float(((euler - exact).abs() / scale).max()) < 0.06  # first order: measured ≈ 3.7 %


def test_euler_converges_to_gaussian_moments():
    samples = sample_euler(gaussian_denoiser(), noise(80.0), karras_sigmas())
    assert_moments(samples, std_tol=0.10)  # first-order bias ≈ 4 % on the std


def test_low_variance_start_collapses_the_spread():
    """docs/algorithm.md §8 item 6: x_T ~ N(0, I) at σ = 80 is ≈ 1/80 of the true spread, so samples hug the mean."""
    samples = sample_heun(gaussian_denoiser(), noise(1.0), karras_sigmas())
    ratio = samples.std(0) / STD
    assert float(ratio.max()) < 0.05
    assert float(ratio.mean()) == pytest.approx(1 / 80, rel=0.1)  # the flow map scales spread by ≈ s/80 / s
    assert ((samples.mean(0) - MU).abs() < 0.01).all()


def test_heun_nfe_and_call_count_on_the_80_grid():
    assert heun_nfe(80) == 158 and heun_nfe(2) == 2
    calls = []

    def counting(x, sigma):
        calls.append(sigma.clone())
        return gaussian_denoiser()(x, sigma)

    sample_heun(counting, noise(80.0)[:3], karras_sigmas())
    assert len(calls) == heun_nfe(80) == 158
    # every call is at a grid level, per sample; the last correction is evaluated at σ_min (no final jump to 0)
    assert all(c.shape == (3,) for c in calls)
    assert float(calls[0][0]) == pytest.approx(80.0) and float(calls[-1][0]) == pytest.approx(0.02)

    calls.clear()
    sample_euler(counting, noise(80.0)[:3], karras_sigmas())
    assert len(calls) == 79


def test_heun_step_closed_forms():
    denoiser = gaussian_denoiser()
    x = noise(5.0)[:6]
    # one step to σ_next = 0 is Euler there and lands exactly on D(x, σ)
    to_zero = heun_step(denoiser, x, torch.full((6,), 5.0), torch.zeros(6))
    torch.testing.assert_close(to_zero, denoiser(x, torch.full((6,), 5.0)))
    # a step from σ to σ is the identity
    torch.testing.assert_close(heun_step(denoiser, x, torch.full((6,), 3.0), torch.full((6,), 3.0)), x)
    # hand Heun step (EDM Alg. 1) with per-sample σ
    s, s_next = torch.tensor([5.0, 1.0, 0.5, 0.1, 2.0, 3.0]), torch.tensor([4.0, 0.8, 0.3, 0.05, 1.9, 0.1])
    sb, snb = s[:, None, None], s_next[:, None, None]
    d = (x - denoiser(x, s)) / sb
    x_e = x + (snb - sb) * d
    d2 = (x_e - denoiser(x_e, s_next)) / snb
    torch.testing.assert_close(heun_step(denoiser, x, s, s_next), x + (snb - sb) * (d + d2) / 2)


# --- the same checks through edm_denoise: a "network" whose preconditioned output is the exact denoiser ------------

def exact_network(cfg: EDMConfig):
    """F with edm_denoise(F, x, σ, cond=μ) = D_exact(x, σ): F = (D − c_skip·x)/c_out, x recovered from c_in·x.

    The conditioning vector carries μ, so cond plumbing is exercised too.
    """

    def net(x_in, c_noise, cond=None):
        sigma = torch.exp(c_noise.double() / cfg.c_noise_scale)
        c_skip, c_out, c_in, _ = (c[:, None, None] for c in preconditioning(sigma, cfg))
        x = x_in.double() / c_in
        mu = cond.double().reshape(-1, 4, 2)
        d = mu + STD.double() ** 2 / (STD.double() ** 2 + sigma[:, None, None] ** 2) * (x - mu)
        safe = torch.where(c_out.abs() > 1e-6, c_out, torch.ones_like(c_out))  # c_out(σ_min) = 0 in boundary scaling
        return ((d - c_skip * x) / safe).to(x_in.dtype)

    return net


@pytest.mark.parametrize("scaling", ["edm", "boundary"])
def test_edm_denoise_with_exact_network_is_the_exact_denoiser(scaling):
    cfg = EDMConfig(scaling=scaling)
    x = noise(3.0)[:16]
    cond = MU.flatten().expand(16, -1)
    sigma = torch.logspace(math.log10(0.03), math.log10(80.0), 16)
    out = edm_denoise(exact_network(cfg), x, sigma, cond, cfg)
    torch.testing.assert_close(out, gaussian_denoiser()(x, sigma), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scaling", ["edm", "boundary"])
def test_heun_through_edm_denoise_matches_gaussian(scaling):
    cfg = EDMConfig(scaling=scaling)
    net = exact_network(cfg)
    x_T = noise(80.0, seed=1)
    cond = MU.flatten().expand(N_SAMPLES, -1)
    samples = sample_heun(lambda x, s: edm_denoise(net, x, s, cond, cfg), x_T, karras_sigmas(cfg))
    direct = sample_heun(gaussian_denoiser(), x_T, karras_sigmas(cfg))
    # boundary scaling forces D(x, σ_min) = x on the last correction, measured 1.7e-3 off the exact-denoiser path
    torch.testing.assert_close(samples, direct, rtol=0, atol=1e-5 if scaling == "edm" else 3e-3)
    assert_moments(samples, std_tol=0.06)
