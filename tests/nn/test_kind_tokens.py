"""KindConditionedNet: categorical kinds embedded by a table the network owns; the null kind is a zero token."""

import pytest
import torch

from ractd.nn import NULL_KIND, ConditionalUnet1D, KindConditionedNet

torch.set_num_threads(1)


def net(mode: str) -> KindConditionedNet:
    torch.manual_seed(0)
    unet = ConditionalUnet1D(3, 0 if mode == "cross_attention" else 5 * 4, 8, (8, 16), mid_dropout=0.0,
                             token_dim=4 if mode == "cross_attention" else 0)
    return KindConditionedNet(unet, n_kinds=4, dim=4, n_tokens=5, mode=mode)


@pytest.mark.parametrize("mode", ["cross_attention", "concat"])
def test_kinds_are_embedded_and_the_null_kind_is_zero(mode):
    m = net(mode)
    kinds = torch.tensor([[1, 2, 3, 0, NULL_KIND]])
    z = m.tokens(kinds)
    assert z.shape == (1, 5, 4)
    assert torch.equal(z[0, :4], m.embed.table.weight[[1, 2, 3, 0]]) and torch.equal(z[0, 4], torch.zeros(4))
    x, t = torch.randn(2, 4, 3), torch.tensor([3.0, 7.0])
    out = m(x, t, cond=torch.tensor([[1, 2, 2, 0, 0], [1, 3, 3, 3, 0]]))
    assert out.shape == x.shape


def test_gradients_reach_the_table_rows_that_were_used():
    m = net("concat")  # concat: the condition enters every block at once (cross-attention starts at zero output)
    m(torch.randn(2, 4, 3), torch.tensor([1.0, 2.0]), cond=torch.tensor([[1, 2, 2, 0, NULL_KIND]] * 2)).sum().backward()
    grad = m.embed.table.weight.grad
    assert all(float(grad[k].abs().sum()) > 0 for k in (0, 1, 2)) and float(grad[3].abs().sum()) == 0


def test_a_kind_changes_the_output_and_order_does_not_under_cross_attention():
    m = net("cross_attention")
    for block in [*m.unet.down_xattn, *m.unet.up_xattn]:  # leave the zero-initialized start
        for xa in block:
            torch.nn.init.normal_(xa.to_out.weight, std=0.5)
    x, t = torch.randn(1, 4, 3), torch.tensor([4.0])
    a = m(x, t, cond=torch.tensor([[1, 2, 3, 0, 0]]))
    assert torch.allclose(a, m(x, t, cond=torch.tensor([[1, 0, 3, 2, 0]])), atol=1e-3)  # a set (float rounding)
    assert not torch.allclose(a, m(x, t, cond=torch.tensor([[1, 3, 3, 0, 0]])), atol=0.1)


def test_shape_mismatches_are_named():
    unet = ConditionalUnet1D(3, 0, 8, (8, 16), token_dim=4)
    with pytest.raises(ValueError, match="expected token_dim=0, global_cond_dim=20"):
        KindConditionedNet(unet, 4, 4, 5, "concat")
    with pytest.raises(ValueError, match="mode"):
        KindConditionedNet(unet, 4, 4, 5, "film")
    m = KindConditionedNet(unet, 4, 4, 5, "cross_attention")
    with pytest.raises(ValueError, match=r"kinds of shape \(B, 5\)"):
        m.tokens(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="kinds as cond"):
        m(torch.randn(1, 4, 3), torch.tensor([1.0]))
