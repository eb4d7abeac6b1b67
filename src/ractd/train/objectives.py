"""The objectives that plug into the one training loop: teacher, reward model, RACTD student, inverse dynamics.

Each turns a batch of normalized windows (`x`, `cond`, `obs`, `rtg`; see `ractd.data.WindowDataset`) into a
loss. The mathematics lives in `ractd.diffusion`; this module only wires batches to it.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..conditioning import null_condition_for
from ..diffusion import (
    CTMConfig,
    CTMDenoiser,
    DDPMConfig,
    EDMConfig,
    EDMDenoiser,
    ddpm_loss,
    drop_condition,
    edm_loss,
    plan_reward,
    ractd_loss,
    update_target,
)


def reward_inputs(batch: dict[str, torch.Tensor], kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of the return-to-go regression (docs/algorithm.md §2.3).

    action_obs: R(norm(a_t), norm(s_t)) — action first — on one transition per window (H = 1);
    states: R(norm(s_t)) on every state of every window.
    """
    x, rtg = batch["x"], batch["rtg"]
    if kind == "action_obs":
        return torch.cat([x[:, 0], batch["obs"][:, 0]], dim=-1), rtg[:, 0]
    return x.reshape(-1, x.shape[-1]), rtg.reshape(-1)


class TeacherObjective:
    """EDM (docs/algorithm.md §3.3) or DDPM; optionally reward-aware (thesis Table 3.4).

    DDPM: the ε-prediction baseline by default; a plan-diffusion model (docs/ooc-maze2d.md) sets the `prediction`
    target, per-entry `loss_weights` (H, C), the `known_mask` (H, C) of entries inpainted clean during training, and
    `p_uncond`, the probability of replacing a sample's condition by the null (zero) condition.
    """

    def __init__(self, net: nn.Module, kind: str, edm: EDMConfig, ddpm: DDPMConfig,
                 reward_net: nn.Module | None = None, reward_guidance: float = 0.0,
                 reward_aggregate: str = "first_action", n_obs_steps: int = 1, *, prediction: str = "epsilon",
                 loss_weights: torch.Tensor | None = None, known_mask: torch.Tensor | None = None,
                 p_uncond: float = 0.0):
        if reward_guidance > 0 and (reward_net is None or kind != "edm"):
            raise ValueError("a reward-aware teacher needs kind='edm' and a trained reward model")
        self.net, self.kind, self.edm, self.ddpm = net, kind, edm, ddpm
        self.reward_net, self.reward_guidance = reward_net, reward_guidance
        self.reward_aggregate, self.n_obs_steps = reward_aggregate, n_obs_steps
        self.prediction, self.loss_weights, self.known_mask, self.p_uncond = prediction, loss_weights, known_mask, \
            p_uncond

    def trainable(self) -> nn.Module:
        return self.net

    def to(self, device: torch.device) -> None:
        self.net.to(device)
        if self.reward_net is not None:
            self.reward_net.to(device)
        if self.loss_weights is not None:
            self.loss_weights = self.loss_weights.to(device)
        if self.known_mask is not None:
            self.known_mask = self.known_mask.to(device)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        x0, cond = batch["x"], batch["cond"]
        if self.kind == "ddpm":
            if self.p_uncond > 0:  # classifier-free guidance training: some conditions become the null one
                cond = drop_condition(cond, self.p_uncond, null=null_condition_for(cond))
            loss = ddpm_loss(model, x0, cond, self.ddpm, prediction=self.prediction, weights=self.loss_weights,
                             known_mask=self.known_mask)
            return loss, {"loss": loss}
        # docs/algorithm.md §3.3
        loss, denoised = edm_loss(EDMDenoiser(model, self.edm), x0, cond, return_denoised=True)
        scalars = {"loss": loss}
        if self.reward_guidance > 0:
            r = plan_reward(self.reward_net, denoised, batch["obs"], self.reward_aggregate, self.n_obs_steps)
            scalars["edm"], scalars["reward"] = loss.detach(), -r.mean().detach()
            loss = loss - self.reward_guidance * r.mean()
        return loss, scalars

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        pass


class RewardObjective:
    """MSE to the min–max-normalized discounted return-to-go (docs/algorithm.md §2.3)."""

    def __init__(self, net: nn.Module, kind: str):
        self.net, self.kind = net, kind

    def trainable(self) -> nn.Module:
        return self.net

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        inputs, target = reward_inputs(batch, self.kind)
        loss = nn.functional.mse_loss(model(inputs), target)
        return loss, {"loss": loss}

    def validation_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs, target = reward_inputs(batch, self.kind)
        return nn.functional.mse_loss(model(inputs), target)

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        pass


class StudentObjective:
    """α·L_CTM + β·L_DSM + σ_r·L_reward with a frozen teacher, a frozen reward model and a target net
    (docs/algorithm.md §4).

    `teacher` is the teacher run's `EDMDenoiser`: the student and its target are `CTMDenoiser`s with the
    teacher's EDM constants, so the distillation cannot use other constants than the teacher was trained with.
    """

    def __init__(self, net: nn.Module, teacher: EDMDenoiser, reward_net: nn.Module | None, ctm: CTMConfig,
                 reward_aggregate: str, n_obs_steps: int, frozen_nets_mode: str = "eval"):
        if frozen_nets_mode not in ("eval", "train"):
            raise ValueError(f"frozen_nets_mode must be 'eval' or 'train', got {frozen_nets_mode!r}")
        self.net, self.ctm, self.edm = net, ctm, teacher.edm
        # docs/algorithm.md §4.11: "train" keeps the frozen nets' dropout active, as the released code does
        frozen_train = frozen_nets_mode == "train"
        self.teacher = teacher.train(frozen_train).requires_grad_(False)
        self.reward_net = None if reward_net is None else reward_net.eval().requires_grad_(False)
        # θ⁻ starts as the warm-started student (the reference copies it before the warm start: docs/algorithm.md
        # §4.8 pitfall)
        self.target = CTMDenoiser(copy.deepcopy(net), self.edm).train(frozen_train).requires_grad_(False)
        self.reward_aggregate, self.n_obs_steps = reward_aggregate, n_obs_steps

    def trainable(self) -> nn.Module:
        return self.net

    def to(self, device: torch.device) -> None:
        for m in (self.net, self.teacher, self.target, self.reward_net):
            if m is not None:
                m.to(device)

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        obs = batch["obs"]

        def reward(x_hat: torch.Tensor) -> torch.Tensor:
            return plan_reward(self.reward_net, x_hat, obs, self.reward_aggregate, self.n_obs_steps)

        losses = ractd_loss(CTMDenoiser(model, self.edm), self.target, self.teacher, batch["x"], batch["cond"],
                            self.ctm, reward if self.reward_net is not None else None)
        return losses.total, {"loss": losses.total, "ctm": losses.ctm, "dsm": losses.dsm, "reward": losses.reward}

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        update_target(self.target.net, model, self.ctm.target_decay)  # θ⁻ ← μθ⁻ + (1 − μ)θ

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {f"target.{k}": v for k, v in self.target.net.state_dict().items()}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.target.net.load_state_dict({k.removeprefix("target."): v for k, v in tensors.items()})


class InverseDynamicsObjective:
    """MSE of a_t = f(s_t, s_{t+1}) on normalized transitions (windows of H = 2)."""

    def __init__(self, net: nn.Module):
        self.net = net

    def trainable(self) -> nn.Module:
        return self.net

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        obs = batch["obs"]
        loss = nn.functional.mse_loss(model(obs[:, 0], obs[:, 1]), batch["x"][:, 0])
        return loss, {"loss": loss}

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        pass
