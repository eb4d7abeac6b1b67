"""A roundabout plan-diffusion run as a driving policy (docs/roundabout.md, "Diffusion planner").

Every call replans from scratch: the kinds of the road users in the current observation (r(o)) are the condition,
the observation is inpainted as the plan's first state, H steps of [one-hot action, observation] are sampled by DDPM
through all T steps (with classifier-free guidance: conditional and null condition in one batched call per step),
and the first planned action (the argmax of its one-hot channels) is executed. `act` has the signature of the
roundabout's experts, so `evaluate_no_crash` and the expert-data tools take a `DiffusionDriver` as they take them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..artifact import Artifact, load_artifact
from ..conditioning import kind_condition
from ..data.generate.roundabout import Rngs, categorical_actions, per_row
from ..devices import check_device
from ..diffusion import known_states, sample_ddpm
from ..diffusion.noise import Generators, gaussian_noise
from ..envs.roundabout_traffic import BICYCLE, CAR, EGO, NULL, OBS_FEATURES, OBS_ROWS, composition_tokens
from .plan_diffusion import guidance_scale, guided_network

KIND_SOURCES = ("true", "random")


def random_kinds(kinds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The control condition: every visible road user but the ego gets a kind drawn uniformly from car and bicycle;
    absent rows stay null and the ego stays the ego."""
    out = np.asarray(kinds).copy()
    other = (out != NULL) & (out != EGO)
    out[other] = rng.choice(np.array([CAR, BICYCLE]), size=int(other.sum()))
    return out


class DiffusionDriver:
    """Acts in `ractd/Roundabout-OOC-v0` with a trained composition-conditioned plan model (`ooc-roundabout`).

    `guidance` overrides the run's λ; `kinds` = true (r(o) of the observation) or random (`random_kinds`, the
    ground-truth-vs-random control). The DDPM noise of each row is drawn from a generator seeded by that row's
    `rng` (its episode's), so an episode is reproducible and does not depend on the episodes batched with it;
    sampling is the method, so `deterministic` does not change it.
    """

    def __init__(self, art: Artifact, guidance: float | None = None, kinds: str = "true", device: str = "cpu"):
        cfg = art.config
        if art.stage != "teacher" or cfg.conditioning.tokens != "composition":
            raise ValueError(f"{art.path}: not a roundabout plan-diffusion run (a teacher with conditioning.tokens="
                             f"'composition'; this is a {art.stage} with tokens={cfg.conditioning.tokens!r})")
        if art.obs_dim != OBS_ROWS * len(OBS_FEATURES):
            raise ValueError(f"{art.path}: observations of size {art.obs_dim}, the roundabout's are "
                             f"{OBS_ROWS * len(OBS_FEATURES)}")
        if kinds not in KIND_SOURCES:
            raise ValueError(f"kinds must be one of {KIND_SOURCES}, got {kinds!r}")
        self.art, self.cfg, self.kinds, self.device = art, cfg, kinds, check_device(device)
        self.net = art.net.to(self.device).eval()
        self.conditioned = cfg.conditioning.kind != "none"
        self.guidance = guidance_scale(cfg, guidance)
        self.obs_norm, self.act_norm = art.normalizers["observations"], art.normalizers["actions"]

    @property
    def network_calls_per_action(self) -> int:
        """T denoising steps; with guidance each is one call of twice the batch."""
        return self.cfg.teacher.ddpm.num_train_steps

    def describe(self) -> str:
        g = f", guidance λ={self.guidance:g}" if self.conditioned else ""
        return (f"plan diffusion ({self.cfg.conditioning.kind}{g}, {self.kinds} kinds), DDPM "
                f"T={self.cfg.teacher.ddpm.num_train_steps}, {self.cfg.planning.inpaint} inpainting, "
                f"H={self.cfg.data.horizon}")

    @torch.no_grad()
    def plan(self, observations: np.ndarray, kinds: np.ndarray, generator: Generators = None) -> np.ndarray:
        """Normalized plans (B, H, act_dim + obs_dim) from flat observations (B, 30) and kinds (B, 5); `generator`:
        one for the batch or one per row."""
        cfg, act_dim = self.cfg, self.art.act_dim
        obs = torch.as_tensor(self.obs_norm.normalize(np.asarray(observations, np.float32)), dtype=torch.float32,
                              device=self.device)
        b, h = obs.shape[0], cfg.data.horizon
        cond = kind_condition(torch.as_tensor(np.asarray(kinds, np.int64)), cfg.conditioning).to(self.device)
        net = guided_network(self.net, cfg, self.guidance, cond)
        x = gaussian_noise((b, h, act_dim + self.art.obs_dim), generator).to(self.device)
        return sample_ddpm(net, x, cond, cfg.teacher.ddpm, prediction=cfg.teacher.ddpm.prediction,
                           clip_denoised=cfg.teacher.ddpm.clip_sample, known=known_states(h, act_dim, obs),
                           inpaint=cfg.planning.inpaint, generator=generator).float().cpu().numpy()

    def act(self, observations: np.ndarray, rng: Rngs, deterministic: bool = True) -> np.ndarray:
        """Action ids (B,) for observations (B, 5, 6) or (B, 30): the first action of a fresh plan each; `rng`: one
        generator per row (one generator only for a single row)."""
        obs = np.asarray(observations, np.float32).reshape(len(observations), -1)
        rngs = per_row(rng, len(obs))
        kinds = composition_tokens(obs)
        if self.kinds == "random":
            kinds = np.stack([random_kinds(k, g) for k, g in zip(kinds, rngs, strict=True)])
        generators = [torch.Generator().manual_seed(int(g.integers(2**62))) for g in rngs]
        plans = self.plan(obs, kinds, generators)
        first = self.act_norm.unnormalize(plans[:, 0, :self.art.act_dim])  # back to one-hot scale
        return np.asarray(first, np.float64).argmax(axis=-1).astype(np.int64)


def load_driver(run: str | Path, guidance: float | None = None, kinds: str = "true", device: str = "cpu",
                weights: str = "model") -> DiffusionDriver:
    """A roundabout plan-diffusion run folder as a `DiffusionDriver` (`weights`: model | ema)."""
    return DiffusionDriver(load_artifact(run, weights=weights, expect_stage="teacher"), guidance, kinds, device)


class BCDriver:
    """The BC-MLP baseline (`ractd.train.bc.train_bc_policy`) with the experts' `act`: the argmax of its logits, or
    a draw from their softmax with each row's generator when not `deterministic`."""

    def __init__(self, net: torch.nn.Module):
        self.net = net.eval()

    @torch.no_grad()
    def act(self, observations: np.ndarray, rng: Rngs, deterministic: bool = True) -> np.ndarray:
        obs = torch.as_tensor(np.asarray(observations, np.float32).reshape(len(observations), -1))
        return categorical_actions(self.net(obs).numpy(), rng, deterministic)

    @property
    def num_parameters(self) -> int:
        return int(sum(p.numel() for p in self.net.parameters()))


def load_bc_driver(run: str | Path, weights: str = "model") -> BCDriver:
    """A `train_bc_policy` run folder as a `BCDriver` (`weights`: model | ema): safetensors and JSON, no pickle."""
    from safetensors.torch import load_file

    from ..io import read_json
    from ..nn.mlp import BC_META_KEY, BCPolicyMLP

    run = Path(run)
    meta = read_json(run / "meta.json")
    if BC_META_KEY not in meta:
        raise ValueError(f"{run / 'meta.json'}: no {BC_META_KEY!r} entry; not a BC policy run (train_bc_policy)")
    shape = meta[BC_META_KEY]
    net = BCPolicyMLP(int(shape["obs_dim"]), int(shape["n_actions"]), [int(h) for h in shape["hidden"]])
    path = run / f"{weights}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (weights: model | ema)")
    net.load_state_dict(load_file(str(path)))
    return BCDriver(net)
