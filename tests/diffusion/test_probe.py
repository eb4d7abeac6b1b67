"""The start-response probe against networks whose answer is known: one that copies the start into every step
(response 1), one that returns x_t's own positions (0 for clean inpainting), and an ε network with a closed form."""

import pytest
import torch

from ractd.diffusion import DDPMConfig, cosine_alpha_bars
from ractd.diffusion.probe import start_response

CFG = DDPMConfig(num_train_steps=20)
A = 2  # action channels; states (x, y, vx, vy) follow


def plans(b: int = 16, h: int = 8) -> torch.Tensor:
    return torch.randn(b, h, A + 4, generator=torch.Generator().manual_seed(0))


def copies_the_clean_start(x, t, cond=None):  # x0 prediction: every step = x_t's start entry
    return x[:, :1].expand_as(x).clone()


def identity(x, t, cond=None):  # x0 prediction: the noisy plan itself
    return x.clone()


def test_a_network_that_copies_the_start_follows_it_fully():
    r = start_response(copies_the_clean_start, plans(), None, CFG, [3, 15], prediction="x0", inpaint="clean",
                       act_dim=A)
    assert set(r) == {3, 15} and all(len(v) == 5 for v in r.values())
    assert all(v == pytest.approx(1.0, abs=1e-5) for vs in r.values() for v in vs)


def test_a_network_that_ignores_the_start_does_not_follow_it():
    r = start_response(identity, plans(), None, CFG, [0, 10, 19], prediction="x0", inpaint="clean", act_dim=A)
    assert all(v == pytest.approx(0.0, abs=1e-6) for vs in r.values() for v in vs)


def test_noised_start_moves_by_sqrt_alpha_bar():
    # ε̂ = (x_t − x_t[start]) / √(1 − ᾱ_t) gives x̂0 = x_t[start] / √ᾱ_t at every step: the start entry, noised and
    # moved by √ᾱ_t·d, moves x̂0 by exactly d (response 1); a response of √ᾱ_t would mean the shift was not scaled
    def eps_copy(x, t, cond=None):
        a = cosine_alpha_bars(CFG)[int(t[0])]
        return (x - x[:, :1].expand_as(x)) / (1 - a).sqrt()

    r = start_response(eps_copy, plans(), None, CFG, [5, 12], prediction="epsilon", inpaint="noised", act_dim=A)
    assert all(v == pytest.approx(1.0, abs=1e-4) for vs in r.values() for v in vs)


def test_bad_arguments():
    with pytest.raises(ValueError, match="inpaint"):
        start_response(identity, plans(), None, CFG, [1], prediction="x0", inpaint="replace", act_dim=A)
    with pytest.raises(ValueError, match="outside 0..19"):
        start_response(identity, plans(), None, CFG, [20], prediction="x0", inpaint="clean", act_dim=A)
    with pytest.raises(ValueError, match="H > steps"):
        start_response(identity, plans(h=4), None, CFG, [1], prediction="x0", inpaint="clean", act_dim=A, steps=5)
