"""Per-row generators: a row's noise, and so its DDPM sample, does not depend on the rows batched with it."""

from __future__ import annotations

import pytest
import torch

from ractd.diffusion import DDPMConfig, KnownEntries, gaussian_noise, sample_ddpm


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_rows_equal_their_own_generators_draws() -> None:
    batched = gaussian_noise((3, 4, 2), generators([5, 6, 7]))
    for i, s in enumerate([5, 6, 7]):
        assert torch.equal(batched[i], torch.randn((4, 2), generator=torch.Generator().manual_seed(s)))
    one = gaussian_noise((3, 4, 2), torch.Generator().manual_seed(5))
    assert torch.equal(one, torch.randn((3, 4, 2), generator=torch.Generator().manual_seed(5)))
    with pytest.raises(ValueError, match="2 generators for a batch of 3 rows"):
        gaussian_noise((3, 4), generators([1, 2]))


@pytest.mark.parametrize("inpaint", ["noised", "clean"])
def test_a_ddpm_sample_does_not_depend_on_its_batch(inpaint: str) -> None:
    cfg = DDPMConfig(num_train_steps=10, clip_sample=False)

    def net(x, t, cond=None):  # a fixed x0 predictor: shrink towards 0 a little
        return 0.8 * x

    seeds, shape = [11, 12, 13], (4, 3)
    values = torch.arange(3 * 4 * 3, dtype=torch.float32).reshape(3, 4, 3) / 40
    mask = torch.zeros(3, 4, 3, dtype=torch.bool)
    mask[:, 0, 1:] = True
    x = gaussian_noise((3, *shape), generators(seeds))
    batched = sample_ddpm(net, x, None, cfg, known=KnownEntries(mask, values), inpaint=inpaint,
                          generator=generators(seeds))
    for i, s in enumerate(seeds):
        alone = sample_ddpm(net, x[i:i + 1], None, cfg, known=KnownEntries(mask[i:i + 1], values[i:i + 1]),
                            inpaint=inpaint, generator=generators([s]))
        torch.testing.assert_close(batched[i:i + 1], alone)
    assert not torch.allclose(batched[0], batched[1])  # different generators, different noise
