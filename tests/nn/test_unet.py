"""ConditionalUnet1D (docs/algorithm.md §3.1, §4.1): shapes, input errors, parameter counts by hand, dropout placement,
the sinusoidal time embedding and the warm-start weight map (docs/algorithm.md §4.9)."""

import math

import pytest
import torch
from torch import nn

from ractd.nn import ConditionalUnet1D, SinusoidalPosEmb, count_parameters, insert_zero_time_columns

torch.set_num_threads(1)


def small(n_time_inputs: int = 1, cond: int = 3, **kw) -> ConditionalUnet1D:
    return ConditionalUnet1D(2, cond, 16, (16, 32, 64), n_time_inputs=n_time_inputs, **kw)


def hand_count(c: int, dc: int, dsed: int, dims: list[int], n_time: int = 1, k: int = 5) -> int:
    """Parameters of the docs/algorithm.md §3.1 architecture, written out layer by layer."""
    def conv(i, o, kk):
        return i * o * kk + o

    def lin(a, b):
        return a * b + b

    def block(i, o):  # Conv1d(k) + GroupNorm(affine)
        return conv(i, o, k) + 2 * o

    cond = n_time * dsed + dc

    def res(i, o):
        return block(i, o) + block(o, o) + lin(cond, 2 * o) + (conv(i, o, 1) if i != o else 0)

    total = lin(dsed, 4 * dsed) + lin(4 * dsed, dsed)  # time-embedding MLP
    levels = list(zip([c, *dims[:-1]], dims, strict=True))
    for j, (i, o) in enumerate(levels):
        total += res(i, o) + res(o, o) + (conv(o, o, 3) if j < len(levels) - 1 else 0)
    total += 2 * res(dims[-1], dims[-1])
    for d_in, d_out in reversed(levels[1:]):
        total += res(2 * d_out, d_in) + res(d_in, d_in) + conv(d_in, d_in, 4)  # ConvTranspose1d(k = 4)
    return total + block(dims[0], dims[0]) + conv(dims[0], c, 1)


@pytest.mark.parametrize("n_time_inputs", [1, 2])
@pytest.mark.parametrize("horizon", [4, 8, 16])
def test_output_shape(n_time_inputs, horizon):
    net = small(n_time_inputs).eval()
    x, tau = torch.randn(3, horizon, 2), torch.randn(3) * 100
    out = net(x, tau, tau if n_time_inputs == 2 else None, cond=torch.randn(3, 3))
    assert out.shape == (3, horizon, 2) and torch.isfinite(out).all()


def test_scalar_time_broadcasts_and_inputs_matter():
    torch.manual_seed(0)
    net = small(2).eval()
    x, cond = torch.randn(3, 8, 2), torch.randn(3, 3)
    t, s = torch.tensor(100.0), torch.tensor(-900.0)
    out = net(x, t, s, cond=cond)
    torch.testing.assert_close(out, net(x, t.expand(3), s.expand(3), cond=cond))
    assert not torch.allclose(out, net(x, t, torch.tensor(0.0), cond=cond))  # s matters
    assert not torch.allclose(out, net(x, torch.tensor(0.0), s, cond=cond))  # t matters
    assert not torch.allclose(out, net(x, t, s, cond=cond + 1))  # c matters
    # samples are processed independently (GroupNorm is per sample)
    torch.testing.assert_close(net(x[:1], t, s, cond=cond[:1]), out[:1], rtol=1e-5, atol=1e-6)


def test_horizon_must_be_divisible():
    net = small()
    assert net.horizon_multiple == 4
    with pytest.raises(ValueError, match=r"horizon 6 is not divisible by 2\*\*\(len\(down_dims\)-1\) = 4"):
        net(torch.randn(2, 6, 2), torch.zeros(2), cond=torch.zeros(2, 3))


def test_cond_shape_errors():
    net = small()
    x, tau = torch.randn(2, 8, 2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"expected cond of shape \(B, 3\), got \(2, 4\)"):
        net(x, tau, cond=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"expected cond of shape \(B, 3\), got None"):
        net(x, tau)
    net.eval()
    unconditional = ConditionalUnet1D(2, 0, 16, (16,))
    assert unconditional(x, tau).shape == x.shape


def test_time_input_count_errors():
    x, tau = torch.randn(2, 8, 2), torch.zeros(2)
    with pytest.raises(ValueError, match="takes 2 time input"):
        small(2)(x, tau, cond=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="takes 1 time input"):
        small(1)(x, tau, tau, cond=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_time_inputs must be 1 or 2"):
        small(3)
    with pytest.raises(ValueError, match="multiple of n_groups=8"):
        ConditionalUnet1D(2, 0, 16, (12, 24))


@pytest.mark.parametrize("n_time", [1, 2])
def test_small_parameter_count_by_hand(n_time):
    assert count_parameters(small(n_time)) == hand_count(2, 3, 16, [16, 32, 64], n_time)


def test_mujoco_paper_unet_parameter_count():
    """Input 3 (hopper actions), cond 11 (one hopper observation), dsed 128, [512, 1024, 2048] (docs/algorithm.md
    §3.1, §4.1)."""
    assert hand_count(3, 11, 128, [512, 1024, 2048]) == 248_046_211
    with torch.device("meta"):  # 1 GB in fp32: count without allocating
        teacher = ConditionalUnet1D(3, 11, 128, (512, 1024, 2048))
        student = ConditionalUnet1D(3, 11, 128, (512, 1024, 2048), n_time_inputs=2)
    assert count_parameters(teacher) == 248_046_211
    # the student adds one dsed-wide block per FiLM matrix: ≈ 252 M (docs/algorithm.md §4.1)
    assert count_parameters(student) == hand_count(3, 11, 128, [512, 1024, 2048], 2) == 251_716_227


def dropouts(module: nn.Module) -> list[float]:
    return [m.p for m in module.modules() if isinstance(m, nn.Dropout)]


def test_dropout_placement_and_hidden_mid_default():
    net = small()
    assert all(p == 0.2 for p in dropouts(net.mid_modules)) and len(dropouts(net.mid_modules)) == 4
    assert all(p == 0.0 for p in dropouts(net.down_modules) + dropouts(net.up_modules))
    student = small(2, dropout=0.2, mid_dropout=0.2)
    assert set(dropouts(student)) == {0.2}
    no_mid = small(mid_dropout=0.0)
    assert set(dropouts(no_mid)) == {0.0}


def test_mid_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    net = small()
    x, tau, cond = torch.randn(2, 8, 2), torch.ones(2), torch.randn(2, 3)
    net.train()
    assert not torch.allclose(net(x, tau, cond=cond), net(x, tau, cond=cond))
    net.eval()
    torch.testing.assert_close(net(x, tau, cond=cond), net(x, tau, cond=cond))
    det = small(mid_dropout=0.0).train()
    torch.testing.assert_close(det(x, tau, cond=cond), det(x, tau, cond=cond))


def test_film_uses_plain_scale():
    """h = scale·h + bias (cond_predict_scale), not (1 + scale)·h: a zero FiLM matrix makes the block input its bias."""
    torch.manual_seed(0)
    net = ConditionalUnet1D(2, 0, 16, (16,), mid_dropout=0.0).eval()
    block = net.down_modules[0][0]
    with torch.no_grad():
        block.cond_encoder[1].weight.zero_()
        block.cond_encoder[1].bias.copy_(torch.cat([torch.zeros(16), torch.full((16,), 0.7)]))  # scale 0, bias 0.7
    x, g = torch.randn(2, 2, 8), torch.randn(2, 16)
    expected = block.blocks[1](torch.full((2, 16, 8), 0.7)) + block.residual_conv(x)
    torch.testing.assert_close(block(x, g), expected)


def test_sinusoidal_embedding_hand_values():
    emb = SinusoidalPosEmb(4)  # half = 2 frequencies: exp(0) = 1 and exp(−ln 10000) = 1e−4
    tau = torch.tensor([0.0, 2.0, -1000.0])
    expected = torch.stack(
        [torch.sin(tau), torch.sin(1e-4 * tau), torch.cos(tau), torch.cos(1e-4 * tau)], dim=-1
    )
    torch.testing.assert_close(emb(tau), expected)
    freqs = SinusoidalPosEmb(128).freqs
    torch.testing.assert_close(freqs, torch.exp(-math.log(10000) * torch.arange(64) / 63))
    with pytest.raises(ValueError, match="even"):
        SinusoidalPosEmb(5)


def test_student_shares_one_time_embedding():
    student = small(2)
    embeddings = [m for m in student.modules() if type(m).__name__ == "TimeEmbedding"]
    assert len(embeddings) == 1


def test_insert_zero_time_columns_maps_every_film_matrix():
    torch.manual_seed(0)
    teacher = small(1)
    state = teacher.state_dict()
    snapshot = {k: v.clone() for k, v in state.items()}
    mapped = insert_zero_time_columns(state, 16)
    student = small(2)
    student.load_state_dict(mapped)  # strict: same keys, every shape fits
    film = [k for k in state if k.endswith("cond_encoder.1.weight")]
    assert len(film) == 2 * 3 + 2 + 2 * 2  # 2 per encoder level, 2 mid, 2 per decoder level
    for key, w in mapped.items():
        if key in film:
            assert w.shape == (state[key].shape[0], 2 * 16 + 3)
            torch.testing.assert_close(w[:, :16], state[key][:, :16])  # τ_t columns
            assert torch.equal(w[:, 16:32], torch.zeros_like(w[:, 16:32]))  # new τ_s columns
            torch.testing.assert_close(w[:, 32:], state[key][:, 16:])  # condition columns
        else:
            assert torch.equal(w, state[key])
    assert all(torch.equal(state[k], snapshot[k]) for k in state)  # the teacher's dict is not modified
