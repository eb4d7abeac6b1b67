"""The denoiser modules (docs/algorithm.md §3.2, §4.2): each equals the pure functions it wraps, the student's
one-step path is bitwise the jump, the ε-prediction adapter turns DDIM into Euler, and the RACTD loss refuses
modules with different EDM constants."""

import math

import pytest
import torch

from ractd.diffusion import (
    CTMConfig,
    CTMDenoiser,
    DDPMConfig,
    EDMConfig,
    EDMDenoiser,
    EpsDenoiser,
    cosine_alpha_bars,
    ctm_g,
    ctm_jump,
    edm_denoise,
    ractd_loss,
    sample_ddim,
    sample_euler,
    sample_heun,
)
from ractd.nn import ConditionalUnet1D

torch.set_num_threads(1)
H, C, COND = 8, 3, 5


def unet(n_time_inputs: int) -> ConditionalUnet1D:
    torch.manual_seed(0)
    return ConditionalUnet1D(C, COND, 16, (16, 32), n_time_inputs=n_time_inputs, dropout=0.0, mid_dropout=0.0).eval()


def inputs(n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, H, C, generator=g), torch.randn(n, COND, generator=g)


@pytest.mark.parametrize("edm", [EDMConfig(), EDMConfig(scaling="edm", sigma_data=0.3, sigma_max=40.0)])
def test_modules_equal_the_pure_functions(edm):
    x, cond = inputs()
    sigma = torch.tensor([80.0, 10.0, 1.0, 0.3, 0.05, 0.02])
    teacher, student = EDMDenoiser(unet(1), edm), CTMDenoiser(unet(2), edm)
    with torch.no_grad():
        assert torch.equal(teacher(x, sigma, cond), edm_denoise(teacher.net, x, sigma, cond, edm))
        assert torch.equal(teacher(x, sigma, cond, clamp=True), edm_denoise(teacher.net, x, sigma, cond, edm, True))
        s = sigma / 3
        assert torch.equal(student.jump(x, sigma, s, cond), ctm_jump(student.net, x, sigma, s, cond, edm))
        assert torch.equal(student.g(x, sigma, s, cond), ctm_g(student.net, x, sigma, s, cond, edm))
        assert torch.equal(student(x, sigma, cond), ctm_g(student.net, x, sigma, sigma, cond, edm))  # D = g(x, σ, σ)
        torch.testing.assert_close(teacher.sigmas(), torch.sort(teacher.sigmas(), descending=True).values)
        assert float(teacher.sigmas()[0]) == pytest.approx(edm.sigma_max) and len(teacher.sigmas(6)) == 6


@pytest.mark.parametrize("edm", [EDMConfig(), EDMConfig(scaling="edm", sigma_max=40.0, sigma_min=0.01)])
def test_one_step_is_bitwise_the_jump_from_sigma_max_to_sigma_min(edm):
    student = CTMDenoiser(unet(2), edm)
    for n in (1, 7):
        x, cond = inputs(n, seed=n)
        t = torch.full((n,), edm.sigma_max)
        with torch.no_grad():
            assert torch.equal(student.one_step(x, cond), ctm_jump(student.net, x, t, torch.full_like(t, edm.sigma_min),
                                                                   cond, edm))
    student.double()  # a dtype move drops the cached constants instead of mixing float32 into float64
    x, cond = inputs(2)
    with torch.no_grad():
        assert student.one_step(x.double(), cond.double()).dtype == torch.float64


def test_eps_denoiser_is_the_x0_estimate_in_the_sigma_frame():
    """σ_t = √((1 − ᾱ_t)/ᾱ_t); at a training step D(x; σ_t) = x − σ_t·ε(x/√(1+σ²), t)."""
    ddpm = DDPMConfig(num_train_steps=50)
    seen = []

    def eps_net(x_in, t, cond=None):
        seen.append((x_in, t))
        return 0.5 * x_in + 0.1

    den = EpsDenoiser(eps_net, ddpm)
    alpha_bar = cosine_alpha_bars(ddpm).double()
    for t in (0, 17, 49):
        sigma = float(((1 - alpha_bar[t]) / alpha_bar[t]).sqrt())
        x = torch.randn(3, H, C, dtype=torch.float64)
        out = den(x, torch.tensor(sigma, dtype=torch.float64))
        x_in, t_in = seen[-1]
        torch.testing.assert_close(t_in, torch.full((3,), float(t), dtype=torch.float64), atol=1e-3, rtol=0)
        torch.testing.assert_close(x_in, x / math.sqrt(1 + sigma**2))
        torch.testing.assert_close(out, x - sigma * (0.5 * x_in + 0.1))
    assert den.sigma_min < den.sigma_max


def test_euler_on_the_eps_adapter_is_ddim():
    """Deterministic DDIM is Euler on dx/dσ = ε in the frame x_VE = x_VP/√ᾱ (Song et al. 2021, Eq. 14)."""
    ddpm = DDPMConfig(num_train_steps=100, clip_sample=False)
    net = unet(1).double()
    den = EpsDenoiser(net, ddpm).double()
    _, cond = inputs(4)
    cond = cond.double()
    x_vp = torch.randn(4, H, C, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    steps = torch.linspace(99, 0, 10).round().long().tolist()
    with torch.no_grad():
        ddim = sample_ddim(net, x_vp, cond, ddpm, num_steps=10)
        sigmas = den.sigmas(steps).double()
        euler = sample_euler(den, x_vp * (1 + sigmas[0] ** 2).sqrt(), sigmas, {"cond": cond})
    torch.testing.assert_close(euler, ddim, rtol=1e-6, atol=1e-6)  # σ = 0 at the end: the frames coincide


def test_every_ode_sampler_runs_on_every_denoiser():
    x, cond = inputs(2)
    grid = EDMDenoiser(unet(1), EDMConfig(n_levels=5)).sigmas()
    for den in (EDMDenoiser(unet(1), EDMConfig()), CTMDenoiser(unet(2), EDMConfig()),
                EpsDenoiser(unet(1), DDPMConfig())):
        for solver in (sample_heun, sample_euler):
            out = solver(den, x * float(grid[0]), grid, {"cond": cond, "clamp": True})
            assert out.shape == x.shape and torch.isfinite(out).all()


def test_the_ractd_loss_refuses_a_student_with_other_edm_constants():
    x0, cond = inputs(4)
    x0 = x0.clamp(-1, 1)
    teacher = EDMDenoiser(unet(1), EDMConfig(scaling="edm"))
    student = CTMDenoiser(unet(2), EDMConfig())
    with pytest.raises(ValueError, match="student's EDM constants differ from the teacher's"):
        ractd_loss(student, CTMDenoiser(unet(2), EDMConfig(scaling="edm")), teacher, x0, cond, CTMConfig())
    same = CTMDenoiser(unet(2), teacher.edm)
    losses = ractd_loss(same, CTMDenoiser(unet(2), teacher.edm), teacher, x0, cond, CTMConfig(),
                        generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(losses.total)
