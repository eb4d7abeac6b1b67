"""Does a reward-aware student exploit its reward model? (docs/algorithm.md §6.4)

RACTD's reward loss pushes the student's plans up the reward model R_ψ (Eq. 3.8). R_ψ was fitted on the
behaviour data's actions only, so a student can raise R_ψ by leaving that data: actions the model never saw,
scored above any return in the data, that the environment does not reward. This probe measures that on the
training windows, in the normalized units the reward loss uses (returns-to-go and actions min–max scaled to
[-1, 1] over the dataset):

    R(data)  = R_ψ(a_data, s)          the data's own first action           (what R_ψ was fitted on)
    R(plan)  = R_ψ(x̂[To − 1], s)       the planner's first action, x̂ ~ planner(· | s)
    above    = P[R(plan) > max RTG]    scores beyond every return-to-go of the data (> 1 when normalized)
    at bound = P[|x̂[To − 1]| ≥ 0.99]   action components at the edge of the data's per-dimension range (samplers
                                       clamp to [-1, 1], so a plan pushed past the data lands there), next to
                                       the same fraction of the data's own actions

Only the first-action aggregate (MuJoCo) is probed: it is the tensor the reward loss scores there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..diffusion import plan_reward

AT_BOUND = 0.99  # |normalized action| from which a component counts as at the edge of the data's range


@dataclass(frozen=True)
class RewardProbe:
    """R_ψ's view of a planner's first actions next to the data's (normalized return-to-go units)."""

    windows: int
    rtg: float  # mean true return-to-go of the probed windows
    reward_data: float  # mean R(data)
    reward_plan: float  # mean R(plan)
    reward_plan_q90: float
    above_data_max: float  # fraction of R(plan) above the data's largest return-to-go
    at_bound_plan: float  # fraction of first-action components with |x̂| ≥ AT_BOUND
    at_bound_data: float  # the same fraction of the data's first actions
    action_gap: float  # RMS over components of x̂[To − 1] − a_data

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.no_grad()
def probe_reward(planner: Any, reward_net: Callable[[torch.Tensor], torch.Tensor], batch: dict[str, np.ndarray],
                 n_obs_steps: int, rtg_max: float = 1.0) -> RewardProbe:
    """R_ψ of `planner`'s samples on the conditions of `batch` (a `WindowDataset.get_batch` with `rtg`) against
    R_ψ of the batch's own actions; `rtg_max` is the data's largest normalized return-to-go (1 under min–max)."""
    if "rtg" not in batch:
        raise ValueError("probe_reward needs windows with returns-to-go (a WindowDataset built with rtg=...)")
    x, obs = torch.as_tensor(batch["x"]), torch.as_tensor(batch["obs"])
    x_hat = planner.sample(torch.as_tensor(batch["cond"])).to(x.dtype)
    if x_hat.shape != x.shape:
        raise ValueError(f"planner samples have shape {tuple(x_hat.shape)}, the windows {tuple(x.shape)}: "
                         "is the planner trained on this task with this horizon?")
    if isinstance(reward_net, torch.nn.Module):
        reward_net = reward_net.eval()
    r_data = plan_reward(reward_net, x, obs, "first_action", n_obs_steps)
    r_plan = plan_reward(reward_net, x_hat, obs, "first_action", n_obs_steps)
    k = n_obs_steps - 1
    first, first_data = x_hat[:, k], x[:, k]
    return RewardProbe(
        windows=int(x.shape[0]),
        rtg=float(torch.as_tensor(batch["rtg"])[:, k].mean()),
        reward_data=float(r_data.mean()),
        reward_plan=float(r_plan.mean()),
        reward_plan_q90=float(torch.quantile(r_plan.float(), 0.9)),
        above_data_max=float((r_plan > rtg_max).float().mean()),
        at_bound_plan=float((first.abs() >= AT_BOUND).float().mean()),
        at_bound_data=float((first_data.abs() >= AT_BOUND).float().mean()),
        action_gap=float((first - first_data).pow(2).mean().sqrt()),
    )
