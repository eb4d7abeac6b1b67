"""MLPs: the residual reward network (docs/algorithm.md §2.2), the inverse-dynamics model (Maze2d) and the
behaviour-cloning policy (roundabout baseline)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ResidualLinearBlock(nn.Module):
    """y = W2·Mish(W1·x + b1) + b2 + P·x, with P a linear projection if sizes differ, else identity
    (docs/algorithm.md §2.2)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d_in, d_out), nn.Linear(d_out, d_out)
        self.skip = nn.Linear(d_in, d_out) if d_in != d_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(nn.functional.mish(self.fc1(x))) + self.skip(x)


class ResidualMLP(nn.Module):
    """The reward model R_ψ: two residual blocks per consecutive pair of [input_dim, *dims], then Linear(dims[-1] → 1).

    No activation between blocks, no normalization, no dropout (docs/algorithm.md §2.2); ≈ 0.34 M parameters for dims
    [64, 128, 256].
    """

    def __init__(self, input_dim: int, dims: Sequence[int] = (64, 128, 256), output_dim: int = 1):
        super().__init__()
        all_dims = [input_dim, *dims]
        blocks: list[nn.Module] = []
        for d_in, d_out in zip(all_dims[:-1], all_dims[1:], strict=True):
            blocks += [ResidualLinearBlock(d_in, d_out), ResidualLinearBlock(d_out, d_out)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(all_dims[-1], output_dim)
        self.input_dim = input_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x)).squeeze(-1)


def plain_mlp(d_in: int, hidden: Sequence[int], d_out: int, activation: type[nn.Module]) -> nn.Sequential:
    """Linear → activation for each hidden width, then a linear output layer."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), activation()]
        d_in = h
    return nn.Sequential(*layers, nn.Linear(d_in, d_out))


class InverseDynamics(nn.Module):
    """a_t = f(s_t, s_{t+1}): an MLP (Mish) mapping a state transition to the action that caused it."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = plain_mlp(2 * obs_dim, hidden, act_dim, nn.Mish)
        self.obs_dim, self.act_dim = obs_dim, act_dim

    def forward(self, s_t: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s_t, s_next], dim=-1))


BC_META_KEY = "bc_policy"  # meta.json entry with a trained BCPolicyMLP's shape (train_bc_policy, load_bc_driver)


class BCPolicyMLP(nn.Module):
    """The behaviour-cloning baseline: logits = MLP(flattened observation), ReLU between layers.

    With the defaults (30 inputs = a 5 × 6 roundabout observation, two hidden layers of 256, 5 discrete actions)
    it has exactly 75,013 parameters. Observations (..., obs_dim) or (..., rows, features) with rows × features =
    obs_dim.
    """

    def __init__(self, obs_dim: int = 30, n_actions: int = 5, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = plain_mlp(obs_dim, hidden, n_actions, nn.ReLU)
        self.obs_dim, self.n_actions = obs_dim, n_actions

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.shape[-1] != self.obs_dim and obs.dim() >= 2 and obs.shape[-2] * obs.shape[-1] == self.obs_dim:
            obs = obs.flatten(-2)  # (..., rows, features) observations
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"BCPolicyMLP expects observations of {self.obs_dim} numbers (last dimension, or the "
                             f"last two), got shape {tuple(obs.shape)}")
        return self.net(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The greedy action index, argmax of the logits."""
        return self.forward(obs).argmax(dim=-1)
