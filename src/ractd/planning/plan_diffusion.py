"""One-shot plans from a plan-diffusion model: start and goal inpainted, waypoint tokens, classifier-free guidance
(docs/ooc-maze2d.md, "Planning").

A plan is H steps of [actions, states]. Sampling is DDPM ancestral sampling through all T steps from N(0, I), with
the start state (step 0) and the goal state (step H − 1) imposed as `planning.inpaint` says. A conditioned model
reads the condition tokens of three waypoints; with a guidance scale λ > 0 the conditional and the null (zero-token)
predictions come from one batched network call per step and are combined as (1 + λ)·out_cond − λ·out_null.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..artifact import Artifact, load_artifact
from ..conditioning import condition_tokens, null_condition_for
from ..devices import check_device
from ..diffusion import guided, known_states, sample_ddpm

if TYPE_CHECKING:
    from ..config import RunConfig


def guidance_scale(cfg: RunConfig, guidance: float | None = None) -> float:
    """λ of a plan-diffusion run (`guidance` overrides the run's `guidance.scale`); 0 for an unconditioned one."""
    if cfg.conditioning.kind == "none":
        return 0.0
    scale = float(cfg.guidance.scale if guidance is None else guidance)
    if scale < 0:
        raise ValueError(f"the guidance scale must be >= 0, got {scale}")
    return scale


def guided_network(net: Callable, cfg: RunConfig, scale: float, cond: torch.Tensor) -> Callable:
    """`net`, or with λ = `scale` > 0 its classifier-free-guided version (one batched call per step) whose null
    condition fits `cond` (zero tokens, or every kind NULL_KIND)."""
    if scale > 0:
        return guided(net, scale, null=null_condition_for(cond), form=cfg.guidance.form)
    return net


@dataclass
class Plans:
    """Unnormalized plans: states (B, H, Do) and actions (B, H, Da)."""

    states: np.ndarray
    actions: np.ndarray


class PlanDiffusionPlanner:
    """A trained plan-diffusion teacher (`data.x_key = actions_observations`) as a planner of whole plans.

    `guidance` overrides the run's `guidance.scale` (λ; 0 = the conditional model alone). An unconditioned model
    (`conditioning.kind = none`) ignores waypoints and guidance.
    """

    def __init__(self, art: Artifact, guidance: float | None = None, device: str = "cpu", seed: int = 0,
                 max_batch: int = 256):
        cfg = art.config
        if art.stage != "teacher" or cfg.data.x_key != "actions_observations":
            raise ValueError(f"{art.path}: not a plan-diffusion run (a teacher with data.x_key="
                             f"'actions_observations'; this is a {art.stage} with x_key={cfg.data.x_key!r})")
        self.art, self.cfg, self.device, self.seed = art, cfg, check_device(device), seed
        self.net = art.net.to(self.device).eval()
        self.conditioned = cfg.conditioning.kind != "none"
        self.guidance = guidance_scale(cfg, guidance)
        self.max_batch = max_batch
        self.norm = art.normalizers["observations"]
        self.act_norm = art.normalizers["actions"]

    @property
    def horizon(self) -> int:
        return self.cfg.data.horizon

    @property
    def network_calls_per_plan(self) -> int:
        """T denoising steps; with guidance each is one call of twice the batch."""
        return self.cfg.teacher.ddpm.num_train_steps

    def describe(self) -> str:
        g = f", guidance λ={self.guidance:g} ({self.cfg.guidance.form})" if self.conditioned else ""
        return (f"plan diffusion ({self.cfg.conditioning.kind}{g}), DDPM T={self.cfg.teacher.ddpm.num_train_steps}, "
                f"{self.cfg.teacher.ddpm.prediction} prediction, {self.cfg.planning.inpaint} inpainting, "
                f"H={self.horizon}")

    def _normalize(self, states: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(self.norm.normalize(np.asarray(states, dtype=np.float32)), dtype=torch.float32,
                               device=self.device)

    @torch.no_grad()
    def plan(self, start: np.ndarray, goal: np.ndarray, waypoints: np.ndarray | None = None) -> Plans:
        """Plans for B tasks: start, goal (B, Do) full states, waypoints (B, 3, Do) (needed when conditioned).

        Plan i starts from noise drawn with the seed `seed + i`; the noise of the denoising steps comes from one
        generator per chunk of `max_batch` plans, so a result is reproducible for the same seed and `max_batch`.
        """
        start, goal = np.asarray(start, dtype=np.float32), np.asarray(goal, dtype=np.float32)
        if start.ndim != 2 or goal.shape != start.shape:
            raise ValueError(f"start and goal must both be (B, state dim), got {start.shape} and {goal.shape}")
        if self.conditioned and waypoints is None:
            raise ValueError(f"{self.art.path}: a {self.cfg.conditioning.kind} model needs waypoints (B, 3, Do)")
        b = start.shape[0]
        wp = np.zeros((b, 3, start.shape[1]), np.float32) if waypoints is None else np.asarray(waypoints, np.float32)
        states, actions = [], []
        for lo in range(0, b, self.max_batch):
            sl = slice(lo, min(b, lo + self.max_batch))
            s, a = self._plan_chunk(start[sl], goal[sl], wp[sl], lo)
            states.append(s)
            actions.append(a)
        return Plans(np.concatenate(states), np.concatenate(actions))

    def _plan_chunk(self, start: np.ndarray, goal: np.ndarray, waypoints: np.ndarray, first: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        cfg, act_dim = self.cfg, self.art.act_dim
        b, h = start.shape[0], self.horizon
        known = known_states(h, act_dim, self._normalize(start), self._normalize(goal))
        cond = condition_tokens(self._normalize(waypoints), cfg.conditioning)
        # one generator for the chunk, its initial noise drawn per plan from seed + i (batch-size independent start)
        x = torch.stack([torch.randn(h, act_dim + self.art.obs_dim,
                                     generator=torch.Generator().manual_seed(self.seed + first + i))
                         for i in range(b)]).to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.seed + first)
        net = guided_network(self.net, cfg, self.guidance, cond)
        x = sample_ddpm(net, x, cond, cfg.teacher.ddpm, prediction=cfg.teacher.ddpm.prediction,
                        clip_denoised=cfg.teacher.ddpm.clip_sample, known=known, inpaint=cfg.planning.inpaint,
                        generator=gen)
        x = x.float().cpu().numpy()
        states = self.norm.unnormalize(x[..., act_dim:])
        actions = self.act_norm.unnormalize(x[..., :act_dim])
        return np.asarray(states, np.float64), np.asarray(actions, np.float64)


def load_plan_planner(run: str | Path, guidance: float | None = None, device: str = "cpu", seed: int = 0,
                      weights: str = "model") -> PlanDiffusionPlanner:
    """A plan-diffusion run folder as a `PlanDiffusionPlanner` (`weights`: model | ema)."""
    return PlanDiffusionPlanner(load_artifact(run, weights=weights, expect_stage="teacher"), guidance, device, seed)
