"""EDM noise grid, preconditioning, loss weights, pseudo-Huber and the teacher loss (docs/algorithm.md §3.2–§3.4)."""

import math

import pytest
import torch

from ractd.diffusion import (
    EDMConfig,
    EDMDenoiser,
    edm_denoise,
    edm_loss,
    huber_c,
    karras_loss_weight,
    karras_sigma,
    karras_sigmas,
    lognormal_sigmas,
    preconditioning,
    pseudo_huber,
)

torch.set_num_threads(1)

BOUNDARY, STANDARD = EDMConfig(), EDMConfig(scaling="edm")


# --- Karras grid (docs/algorithm.md §3.4) -----------------------------------------------------------------------------

@pytest.mark.parametrize("index,expected", [
    (0, 80.0), (10, 42.02), (20, 20.68), (27, 12.01), (30, 9.39), (40, 3.86), (50, 1.39), (54, 0.885),
    (60, 0.422), (70, 0.100), (75, 0.0428), (78, 0.0244), (79, 0.02),
    (80, 0.02),  # index N would be 0.0163: clamped to σ_min
])
def test_karras_sigma_reference_values(index, expected):
    # docs/algorithm.md's values are rounded to 3–4 significant digits
    assert float(karras_sigma(index)) == pytest.approx(expected, rel=2.5e-3)


def test_karras_sigma_closed_form_and_unclamped_index_80():
    i = torch.arange(80, dtype=torch.float64)
    expected = (80 ** (1 / 7) + i / 79 * (0.02 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(karras_sigma(i), expected.float(), rtol=1e-6, atol=0)
    # without the clamp index 80 lies below σ_min (spec: 0.0163), so the clamp is what makes it 0.02
    assert (80 ** (1 / 7) + 80 / 79 * (0.02 ** (1 / 7) - 80 ** (1 / 7))) ** 7 == pytest.approx(0.0163, abs=1e-4)
    assert float(karras_sigma(80)) == pytest.approx(0.02, rel=1e-6)


def test_karras_sigmas_grid_is_the_decreasing_80_point_ramp():
    grid = karras_sigmas()
    assert grid.shape == (80,)
    assert float(grid[0]) == pytest.approx(80.0) and float(grid[-1]) == pytest.approx(0.02)
    assert bool((grid[1:] < grid[:-1]).all())
    small = karras_sigmas(EDMConfig(n_levels=3, sigma_min=1.0, sigma_max=3.0 ** 7, rho=7.0))
    # σ^{1/7} linear from 3 to 1: 3, 2, 1 → 3^7, 2^7, 1
    torch.testing.assert_close(small, torch.tensor([2187.0, 128.0, 1.0]))


def test_edm_config_rejects_bad_values():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        EDMConfig(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="n_levels"):
        EDMConfig(n_levels=1)
    with pytest.raises(ValueError, match="scaling"):
        EDMConfig(scaling="vp")
    with pytest.raises(ValueError, match="huber_variant"):
        EDMConfig(huber_variant="l1")


# --- preconditioning (docs/algorithm.md §3.2) -------------------------------------------------------------------------

def test_boundary_preconditioning_closed_form():
    sigma = torch.tensor([0.02, 0.1, 0.5, 1.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = preconditioning(sigma, BOUNDARY)
    sd, smin = 0.5, 0.02
    torch.testing.assert_close(c_skip, sd**2 / ((sigma - smin) ** 2 + sd**2))
    torch.testing.assert_close(c_out, (sigma - smin) * sd / (sigma**2 + sd**2).sqrt())
    torch.testing.assert_close(c_in, 1 / (sigma**2 + sd**2).sqrt())
    torch.testing.assert_close(c_noise, 250 * sigma.log())
    # hand values at σ = 0.5: c_skip = 0.25/(0.48² + 0.25), c_out = 0.48·0.5/√0.5, c_in = √2
    assert float(c_skip[2]) == pytest.approx(0.25 / 0.4804)
    assert float(c_out[2]) == pytest.approx(0.24 / math.sqrt(0.5))
    assert float(c_in[2]) == pytest.approx(math.sqrt(2))


def test_standard_edm_preconditioning_closed_form():
    sigma = torch.tensor([0.02, 0.5, 1.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = preconditioning(sigma, STANDARD)
    # EDM Table 1 at σ = σ_data = 0.5: c_skip = 1/2, c_out = 0.5/√2, c_in = √2
    assert float(c_skip[1]) == pytest.approx(0.5)
    assert float(c_out[1]) == pytest.approx(0.5 / math.sqrt(2))
    assert float(c_in[1]) == pytest.approx(math.sqrt(2))
    torch.testing.assert_close(c_skip, 0.25 / (sigma**2 + 0.25))
    torch.testing.assert_close(c_out, 0.5 * sigma / (sigma**2 + 0.25).sqrt())
    torch.testing.assert_close(c_in, 1 / (sigma**2 + 0.25).sqrt())
    # c_skip + c_out²/σ_d² = 1 (both are fractions of σ² + σ_d²)
    torch.testing.assert_close(c_skip + c_out**2 / 0.25, torch.ones_like(sigma))


def test_c_noise_is_250_ln_sigma():
    sigma = torch.tensor([1.0, math.e, 80.0, 0.02])
    *_, c_noise = preconditioning(sigma, BOUNDARY)
    torch.testing.assert_close(c_noise, torch.tensor([0.0, 250.0, 250 * math.log(80), 250 * math.log(0.02)]))
    *_, c_noise_scaled = preconditioning(sigma, EDMConfig(c_noise_scale=0.25))
    torch.testing.assert_close(c_noise_scaled, c_noise / 1000)


def wild_net(x, c_noise, cond=None):
    """Any network: large, input-dependent output."""
    return 1e3 * torch.sin(7 * x) + c_noise.reshape(-1, *([1] * (x.dim() - 1)))


def test_boundary_scaling_gives_identity_at_sigma_min_for_any_net():
    x = torch.randn(5, 4, 3)
    out = edm_denoise(wild_net, x, torch.tensor(0.02), None, BOUNDARY)
    assert torch.equal(out, x)
    # …and not elsewhere, nor with the standard scaling
    assert not torch.allclose(edm_denoise(wild_net, x, torch.tensor(0.03), None, BOUNDARY), x)
    assert not torch.allclose(edm_denoise(wild_net, x, torch.tensor(0.02), None, STANDARD), x)


def test_edm_denoise_composes_the_preconditioning_and_passes_cond():
    seen = {}

    def net(x_in, c_noise, cond=None):
        seen.update(x_in=x_in, c_noise=c_noise, cond=cond)
        return torch.tanh(x_in) * 3 + cond[:, None, :]

    x, cond = torch.randn(3, 4, 2), torch.randn(3, 2)
    sigma = torch.tensor([0.1, 1.0, 10.0])
    for cfg in (BOUNDARY, STANDARD):
        c_skip, c_out, c_in, c_noise = (c[:, None, None] for c in preconditioning(sigma, cfg))
        expected = c_skip * x + c_out * (torch.tanh(c_in * x) * 3 + cond[:, None, :])
        torch.testing.assert_close(edm_denoise(net, x, sigma, cond, cfg), expected)
        torch.testing.assert_close(seen["x_in"], c_in * x)
        torch.testing.assert_close(seen["c_noise"], 250 * sigma.log())
        assert seen["cond"] is cond
        clamped = edm_denoise(net, x, sigma, cond, cfg, clamp=True)
        torch.testing.assert_close(clamped, expected.clamp(-1, 1))
    # a scalar σ is broadcast to the batch
    scalar = edm_denoise(net, x, torch.tensor(2.0), cond, BOUNDARY)
    torch.testing.assert_close(scalar, edm_denoise(net, x, torch.full((3,), 2.0), cond, BOUNDARY))


# --- loss weights, training noise, pseudo-Huber (docs/algorithm.md §3.3) ----------------------------------------------

def test_karras_loss_weight_hand_values():
    torch.testing.assert_close(
        karras_loss_weight(torch.tensor([0.5, 1.0, 2.0])),
        torch.tensor([0.5 / 0.0625, 1.25 / 0.25, 4.25 / 1.0]),  # (σ² + 0.25)/(0.5σ)²
    )


def test_lognormal_sigmas_moments():
    g = torch.Generator().manual_seed(0)
    log_sigma = lognormal_sigmas(200_000, BOUNDARY, g).log()
    assert float(log_sigma.mean()) == pytest.approx(-1.2, abs=0.01)
    assert float(log_sigma.std()) == pytest.approx(1.2, abs=0.01)
    # not clipped: ≈ 1.2 % of draws lie below σ_min (docs/algorithm.md §3.3): Φ((ln 0.02 + 1.2)/1.2) = 0.0119
    assert float((log_sigma.exp() < 0.02).float().mean()) == pytest.approx(0.0119, abs=0.001)


@pytest.mark.parametrize("shape,expected", [((16, 3), 0.00374), ((16, 6), 0.00529), ((128, 4), 0.01222)])
def test_huber_c_reference_values(shape, expected):
    assert huber_c(shape[0] * shape[1]) == pytest.approx(expected, abs=5e-6)


def test_pseudo_huber_elementwise_squared_hand_values():
    pred = torch.tensor([[[0.1, -0.2]], [[0.0, 1.0]]])  # (2, 1, 2)
    target = torch.zeros_like(pred)
    c = 0.01
    # sqrt((e²)² + c²) − c per element
    per = [math.sqrt(0.1**4 + c**2) - c, math.sqrt(0.2**4 + c**2) - c, 0.0, math.sqrt(1 + c**2) - c]
    assert float(pseudo_huber(pred, target, c)) == pytest.approx(sum(per) / 4, rel=1e-6)
    # quartic below √c, ≈ e² above: the "MSE for |e| ≳ 0.1" regime of docs/algorithm.md §8 item 7
    zero = torch.zeros(1, 1)
    assert float(pseudo_huber(torch.full((1, 1), 0.01), zero, c)) == pytest.approx(1e-8 / (2 * c), rel=1e-3)
    assert float(pseudo_huber(torch.full((1, 1), 2.0), zero, c)) == pytest.approx(4.0, abs=c)


def test_pseudo_huber_l2_hand_values():
    pred = torch.tensor([[[3.0, 4.0]], [[0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0]], [[1.0, 0.0]]])
    c = 0.5
    per_sample = [math.sqrt(25 + 0.25) - 0.5, math.sqrt(1 + 0.25) - 0.5]  # sqrt(‖e‖² + c²) − c
    assert float(pseudo_huber(pred, target, c, "l2")) == pytest.approx(sum(per_sample) / 2, rel=1e-6)


def test_pseudo_huber_default_c_from_sample_size():
    pred, target = torch.randn(3, 16, 3), torch.randn(3, 16, 3)
    explicit = pseudo_huber(pred, target, 0.00054 * math.sqrt(48))
    assert float(pseudo_huber(pred, target)) == pytest.approx(float(explicit))


@pytest.mark.parametrize("variant", ["elementwise_squared", "l2"])
def test_pseudo_huber_weight_is_per_sample(variant):
    pred, target = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    weight = torch.tensor([0.0, 1.0, 2.0, 10.0])
    per_sample = torch.stack([pseudo_huber(pred[i : i + 1], target[i : i + 1], 0.01, variant) for i in range(4)])
    expected = (weight * per_sample).mean()  # every sample has the same number of elements
    assert float(pseudo_huber(pred, target, 0.01, variant, weight)) == pytest.approx(float(expected), rel=1e-5)
    # weight 0 on all but one sample isolates it
    onehot = torch.tensor([0.0, 0.0, 4.0, 0.0])
    assert float(pseudo_huber(pred, target, 0.01, variant, onehot)) == pytest.approx(float(per_sample[2]), rel=1e-5)


def test_pseudo_huber_unknown_variant():
    with pytest.raises(ValueError, match="unknown pseudo-Huber variant 'l1'"):
        pseudo_huber(torch.zeros(1, 2), torch.zeros(1, 2), 0.1, "l1")


# --- the teacher loss (docs/algorithm.md §3.3) ------------------------------------------------------------------------

def test_edm_loss_is_the_weighted_pseudo_huber_of_the_denoised_noisy_data():
    x0, cond = torch.rand(6, 4, 2) * 2 - 1, torch.randn(6, 3)

    def net(x_in, c_noise, cond=None):
        return x_in * cond[:, :1, None] + 0.001 * c_noise[:, None, None]

    for cfg in (BOUNDARY, EDMConfig(scaling="edm", huber_variant="l2", huber_c=0.1)):
        loss = edm_loss(EDMDenoiser(net, cfg), x0, cond, torch.Generator().manual_seed(3))
        g = torch.Generator().manual_seed(3)  # same draws: σ first, then ε
        sigma = lognormal_sigmas(6, cfg, g)
        eps = torch.randn(x0.shape, generator=g)
        denoised = edm_denoise(net, x0 + sigma[:, None, None] * eps, sigma, cond, cfg)
        expected = pseudo_huber(denoised, x0, cfg.huber_c, cfg.huber_variant, karras_loss_weight(sigma))
        assert float(loss) == pytest.approx(float(expected), rel=1e-6)


def test_edm_loss_trains_the_net():
    net = torch.nn.Conv1d(4, 4, 1)

    def f(x_in, c_noise, cond=None):
        return net(x_in)

    loss = edm_loss(EDMDenoiser(f, BOUNDARY), torch.randn(8, 4, 2), None, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert net.weight.grad is not None and float(net.weight.grad.abs().sum()) > 0
