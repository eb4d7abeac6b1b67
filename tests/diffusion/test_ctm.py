"""CTM student and the RACTD losses (docs/algorithm.md §4, §5): jump identities, warm start, the (t, s, u) sampler's
distribution, the teacher solver, and the structure of L_CTM / L_DSM / L_reward."""

import math
import random

import pytest
import torch
from torch import nn

import ractd.diffusion.ctm as ctm_module
from ractd.diffusion import (
    CTMConfig,
    CTMDenoiser,
    EDMConfig,
    EDMDenoiser,
    ctm_g,
    ctm_jump,
    ctm_loss,
    dsm_loss,
    dsm_sigmas,
    edm_denoise,
    heun_step,
    karras_loss_weight,
    karras_sigma,
    multistep_sample,
    one_step_sample,
    preconditioning,
    pseudo_huber,
    ractd_loss,
    reward_loss,
    sample_ctm_indices,
    sample_heun,
    teacher_solve,
    update_target,
)
from ractd.nn import ConditionalUnet1D, insert_zero_time_columns

torch.set_num_threads(1)

EDM = EDMConfig()
H, C, COND, DSED = 4, 2, 3, 16


def wild_net(x_in, c_noise_t, c_noise_s, cond=None):
    """Any two-time network: large, depends on every input."""
    b = (-1, *([1] * (x_in.dim() - 1)))
    return 50 * torch.sin(3 * x_in) + 0.01 * c_noise_t.reshape(b) - 0.02 * c_noise_s.reshape(b)


def unet(n_time_inputs: int, dropout: float = 0.0, mid_dropout: float = 0.0, cond_dim: int = COND) -> ConditionalUnet1D:
    return ConditionalUnet1D(C, cond_dim, DSED, (16, 32), n_time_inputs=n_time_inputs, dropout=dropout,
                             mid_dropout=mid_dropout)


# --- the jump G (docs/algorithm.md §4.2) ------------------------------------------------------------------------------

def test_jump_to_the_same_time_is_the_identity():
    x = torch.randn(6, H, C)
    for t in (torch.tensor(80.0), torch.tensor(1.3), torch.tensor(0.02), torch.tensor([80.0, 5, 1, 0.5, 0.1, 0.02])):
        assert torch.equal(ctm_jump(wild_net, x, t, t, None, EDM), x)


def test_jump_is_the_interpolation_of_x_and_g():
    x = torch.randn(5, H, C)
    t = torch.tensor([80.0, 10.0, 1.0, 0.5, 0.1])
    s = torch.tensor([0.02, 3.0, 0.9, 0.02, 0.05])
    g = ctm_g(wild_net, x, t, s, None, EDM)
    r = (s / t)[:, None, None]
    torch.testing.assert_close(ctm_jump(wild_net, x, t, s, None, EDM), r * x + (1 - r) * g)
    assert not torch.allclose(g, x)  # the interpolation is non-trivial


def test_g_is_boundary_preconditioned_at_the_source_time_with_both_time_embeddings():
    seen = {}

    def net(x_in, c_t, c_s, cond=None):
        seen.update(x_in=x_in, c_t=c_t, c_s=c_s, cond=cond)
        return torch.cos(x_in) + cond[:, None, :C]

    x, cond = torch.randn(3, H, C), torch.randn(3, COND)
    t, s = torch.tensor([80.0, 2.0, 0.3]), torch.tensor([0.02, 1.0, 0.3])
    c_skip, c_out, c_in, _ = (c[:, None, None] for c in preconditioning(t, EDM))
    expected = c_skip * x + c_out * (torch.cos(c_in * x) + cond[:, None, :C])
    torch.testing.assert_close(ctm_g(net, x, t, s, cond, EDM), expected)
    torch.testing.assert_close(seen["c_t"], 250 * t.log())
    torch.testing.assert_close(seen["c_s"], 250 * s.log())
    assert seen["cond"] is cond
    # scalar times broadcast
    torch.testing.assert_close(ctm_g(net, x, torch.tensor(2.0), torch.tensor(1.0), cond, EDM),
                               ctm_g(net, x, torch.full((3,), 2.0), torch.ones(3), cond, EDM))


# --- warm start (docs/algorithm.md §4.9) ------------------------------------------------------------------------------

@pytest.mark.parametrize("cond_dim", [0, COND])
@pytest.mark.parametrize("dropout,mid_dropout", [(0.0, 0.0), (0.2, 0.2)])
def test_warm_started_student_reproduces_the_teacher_for_any_s(cond_dim, dropout, mid_dropout):
    torch.manual_seed(0)
    teacher = unet(1, dropout, mid_dropout, cond_dim)
    with torch.no_grad():  # move off the init so that every FiLM column matters
        for p in teacher.parameters():
            p.add_(0.1 * torch.randn_like(p))
    student = unet(2, dropout, mid_dropout, cond_dim)
    student.load_state_dict(insert_zero_time_columns(teacher.state_dict(), DSED))  # strict: every key maps
    teacher.eval(), student.eval()

    n = 8
    x = torch.randn(n, H, C)
    cond = torch.randn(n, cond_dim) if cond_dim else None
    t = karras_sigma(torch.tensor([0, 5, 20, 40, 60, 70, 78, 79]))
    d_teacher = edm_denoise(teacher, x, t, cond, EDM)
    for s in (t, torch.full((n,), 0.02), t * torch.rand(n, generator=torch.Generator().manual_seed(1)) + 0.02):
        torch.testing.assert_close(ctm_g(student, x, t, s, cond, EDM), d_teacher, rtol=1e-5, atol=1e-5)
        r = (s / t)[:, None, None]
        torch.testing.assert_close(ctm_jump(student, x, t, s, cond, EDM), r * x + (1 - r) * d_teacher,
                                   rtol=1e-5, atol=1e-5)

    # the s input is live: once its FiLM columns are non-zero, g depends on s (so the check above was not vacuous)
    with torch.no_grad():
        for name, p in student.named_parameters():
            if name.endswith("cond_encoder.1.weight"):
                p[:, DSED : 2 * DSED].normal_()
    g1 = ctm_g(student, x, t, torch.full((n,), 0.02), cond, EDM)
    g2 = ctm_g(student, x, t, t, cond, EDM)
    assert (g1 - g2).abs().max() > 1e-3


# --- the (t, s, u) sampler (docs/algorithm.md §4.3) -------------------------------------------------------------------

N_DRAWS = 400_000


def chi2_upper(df: int, z: float = 4.5) -> float:
    """Wilson–Hilferty upper quantile of χ²_df at a normal z-score (z = 4.5: p ≈ 3e-6)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def chi2(observed: torch.Tensor, expected: torch.Tensor) -> float:
    mask = expected > 0
    assert int(observed[~mask].sum()) == 0, "draws outside the support"
    return float(((observed[mask] - expected[mask]) ** 2 / expected[mask]).sum())


def two_sample_chi2(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """Homogeneity χ² of two count vectors; returns (statistic, df)."""
    a, b = a.double(), b.double()
    keep = (a + b) > 0
    a, b = a[keep], b[keep]
    na, nb = a.sum(), b.sum()
    stat = ((a * (nb / na).sqrt() - b * (na / nb).sqrt()) ** 2 / (a + b)).sum()
    return float(stat), int(keep.sum()) - 1


@pytest.fixture(scope="module")
def draws():
    return sample_ctm_indices(N_DRAWS, 80, 1, torch.Generator().manual_seed(0))


def test_ctm_indices_support(draws):
    t, s, u = draws
    assert t.dtype == s.dtype == u.dtype == torch.long and t.shape == (N_DRAWS,)
    assert int(t.min()) == 0 and int(t.max()) == 79
    assert bool((s >= t).all()) and int(s.max()) == 80  # 80 reachable (clamps to σ_min)
    assert bool(((u == t) | (u == t + 1)).all())
    assert bool((u <= s).all())
    assert bool((u[s == t] == t[s == t]).all())


def test_ctm_indices_t_is_uniform(draws):
    t, _, _ = draws
    counts = torch.bincount(t, minlength=80).double()
    assert chi2(counts, torch.full((80,), N_DRAWS / 80)) < chi2_upper(79)


def test_ctm_indices_s_given_t_is_uniform_on_t_to_80(draws):
    t, s, _ = draws
    joint = torch.zeros(80, 81, dtype=torch.float64)
    joint.index_put_((t, s), torch.ones(N_DRAWS, dtype=torch.float64), accumulate=True)
    n_t = joint.sum(1, keepdim=True)
    support = torch.arange(81)[None, :] >= torch.arange(80)[:, None]
    expected = torch.where(support, n_t / support.sum(1, keepdim=True), torch.zeros(()))
    assert chi2(joint, expected) < chi2_upper(int(support.sum()) - 80)  # df = Σ_t (80 − t) = 3240
    # and the s marginal against its exact value P(s = j) = Σ_{t ≤ min(j, 79)} 1/(80·(81 − t))
    p_s = torch.tensor([sum(1 / (80 * (81 - tt)) for tt in range(min(j, 79) + 1)) for j in range(81)],
                       dtype=torch.float64)
    assert float(p_s.sum()) == pytest.approx(1.0)
    assert chi2(torch.bincount(s, minlength=81).double(), N_DRAWS * p_s) < chi2_upper(80)


def u_offset_probabilities(gap: int, k: int) -> torch.Tensor:
    """P(u − t = j | s − t = gap) for j = 0..k: u ~ U{t..s} then min(u, t + k)."""
    p = torch.zeros(k + 1, dtype=torch.float64)
    for v in range(gap + 1):
        p[min(v, k)] += 1 / (gap + 1)
    return p


@pytest.mark.parametrize("k", [1, 5])
def test_ctm_indices_u_given_t_and_s(k, draws):
    t, s, u = draws if k == 1 else sample_ctm_indices(N_DRAWS, 80, k, torch.Generator().manual_seed(k))
    gap, off = s - t, u - t
    assert int(off.max()) == k and int(off.min()) == 0
    observed = torch.zeros(81, k + 1, dtype=torch.float64)
    observed.index_put_((gap, off), torch.ones(N_DRAWS, dtype=torch.float64), accumulate=True)
    expected = torch.stack([u_offset_probabilities(d, k) for d in range(81)]) * observed.sum(1, keepdim=True)
    if k == 1:  # docs/algorithm.md's statement: P(u = t | s − t = d) = 1/(d + 1) (1 when s = t)
        torch.testing.assert_close(expected[:, 0] / observed.sum(1), 1 / (torch.arange(81) + 1.0).double())
    df = int((expected > 0).sum()) - 81
    assert chi2(observed, expected) < chi2_upper(df)


def reference_indices(n: int, n_levels: int, k: int, rng: random.Random) -> torch.Tensor:
    """The reference code's per-element loop (docs/algorithm.md §4.3), on Python's RNG."""
    rows = []
    for _ in range(n):
        t = rng.randint(0, n_levels - 1)
        s = rng.randint(t, n_levels)
        u = min(rng.randint(t, s), t + k)
        rows.append((t, s, u))
    return torch.tensor(rows)


@pytest.mark.parametrize("k", [1, 3])
def test_ctm_indices_match_a_per_sample_reference_loop(k):
    n = 60_000
    ref = reference_indices(n, 80, k, random.Random(k))
    t, s, u = sample_ctm_indices(n, 80, k, torch.Generator().manual_seed(10 + k))
    ours = torch.stack([t, s, u], 1)
    for name, key, size in [
        ("t", lambda z: z[:, 0], 80),
        ("s", lambda z: z[:, 1], 81),
        ("s - t", lambda z: z[:, 1] - z[:, 0], 81),
        ("(t, u - t)", lambda z: z[:, 0] * (k + 1) + z[:, 2] - z[:, 0], 80 * (k + 1)),
        ("(s - t, u - t)", lambda z: (z[:, 1] - z[:, 0]) * (k + 1) + z[:, 2] - z[:, 0], 81 * (k + 1)),
    ]:
        stat, df = two_sample_chi2(torch.bincount(key(ours), minlength=size), torch.bincount(key(ref), minlength=size))
        assert stat < chi2_upper(df), name


def test_ctm_indices_other_grid_sizes_and_generator_determinism():
    t, s, u = sample_ctm_indices(50_000, 10, 2, torch.Generator().manual_seed(0))
    assert int(t.max()) == 9 and int(s.max()) == 10 and bool((u - t <= 2).all())
    again = sample_ctm_indices(50_000, 10, 2, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip((t, s, u), again, strict=True))


# --- the teacher solver (docs/algorithm.md §4.4) ----------------------------------------------------------------------

MU = torch.linspace(-0.5, 0.5, H * C).reshape(H, C)
STD = torch.linspace(0.1, 0.4, H * C).reshape(H, C)


def gaussian_denoiser(x, sigma):
    sigma = sigma.reshape(-1, 1, 1)
    return MU + STD**2 / (STD**2 + sigma**2) * (x - MU)


def gaussian_flow(x, t, s):
    """Exact PF-ODE map σ = t → σ = s for N(MU, STD²) data (the ideal jump G*)."""
    t, s = t.reshape(-1, 1, 1), s.reshape(-1, 1, 1)
    return MU + ((STD**2 + s**2) / (STD**2 + t**2)).sqrt() * (x - MU)


def counting(denoiser):
    calls = []

    def f(x, sigma):
        calls.append(sigma)
        return denoiser(x, sigma)

    return f, calls


def test_teacher_solve_zero_steps_returns_x_unchanged():
    x = torch.randn(5, H, C)
    idx = torch.tensor([0, 10, 40, 79, 80])
    teacher, calls = counting(gaussian_denoiser)
    assert torch.equal(teacher_solve(teacher, x, idx, idx, EDM), x)
    assert calls == []


def test_teacher_solve_one_step_is_a_heun_step_and_guards_rows_with_u_equal_t():
    x = torch.randn(6, H, C) * 3
    t_idx = torch.tensor([0, 10, 40, 78, 79, 30])
    u_idx = torch.tensor([1, 10, 41, 79, 80, 30])
    out = teacher_solve(gaussian_denoiser, x, t_idx, u_idx, EDM)
    step = heun_step(gaussian_denoiser, x, karras_sigma(t_idx), karras_sigma(u_idx))
    moved = u_idx > t_idx
    torch.testing.assert_close(out[moved], step[moved])
    assert torch.equal(out[~moved], x[~moved])
    torch.testing.assert_close(out[4], x[4])  # 79 → 80 is σ_min → σ_min: no motion
    assert not torch.allclose(out[0], x[0])


def test_teacher_solve_multi_step_chains_heun_per_sample():
    x = torch.randn(4, H, C) * 2
    t_idx = torch.tensor([0, 20, 50, 75])
    u_idx = torch.tensor([5, 21, 50, 79])
    out = teacher_solve(gaussian_denoiser, x, t_idx, u_idx, EDM)
    for i in range(4):
        grid = karras_sigma(torch.arange(int(t_idx[i]), int(u_idx[i]) + 1))
        torch.testing.assert_close(out[i : i + 1], sample_heun(gaussian_denoiser, x[i : i + 1], grid))


def test_teacher_solve_composes_and_follows_the_exact_flow():
    g = torch.Generator().manual_seed(0)
    t_idx = torch.randint(0, 60, (64,), generator=g)
    u_idx = t_idx + torch.randint(0, 6, (64,), generator=g)
    end = torch.full_like(t_idx, 79)
    x = MU + karras_sigma(t_idx)[:, None, None] * torch.randn(64, H, C, generator=g)
    via_u = teacher_solve(gaussian_denoiser, teacher_solve(gaussian_denoiser, x, t_idx, u_idx, EDM), u_idx, end, EDM)
    direct = teacher_solve(gaussian_denoiser, x, t_idx, end, EDM)
    torch.testing.assert_close(via_u, direct, rtol=1e-5, atol=1e-5)
    exact = gaussian_flow(x, karras_sigma(t_idx), torch.full((64,), 0.02))
    torch.testing.assert_close(direct, exact, rtol=0, atol=5e-3)


# --- L_CTM (docs/algorithm.md §4.5) -----------------------------------------------------------------------------------

L2 = EDMConfig(huber_variant="l2", huber_c=1e-6)  # loss ≈ mean ‖pred₀ − target₀‖: readable scale


def gaussian_data(n: int, seed: int = 0) -> torch.Tensor:
    return MU + STD * torch.randn(n, H, C, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("k", [1, 4])
def test_ctm_loss_vanishes_for_the_exact_flow_map_and_not_for_a_wrong_one(k):
    cfg = CTMConfig(ode_steps_max=k)
    x0 = gaussian_data(4096)

    def biased(x, t, s):
        return gaussian_flow(x, t, s) + 0.05

    exact = float(ctm_loss(gaussian_flow, gaussian_flow, gaussian_denoiser, x0, None, cfg,
                           torch.Generator().manual_seed(1), edm=L2))
    wrong = float(ctm_loss(biased, gaussian_flow, gaussian_denoiser, x0, None, cfg, torch.Generator().manual_seed(1),
                           edm=L2))
    assert exact < 2e-4  # only the teacher's Heun error between t and u remains
    assert wrong > 20 * exact and wrong > 5e-3


def test_ctm_loss_structure(monkeypatch):
    """pred = G(x_t, t, s); both sides mapped to σ_min by the target; target side built from x_u (docs/algorithm.md
    §4.12)."""
    calls = {"student": [], "target": []}
    x0 = gaussian_data(32)
    t_idx, s_idx, u_idx = torch.full((32,), 10), torch.full((32,), 30), torch.full((32,), 11)
    monkeypatch.setattr(ctm_module, "sample_ctm_indices", lambda *a, **k: (t_idx, s_idx, u_idx))

    def student(x, t, s):
        calls["student"].append((x, t, s))
        return gaussian_flow(x, t, s) + 0.1

    def target(x, t, s):
        calls["target"].append((x.detach().clone(), t, s))
        return gaussian_flow(x, t, s)

    cfg = CTMConfig()
    g = torch.Generator().manual_seed(5)
    loss = ctm_loss(student, target, gaussian_denoiser, x0, None, cfg, g, edm=EDM)
    sig = karras_sigma
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))  # first draw after the (patched) indices
    x_t = x0 + sig(10) * eps
    x_u = heun_step(gaussian_denoiser, x_t, sig(t_idx), sig(u_idx))
    (sx, st, ss), = calls["student"]
    torch.testing.assert_close(sx, x_t)
    torch.testing.assert_close(st, sig(t_idx))
    torch.testing.assert_close(ss, sig(s_idx))
    assert len(calls["target"]) == 3
    (a_x, a_t, a_s), (b_x, b_t, b_s), (c_x, c_t, c_s) = calls["target"]
    torch.testing.assert_close(a_x, x_u)
    torch.testing.assert_close(a_t, sig(u_idx))
    torch.testing.assert_close(a_s, sig(s_idx))
    torch.testing.assert_close(b_x, gaussian_flow(x_u, sig(u_idx), sig(s_idx)))
    torch.testing.assert_close(c_x, gaussian_flow(x_t, sig(t_idx), sig(s_idx)) + 0.1)
    for tt, ss_ in ((b_t, b_s), (c_t, c_s)):
        torch.testing.assert_close(tt, sig(s_idx))
        torch.testing.assert_close(ss_, torch.full((32,), 0.02))
    zero = torch.full((32,), 0.02)
    pred0 = gaussian_flow(gaussian_flow(x_t, sig(t_idx), sig(s_idx)) + 0.1, sig(s_idx), zero)
    target0 = gaussian_flow(gaussian_flow(x_u, sig(u_idx), sig(s_idx)), sig(s_idx), zero)
    expected = pseudo_huber(pred0, target0, None, "elementwise_squared")  # unweighted, c from the sample size
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)


def test_ctm_loss_is_zero_when_u_equals_t_and_student_is_target(monkeypatch):
    idx = torch.randint(0, 80, (16,), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(ctm_module, "sample_ctm_indices", lambda *a, **k: (idx, torch.clamp(idx + 7, max=80), idx))
    torch.manual_seed(0)
    net = unet(2, cond_dim=0).eval()

    def jump(x, t, s):
        return ctm_jump(net, x, t, s, None, EDM)

    teacher, calls = counting(gaussian_denoiser)
    assert float(ctm_loss(jump, jump, teacher, torch.randn(16, H, C), None, CTMConfig(), None, edm=EDM).detach()) == 0.0
    assert calls == []  # zero-step guard: the teacher is never evaluated


# --- L_DSM (docs/algorithm.md §4.6) -----------------------------------------------------------------------------------

def test_dsm_sigmas_mixture():
    b = 100_001
    sigma = dsm_sigmas(b, CTMConfig(), torch.Generator().manual_seed(0), edm=EDM).double()
    ramp, lognormal = sigma[: (b + 1) // 2], sigma[(b + 1) // 2 :]
    assert len(ramp) == 50_001 and len(lognormal) == 50_000
    assert float(ramp.min()) >= 0.7588 and float(ramp.max()) <= 80.0
    # ξ recovered from the ramp is U[0, 0.7]: Kolmogorov–Smirnov distance small
    lo, hi = 0.02 ** (1 / 7), 80 ** (1 / 7)
    xi = ((ramp ** (1 / 7) - hi) / (lo - hi)).sort().values
    ecdf = torch.arange(1, len(xi) + 1, dtype=torch.float64) / len(xi)
    assert float((ecdf - xi / 0.7).abs().max()) < 1.63 / math.sqrt(len(xi)) + 1e-3  # KS at p = 0.01
    log_s = lognormal.log()
    assert float(log_s.mean()) == pytest.approx(-1.2, abs=0.02)
    assert float(log_s.std()) == pytest.approx(1.2, abs=0.02)
    assert float(lognormal.min()) < 0.02  # not clipped (docs/algorithm.md §8 item 12)
    small = dsm_sigmas(3, CTMConfig(), torch.Generator().manual_seed(1), edm=EDM)
    assert small.shape == (3,) and float(small[:2].min()) >= 0.7588


def test_dsm_loss_regresses_the_jump_to_sigma_min_onto_x0(monkeypatch):
    sigma = torch.tensor([0.01, 0.3, 2.0, 60.0])
    monkeypatch.setattr(ctm_module, "dsm_sigmas", lambda *a, **k: sigma)
    x0 = gaussian_data(4)
    seen = []

    def student(x, t, s):
        seen.append(("G", t, s))
        return 0.5 * x

    def student_g(x, t, s):
        seen.append(("g", t, s))
        return 0.25 * x

    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(2))
    x_sigma = x0 + sigma[:, None, None] * eps
    w = karras_loss_weight(sigma)
    for cfg, factor, kind, s_expected in [
        (CTMConfig(), 0.5, "G", torch.full((4,), 0.02)),
        (CTMConfig(dsm_on="denoiser"), 0.25, "g", sigma),
    ]:
        seen.clear()
        loss, pred = dsm_loss(student, x0, cfg, torch.Generator().manual_seed(2), student_g, edm=EDM)
        torch.testing.assert_close(pred, factor * x_sigma)
        assert float(loss) == pytest.approx(float(pseudo_huber(factor * x_sigma, x0, None, weight=w)), rel=1e-5)
        (k, t, s), = seen
        assert k == kind
        torch.testing.assert_close(t, sigma)
        torch.testing.assert_close(s, s_expected)
    loss, _ = dsm_loss(student, x0, CTMConfig(dsm_weighting="uniform"), torch.Generator().manual_seed(2), edm=EDM)
    assert float(loss) == pytest.approx(float(pseudo_huber(0.5 * x_sigma, x0)), rel=1e-5)
    with pytest.raises(ValueError, match="student_g"):
        dsm_loss(student, x0, CTMConfig(dsm_on="denoiser"), edm=EDM)


# --- the full objective (docs/algorithm.md §4.7, §4.8) ----------------------------------------------------------------

@pytest.fixture
def nets():
    torch.manual_seed(0)
    teacher = unet(1).eval()
    student = unet(2)
    student.load_state_dict(insert_zero_time_columns(teacher.state_dict(), DSED))
    with torch.no_grad():  # an init that is not the teacher's, so that every loss term is non-zero
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    target = unet(2)
    target.load_state_dict(student.state_dict())
    target.requires_grad_(False)
    reward = nn.Sequential(nn.Flatten(), nn.Linear(H * C, 1), nn.Flatten(0))
    reward.requires_grad_(False)
    return CTMDenoiser(student, EDM), CTMDenoiser(target, EDM), EDMDenoiser(teacher, EDM), reward


def batch(n: int = 8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, H, C, generator=g) * 2 - 1, torch.randn(n, COND, generator=g)


def test_ractd_loss_gradients_reach_only_the_student(nets):
    student, target, teacher, reward = nets
    x0, cond = batch()
    cfg = CTMConfig(reward_weight=0.5, ode_steps_max=3)
    losses = ractd_loss(student, target, teacher, x0, cond, cfg, reward, torch.Generator().manual_seed(0))
    for v in (losses.total, losses.ctm, losses.dsm, losses.reward):
        assert v.shape == () and torch.isfinite(v)
    assert float(losses.ctm) > 0 and float(losses.dsm) > 0 and float(losses.reward) != 0
    assert not (losses.ctm.requires_grad or losses.dsm.requires_grad or losses.reward.requires_grad)
    losses.total.backward()
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert all(p.grad is None for p in teacher.parameters())  # teacher solve is no-grad, even unfrozen
    assert all(p.grad is None for p in (*target.parameters(), *reward.parameters()))


@pytest.mark.parametrize("term", ["ctm", "reward"])
def test_each_loss_term_alone_trains_the_student(nets, term):
    student, target, teacher, reward = nets
    x0, cond = batch()
    cfg = CTMConfig(alpha=1.0 if term == "ctm" else 0.0, beta=0.0, reward_weight=1.0 if term == "reward" else 0.0)
    ractd_loss(student, target, teacher, x0, cond, cfg, reward, torch.Generator().manual_seed(0)).total.backward()
    assert sum(float(p.grad.abs().sum()) for p in student.parameters() if p.grad is not None) > 0


def test_ractd_total_is_the_weighted_sum(nets):
    student, target, teacher, reward = nets
    x0, cond = batch()
    cfg = CTMConfig(alpha=0.7, beta=1.3, reward_weight=0.4)
    losses = ractd_loss(student, target, teacher, x0, cond, cfg, reward, torch.Generator().manual_seed(0))
    expected = 0.7 * losses.ctm + 1.3 * losses.dsm + 0.4 * losses.reward
    assert float(losses.total.detach()) == pytest.approx(float(expected), rel=1e-5)
    # same draws → same values (deterministic given the generator)
    again = ractd_loss(student, target, teacher, x0, cond, cfg, reward, torch.Generator().manual_seed(0))
    assert float(again.total.detach()) == float(losses.total.detach())


def test_ractd_alpha_zero_skips_the_teacher(nets):
    student, target, teacher, reward = nets
    x0, cond = batch()
    called = []
    teacher.register_forward_hook(lambda *a: called.append(1))
    g = torch.Generator().manual_seed(0)
    losses = ractd_loss(student, target, teacher, x0, cond, CTMConfig(alpha=0.0), None, g)
    assert float(losses.ctm) == 0.0 and float(losses.reward) == 0.0 and called == []
    assert float(losses.total.detach()) == pytest.approx(float(losses.dsm))


def test_ractd_reward_weight_without_reward_model_raises(nets):
    student, target, teacher, _ = nets
    x0, cond = batch()
    with pytest.raises(ValueError, match="no reward model"):
        ractd_loss(student, target, teacher, x0, cond, CTMConfig(reward_weight=0.1), None)


@pytest.mark.parametrize("reward_on", ["dsm_pred", "one_step"])
def test_reward_on_selects_the_scored_tensor(nets, monkeypatch, reward_on):
    student, target, teacher, _ = nets
    x0, cond = batch()
    produced = {}
    real_dsm, real_one_step = ctm_module.dsm_loss, ctm_module.one_step_sample

    def spy_dsm(*a, **k):
        produced["dsm_pred"] = real_dsm(*a, **k)[1]
        return real_dsm(*a, **k)[0], produced["dsm_pred"]

    def spy_one_step(student_fn, shape, edm, generator=None, device=None, clamp=True):
        produced["one_step_clamp"] = clamp
        produced["one_step"] = real_one_step(student_fn, shape, edm, generator, device, clamp)
        return produced["one_step"]

    monkeypatch.setattr(ctm_module, "dsm_loss", spy_dsm)
    monkeypatch.setattr(ctm_module, "one_step_sample", spy_one_step)
    scored = []

    def reward(x):
        scored.append(x)
        return x[..., 0].mean(1)

    cfg = CTMConfig(reward_weight=1.0, reward_on=reward_on, alpha=0.0)
    losses = ractd_loss(student, target, teacher, x0, cond, cfg, reward, torch.Generator().manual_seed(0))
    (x,) = scored
    assert x is produced[reward_on]
    assert x.requires_grad  # the reward gradient reaches the student through its prediction
    if reward_on == "dsm_pred":
        assert "one_step" not in produced
    else:
        assert produced["one_step_clamp"] is False and x is not produced["dsm_pred"]
    assert float(losses.reward) == pytest.approx(-float(x[..., 0].mean(1).mean().detach()), rel=1e-6)


# --- sampling with the student (docs/algorithm.md §5) -----------------------------------------------------------------

def recording_student():
    calls = []

    def student(x, t, s):
        calls.append((x.clone(), t.clone(), s.clone()))
        return 3 * x + 1  # leaves [−1, 1] so the clamp is visible

    return student, calls


def test_one_step_sample_jumps_from_sigma_max_to_sigma_min():
    student, calls = recording_student()
    for scale in (1.0, 80.0):
        calls.clear()
        g = torch.Generator().manual_seed(0)
        out = one_step_sample(student, (4000, H, C), EDMConfig(init_noise_scale=scale), g)
        ((x_T, t, s),) = calls
        assert float(x_T.std()) == pytest.approx(scale, rel=0.03)
        assert bool((t == 80.0).all()) and bool((s == 0.02).all())
        torch.testing.assert_close(out, (3 * x_T + 1).clamp(-1, 1))
    raw = one_step_sample(student, (5, H, C), EDM, torch.Generator().manual_seed(0), clamp=False)
    assert float(raw.abs().max()) > 1


def test_multistep_sample_renoises_and_jumps_back():
    student, calls = recording_student()
    g = torch.Generator().manual_seed(0)
    out = multistep_sample(student, (2000, H, C), [27.0, 1.0], EDM, g)
    assert len(calls) == 3  # NFE = 1 + len(chain)
    first = (3 * calls[0][0] + 1).clamp(-1, 1)
    for (x_prev, tau), (x_in, t, s) in zip([(first, 27.0), (None, 1.0)], calls[1:], strict=True):
        assert bool((t == tau).all()) and bool((s == 0.02).all())
        if x_prev is not None:
            assert float((x_in - x_prev).std()) == pytest.approx(tau, rel=0.03)  # x̂ + τε
    torch.testing.assert_close(out, (3 * calls[-1][0] + 1).clamp(-1, 1))


# --- target network (docs/algorithm.md §4.8) --------------------------------------------------------------------------

def test_update_target_copies_at_zero_and_averages_at_one_half():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    online(torch.randn(8, 3))  # moves the running stats
    for decay, mix in [(0.0, 1.0), (0.5, 0.5), (0.9, 0.1)]:
        target = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).requires_grad_(False)
        before = [p.clone() for p in target.parameters()]
        update_target(target, online, decay)
        for p_t, p_0, p in zip(target.parameters(), before, online.parameters(), strict=True):
            torch.testing.assert_close(p_t, (1 - mix) * p_0 + mix * p)
        for b_t, b in zip(target.buffers(), online.buffers(), strict=True):
            torch.testing.assert_close(b_t, b.to(b_t.dtype))


def test_ctm_config_rejects_bad_values():
    for kwargs, match in [
        ({"ode_steps_max": 0}, "ode_steps_max"),
        ({"dsm_xi_max": 0.0}, "dsm_xi_max"),
        ({"dsm_on": "x"}, "dsm_on"),
        ({"reward_on": "one_step_from_noise"}, "reward_on"),
        ({"target_decay": 1.0}, "target_decay"),
        ({"reward_weight": -1.0}, "loss weights"),
    ]:
        with pytest.raises(ValueError, match=match):
            CTMConfig(**kwargs)


def test_teacher_solve_evaluates_only_rows_that_still_need_a_step_with_their_own_condition():
    # Rows step 0, 1, 3 and 2 times: the teacher sees 3 rows, then 2, then 1; the condition travels with its rows.
    t_idx = torch.tensor([10, 20, 30, 40])
    u_idx = torch.tensor([10, 21, 33, 42])
    x = torch.randn(4, H, C, generator=torch.Generator().manual_seed(3)) * 2
    cond = torch.arange(4.0)
    seen = []

    def shifted(x, sigma, cond):  # a Gaussian denoiser whose mean depends on the row's condition
        seen.append(cond.tolist())
        return gaussian_denoiser(x - cond[:, None, None], sigma) + cond[:, None, None]

    out = teacher_solve(shifted, x, t_idx, u_idx, EDM, {"cond": cond})
    assert seen == [[1.0, 2.0, 3.0]] * 2 + [[2.0, 3.0]] * 2 + [[2.0]] * 2  # two evaluations per Heun step
    assert torch.equal(out[0], x[0])
    for i in (1, 2, 3):  # each row equals its own solve, run alone
        alone = teacher_solve(shifted, x[i : i + 1], t_idx[i : i + 1], u_idx[i : i + 1], EDM, {"cond": cond[i : i + 1]})
        torch.testing.assert_close(out[i : i + 1], alone)
    assert torch.equal(x, torch.randn(4, H, C, generator=torch.Generator().manual_seed(3)) * 2)  # input untouched


def test_reward_loss_batch_mean_abs_divides_by_the_detached_mean_absolute_reward():
    x = torch.tensor([[[1.0]], [[-3.0]]], requires_grad=True)

    def reward(x_hat):  # R = 10·x, scores 10 and −30: mean −10, mean |R| 20
        return 10 * x_hat[:, 0, 0]

    plain, scaled = reward_loss(reward, x), reward_loss(reward, x, "batch_mean_abs")
    assert float(plain.detach()) == pytest.approx(10.0) and float(scaled.detach()) == pytest.approx(0.5)
    (grad,) = torch.autograd.grad(scaled, x)  # the divisor carries no gradient: d/dx of −mean(10x)/20
    torch.testing.assert_close(grad, torch.full_like(x, -10 / 2 / 20))
    with pytest.raises(ValueError, match="reward_scale must be"):
        CTMConfig(reward_scale="q")
