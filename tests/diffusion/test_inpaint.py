"""Inpainting known entries while sampling (docs/conditioning.md §5): the result keeps them exactly in both modes,
`noised` shows the network its forward-noised values at each step's level, `clean` shows it the clean values."""

import pytest
import torch

from ractd.diffusion import (
    DDPMConfig,
    KnownEntries,
    cosine_alpha_bars,
    guided,
    impose_known,
    impose_known_noised,
    known_states,
    sample_ddpm,
)

torch.set_num_threads(1)

CFG = DDPMConfig(num_train_steps=25)


def test_known_states_layout():
    start, goal = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[4.0, 5.0, 6.0]])
    known = known_states(6, 2, start, goal)
    assert known.mask.shape == known.values.shape == (1, 6, 5)
    assert known.mask.sum() == 6 and bool(known.mask[0, 0, 2:].all()) and bool(known.mask[0, -1, 2:].all())
    assert not bool(known.mask[..., :2].any())  # actions are never known
    assert torch.equal(known.values[0, 0, 2:], start[0]) and torch.equal(known.values[0, -1, 2:], goal[0])
    start_only = known_states(6, 2, start)
    assert start_only.mask.sum() == 3 and not bool(start_only.mask[0, -1].any())
    with pytest.raises(ValueError, match="start must be"):
        known_states(6, 2, start[0])
    with pytest.raises(ValueError, match="too short for a start and a goal"):
        known_states(1, 2, start, goal)
    with pytest.raises(ValueError, match="bool"):
        KnownEntries(torch.zeros(2), torch.zeros(2))


def test_impose_known_and_its_noised_version():
    x = torch.randn(20_000, 3, 2)
    known = known_states(3, 1, torch.full((20_000, 1), 0.8))
    assert torch.equal(impose_known(x, known)[:, 0, 1], torch.full((20_000,), 0.8))
    assert torch.equal(impose_known(x, known)[:, 1:], x[:, 1:]) and torch.equal(impose_known(x, known)[:, 0, 0],
                                                                                  x[:, 0, 0])
    a = torch.tensor(0.3)
    out = impose_known_noised(x, known, a, torch.Generator().manual_seed(0))
    entries = out[:, 0, 1]
    assert float(entries.mean()) == pytest.approx(0.3**0.5 * 0.8, abs=0.02)  # √ᾱ·v
    assert float(entries.var()) == pytest.approx(0.7, abs=0.03)  # 1 − ᾱ
    assert torch.equal(out[:, 1:], x[:, 1:])


def random_net(x, t, cond=None):
    return torch.tanh(x * 1.7 + 0.01 * t.reshape(-1, 1, 1)) - 0.3


@pytest.mark.parametrize("inpaint", ["noised", "clean"])
@pytest.mark.parametrize("prediction", ["x0", "epsilon"])
def test_sampled_plan_keeps_the_known_entries_exactly(inpaint, prediction):
    g = torch.Generator().manual_seed(0)
    start, goal = torch.rand(4, 3, generator=g) * 2 - 1, torch.rand(4, 3, generator=g) * 2 - 1
    known = known_states(8, 2, start, goal)
    out = sample_ddpm(random_net, torch.randn(4, 8, 5, generator=g), None, CFG, prediction=prediction,
                      known=known, inpaint=inpaint, generator=g)
    assert torch.equal(out[:, 0, 2:], start) and torch.equal(out[:, -1, 2:], goal)
    assert torch.isfinite(out).all()
    # with guidance too
    cond = torch.randn(4, 2, 3, generator=g)
    net = guided(lambda x, t, cond=None: random_net(x, t) + cond.mean((1, 2)).reshape(-1, 1, 1), 1.3)
    out = sample_ddpm(net, torch.randn(4, 8, 5, generator=g), cond, CFG, known=known, inpaint=inpaint, generator=g)
    assert torch.equal(out[:, 0, 2:], start) and torch.equal(out[:, -1, 2:], goal)


def test_noised_inpainting_shows_each_steps_noise_level():
    """At step t the network sees the known entries at √ᾱ_t·v + √(1 − ᾱ_t)·ξ, a fresh ξ each step."""
    n, v = 20_000, 0.6
    known = known_states(4, 1, torch.full((n, 1), v))
    seen = {}

    def net(x, t, cond=None):
        seen[int(t[0])] = x[:, 0, 1].clone()
        return torch.zeros_like(x)

    sample_ddpm(net, torch.randn(n, 4, 2), None, CFG, known=known, inpaint="noised",
                generator=torch.Generator().manual_seed(0))
    alpha_bar = cosine_alpha_bars(CFG)
    for t in (24, 12, 3, 0):
        a = float(alpha_bar[t])
        assert float(seen[t].mean()) == pytest.approx(a**0.5 * v, abs=0.02), t
        assert float(seen[t].var()) == pytest.approx(1 - a, abs=0.03 + 0.03 * (1 - a)), t
    assert float(torch.corrcoef(torch.stack([seen[12], seen[11]]))[0, 1]) < 0.05  # fresh noise per step


def test_clean_inpainting_shows_the_clean_values_at_every_step():
    known = known_states(4, 1, torch.full((3, 1), 0.6), torch.full((3, 1), -0.2))
    seen = []

    def net(x, t, cond=None):
        seen.append(x.clone())
        return torch.zeros_like(x)

    sample_ddpm(net, torch.randn(3, 4, 2), None, CFG, known=known, inpaint="clean")
    assert len(seen) == 25
    assert all(torch.equal(x[:, 0, 1], torch.full((3,), 0.6)) and torch.equal(x[:, -1, 1], torch.full((3,), -0.2))
               for x in seen)


def test_known_entries_must_fit_the_plan():
    known = known_states(6, 1, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"does not broadcast to the plan's shape \(2, 8, 4\)"):
        sample_ddpm(random_net, torch.randn(2, 8, 4), None, CFG, known=known)
