"""Condition embeddings and cross-attention (docs/conditioning.md §1–2): Fourier features by hand, the token lookup,
CrossAttention1D's closed forms (identity at init, one token, order invariance), its placement in the U-Net, and
that a U-Net without tokens is the same network as before the option existed (recorded fingerprints)."""

import math

import pytest
import torch

from ractd.nn import ConditionalUnet1D, CrossAttention1D, FourierEmbedding, TokenEmbedding, count_parameters

torch.set_num_threads(1)


# ---------------------------------------------------------------- FourierEmbedding


def test_fourier_default_is_21_per_scalar_with_hand_values():
    emb = FourierEmbedding()
    assert emb.out_per_scalar == 21
    zero = emb(torch.zeros(1))
    assert zero.shape == (21,)
    # γ(0) = (0, sin 0, cos 0, sin 0, cos 0, …) = (0, 0, 1, 0, 1, …)
    assert torch.equal(zero, torch.tensor([0.0] + [0.0, 1.0] * 10))
    p = 0.3
    expected = [p] + [f(2**k * math.pi * p) for k in range(10) for f in (math.sin, math.cos)]
    # float32 arguments up to 2⁹π·0.3 ≈ 480 carry ≈ 3e-5 of rounding
    torch.testing.assert_close(emb(torch.tensor([p])), torch.tensor(expected), atol=1e-4, rtol=0)


def test_fourier_keeps_each_scalars_features_together():
    emb = FourierEmbedding(n_freqs=2)
    x = torch.tensor([[0.1, -0.7]])
    out = emb(x)
    assert out.shape == (1, 10)
    torch.testing.assert_close(out[0, :5], emb(x[:, :1])[0])
    torch.testing.assert_close(out[0, 5:], emb(x[:, 1:])[0])
    no_input = FourierEmbedding(n_freqs=2, include_input=False)
    assert no_input.out_per_scalar == 4
    torch.testing.assert_close(no_input(x), out.reshape(1, 2, 5)[..., 1:].reshape(1, 8))
    identity = FourierEmbedding(n_freqs=0)
    assert torch.equal(identity(x), x)
    with pytest.raises(ValueError, match="n_freqs"):
        FourierEmbedding(n_freqs=0, include_input=False)
    with pytest.raises(ValueError, match="n_freqs"):
        FourierEmbedding(n_freqs=-1)


def test_waypoint_token_matrix_shape():
    # three waypoints (x, y, vx, vy) per window → a 3 × 84 token matrix
    waypoints = torch.rand(5, 3, 4) * 2 - 1
    tokens = FourierEmbedding()(waypoints)
    assert tokens.shape == (5, 3, 84)
    assert not any(p.requires_grad for p in FourierEmbedding().parameters())


# ---------------------------------------------------------------- TokenEmbedding


def test_token_embedding_is_a_learnable_lookup():
    emb = TokenEmbedding(4, 20)
    kinds = torch.tensor([[0, 2, 2, 3, 1]])
    out = emb(kinds)
    assert out.shape == (1, 5, 20)
    torch.testing.assert_close(out[0, 1], emb.table.weight[2])
    torch.testing.assert_close(out[0, 1], out[0, 2])
    out.sum().backward()
    assert emb.table.weight.grad is not None and float(emb.table.weight.grad[2].sum()) == pytest.approx(40.0)
    with pytest.raises(ValueError, match=r"kinds must lie in \[0, 4\)"):
        emb(torch.tensor([[4]]))
    with pytest.raises(ValueError, match="integer"):
        emb(torch.tensor([[1.0]]))


# ---------------------------------------------------------------- CrossAttention1D


def randomize_output(block: CrossAttention1D) -> None:
    with torch.no_grad():
        torch.nn.init.normal_(block.to_out.weight, std=0.3)
        torch.nn.init.normal_(block.to_out.bias, std=0.3)


def test_cross_attention_shape_and_identity_at_init():
    torch.manual_seed(0)
    block = CrossAttention1D(16, 12)
    x, z = torch.randn(3, 16, 10), torch.randn(3, 5, 12)
    out = block(x, z)
    assert out.shape == x.shape
    assert torch.equal(out, x)  # zero-initialized output convolution


def test_one_token_attention_is_the_value_map():
    """With one token the softmax weight is 1 whatever the queries: out = x + W_o·W_v·z, the same at every position;
    two copies of that token give the same result."""
    torch.manual_seed(0)
    block = CrossAttention1D(16, 6, heads=4, q_kernel=3)
    randomize_output(block)
    x, z = torch.randn(2, 16, 8), torch.randn(2, 1, 6)
    v = block.to_v.weight[:, :, 0] @ z[:, 0, :, None] + block.to_v.bias[:, None]  # (B, C, 1)
    expected = x + block.to_out.weight[:, :, 0] @ v + block.to_out.bias[:, None]
    torch.testing.assert_close(block(x, z), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(block(x, z.repeat(1, 2, 1)), expected, rtol=1e-5, atol=1e-5)


def test_cross_attention_softmax_over_tokens_by_hand():
    """One head, no norm, 1×1 query map: each position's output is the softmax(q·k/√C)-weighted mean of the values."""
    torch.manual_seed(1)
    block = CrossAttention1D(8, 3, heads=1, q_kernel=1, prenorm=False)
    randomize_output(block)
    x, z = torch.randn(1, 8, 4), torch.randn(1, 3, 3)
    q = block.to_q.weight[:, :, 0] @ x[0] + block.to_q.bias[:, None]  # (C, H)
    k = block.to_k.weight[:, :, 0] @ z[0].T + block.to_k.bias[:, None]  # (C, N)
    v = block.to_v.weight[:, :, 0] @ z[0].T + block.to_v.bias[:, None]
    w = torch.softmax(q.T @ k / math.sqrt(8), dim=-1)  # (H, N)
    expected = x[0] + block.to_out.weight[:, :, 0] @ (v @ w.T) + block.to_out.bias[:, None]
    torch.testing.assert_close(block(x, z)[0], expected, rtol=1e-5, atol=1e-5)


def test_cross_attention_is_invariant_to_token_order():
    torch.manual_seed(0)
    block = CrossAttention1D(16, 12, heads=4)
    randomize_output(block)
    x, z = torch.randn(3, 16, 10), torch.randn(3, 5, 12)
    out = block(x, z)
    assert not torch.allclose(out, x, atol=1e-3)  # the tokens matter…
    for perm in (torch.tensor([4, 3, 2, 1, 0]), torch.tensor([1, 0, 3, 4, 2])):
        torch.testing.assert_close(block(x, z[:, perm]), out, rtol=1e-5, atol=1e-6)  # …not their order
    assert not torch.allclose(block(x, z + 0.5), out, atol=1e-3)


def test_cross_attention_input_errors():
    with pytest.raises(ValueError, match="multiple of heads=3"):
        CrossAttention1D(16, 4, heads=3)
    with pytest.raises(ValueError, match="q_kernel must be odd"):
        CrossAttention1D(16, 4, q_kernel=2)
    block = CrossAttention1D(16, 4)
    with pytest.raises(ValueError, match=r"expected tokens of shape \(2, N, 4\), got \(2, 3, 5\)"):
        block(torch.randn(2, 16, 8), torch.randn(2, 3, 5))


def test_cross_attention_parameter_count_by_hand():
    c, e, k = 32, 84, 3
    expected = 2 * c + (c * c * k + c) + 2 * (e * c + c) + (c * c + c)  # GroupNorm, q, k and v, out
    assert count_parameters(CrossAttention1D(c, e, q_kernel=k)) == expected
    assert count_parameters(CrossAttention1D(c, e, q_kernel=k, prenorm=False)) == expected - 2 * c


# ---------------------------------------------------------------- the U-Net option


def xattn_unet(token_dim: int = 12, **kw) -> ConditionalUnet1D:
    return ConditionalUnet1D(2, 0, 16, (16, 32, 64), mid_dropout=0.0, token_dim=token_dim, **kw)


def test_three_level_unet_has_ten_blocks_none_in_the_middle():
    net = xattn_unet()
    blocks = [m for m in net.modules() if isinstance(m, CrossAttention1D)]
    assert len(blocks) == 10
    assert not any(isinstance(m, CrossAttention1D) for m in net.mid_modules.modules())
    assert [len(level) for level in net.down_xattn] == [2, 2, 2] and [len(level) for level in net.up_xattn] == [2, 2]
    # each block works at the width of the residual block it follows
    assert [b.channels for level in net.down_xattn for b in level] == [16, 16, 32, 32, 64, 64]
    assert [b.channels for level in net.up_xattn for b in level] == [32, 32, 16, 16]
    plain = ConditionalUnet1D(2, 0, 16, (16, 32, 64), mid_dropout=0.0)
    assert count_parameters(net) == count_parameters(plain) + sum(count_parameters(b) for b in blocks)
    assert not any(isinstance(m, CrossAttention1D) for m in plain.modules())


def test_unet_with_attention_starts_as_the_plain_unet():
    """The blocks are built after the U-Net's own layers and output zero: a seeded cross-attention U-Net has the plain
    one's weights and, at initialization, its outputs whatever the tokens."""
    torch.manual_seed(3)
    plain = ConditionalUnet1D(2, 0, 16, (16, 32, 64), mid_dropout=0.0).eval()
    torch.manual_seed(3)
    net = xattn_unet().eval()
    own = net.state_dict()
    for key, value in plain.state_dict().items():
        assert torch.equal(own[key], value), key
    x, t = torch.randn(4, 8, 2), torch.tensor([0.0, 5.0, 20.0, 99.0])
    torch.testing.assert_close(net(x, t, cond=torch.randn(4, 3, 12)), plain(x, t), rtol=0, atol=0)


def test_tokens_matter_after_one_optimizer_step():
    torch.manual_seed(0)
    net = xattn_unet()
    x, t = torch.randn(8, 8, 2), torch.randint(0, 100, (8,)).float()
    z_a, z_b = torch.randn(8, 3, 12), torch.randn(8, 3, 12)
    with torch.no_grad():
        assert torch.equal(net(x, t, cond=z_a), net(x, t, cond=z_b))  # identity blocks: tokens ignored
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss = (net(x, t, cond=z_a) - torch.randn(8, 8, 2)).pow(2).mean()
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert (net(x, t, cond=z_a) - net(x, t, cond=z_b)).abs().max() > 1e-4


def test_unet_with_attention_is_invariant_to_token_order():
    torch.manual_seed(0)
    net = xattn_unet().eval()
    for m in net.modules():
        if isinstance(m, CrossAttention1D):
            randomize_output(m)
    x, t, z = torch.randn(2, 8, 2), torch.tensor([3.0, 40.0]), torch.randn(2, 4, 12)
    out = net(x, t, cond=z)
    torch.testing.assert_close(net(x, t, cond=z[:, [2, 0, 3, 1]]), out, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(net(x, t, cond=z * 2), out, atol=1e-3)


def test_token_condition_errors():
    net = xattn_unet()
    x, t = torch.randn(2, 8, 2), torch.zeros(2)
    with pytest.raises(ValueError, match=r"expected condition tokens of shape \(2, N, 12\), got \(2, 12\)"):
        net(x, t, cond=torch.zeros(2, 12))
    with pytest.raises(ValueError, match=r"expected condition tokens of shape \(2, N, 12\), got None"):
        net(x, t)
    with pytest.raises(ValueError, match="no global condition vector"):
        ConditionalUnet1D(2, 5, 16, (16, 32), token_dim=12)


# A U-Net without tokens must be today's network: existing checkpoints load and seeded runs reproduce. These numbers
# were recorded from the U-Net as it was before the cross-attention option existed (seed 1234, float64 sums over the
# state dict in creation order; forward on a seeded input).
RECORDED = [
    (dict(input_dim=6, global_cond_dim=10, time_embed_dim=32, down_dims=(32, 64, 128)),
     148, 1865.8147910932187, 30506.605275000562, -12.56971534062177, 35.4720344664529),
    (dict(input_dim=3, global_cond_dim=0, time_embed_dim=16, down_dims=(16, 32), n_time_inputs=2, dropout=0.1),
     100, 404.16271831774407, 4252.87549566734, -2.873618185520172, 16.210945710539818),
]
FIRST_TENSOR_SUMS = [
    [3.1482757993, -1.7335476684, -4.1328093733, 0.1422841219],
    [-0.4090616107, 0.3514103293, 2.1750477105, -0.4206962287],
]


@pytest.mark.parametrize("case", [0, 1])
def test_unet_without_tokens_matches_recorded_fingerprint(case):
    kw, n_tensors, total, total_abs, out_sum, out_abs = RECORDED[case]
    torch.manual_seed(1234)
    net = ConditionalUnet1D(**kw).eval()
    state = net.state_dict()
    assert len(state) == n_tensors
    assert list(state)[:2] == ["time_embedding.net.1.weight", "time_embedding.net.1.bias"]
    assert list(state)[-2:] == ["final_conv.1.weight", "final_conv.1.bias"]
    assert not any("xattn" in k for k in state)
    assert sum(float(v.double().sum()) for v in state.values()) == pytest.approx(total, rel=1e-12)
    assert sum(float(v.double().abs().sum()) for v in state.values()) == pytest.approx(total_abs, rel=1e-12)
    sums = [float(v.double().sum()) for v in list(state.values())[:4]]
    assert sums == pytest.approx(FIRST_TENSOR_SUMS[case], abs=1e-9)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 8, kw["input_dim"], generator=g)
    t = torch.tensor([3.0, 50.0])
    c = torch.randn(2, kw["global_cond_dim"], generator=g) if kw["global_cond_dim"] else None
    with torch.no_grad():
        out = net(x, t, t if kw.get("n_time_inputs") == 2 else None, cond=c).double()
    assert float(out.sum()) == pytest.approx(out_sum, rel=1e-5)
    assert float(out.abs().sum()) == pytest.approx(out_abs, rel=1e-5)
