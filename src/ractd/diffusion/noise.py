"""Gaussian noise drawn from one generator for a whole batch, or from one generator per batch row.

Per-row generators make a sample's noise independent of what it is batched with: row i of a batch drawn with
generators (g_0, …, g_{B−1}) equals the single-row batch drawn with g_i alone, so a sampler can serve many
independent episodes in one call and each episode stays reproducible on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def gaussian_noise(shape: Sequence[int], generator: Generators = None, device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> torch.Tensor:
    """N(0, I) of `shape` on `device`: from `generator` (None: torch's global one), or row by row when it is a
    sequence of one generator per row of the batch (shape[0]), each row drawn on its generator's device."""
    shape = tuple(int(n) for n in shape)
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    generators = list(generator)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {shape[0]} rows; pass one per row")
    rows = [torch.randn(shape[1:], generator=g, dtype=dtype, device=g.device) for g in generators]
    return torch.stack(rows).to(device) if rows else torch.empty(shape, dtype=dtype, device=device)
