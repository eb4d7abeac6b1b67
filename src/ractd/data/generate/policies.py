"""Behaviour policies as plain numpy: uniform random, and a PPO actor saved as safetensors + JSON (no pickle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from safetensors.numpy import load_file, save_file

from ractd.io import atomic_path, read_json, write_json


class Policy(Protocol):
    """Anything that maps a batch of raw observations to a batch of actions, drawing noise from `rng`."""

    def act(self, observations: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass
class UniformRandomPolicy:
    """a ~ U(low, high): D4RL's `random` level, here the uniform policy over the action box."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def for_env(cls, env_id: str) -> UniformRandomPolicy:
        space = gym.make(env_id).action_space
        return cls(np.asarray(space.low, np.float32), np.asarray(space.high, np.float32))

    def act(self, observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(len(observations), len(self.low))).astype(np.float32)


_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


@dataclass
class GaussianMLPPolicy:
    """π(a|s) = clip(N(μ(norm(s)), diag σ²), low, high): an SB3 PPO `MlpPolicy` actor in plain numpy.

    norm(s) = clip((s − mean)/√(var + ε), −c, c) are VecNormalize's frozen statistics; μ is the policy MLP
    followed by the linear mean head; σ = exp(log_std). Actions are clipped to the action box, as SB3 does
    before stepping the env, so what is stored is what the env executed.
    """

    weights: list[tuple[np.ndarray, np.ndarray]]  # hidden layers then the mean head: (W [out, in], b)
    log_std: np.ndarray
    activation: str
    action_low: np.ndarray
    action_high: np.ndarray
    obs_mean: np.ndarray | None = None
    obs_var: np.ndarray | None = None
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    info: dict[str, Any] = field(default_factory=dict)

    def normalize(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, np.float64)
        if self.obs_mean is None:
            return obs.astype(np.float32)
        z = (obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon)
        return np.clip(z, -self.clip_obs, self.clip_obs).astype(np.float32)

    def mean_action(self, observations: np.ndarray) -> np.ndarray:
        """μ(norm(s)), unclipped: the deterministic action before the Gaussian noise."""
        h = self.normalize(observations)
        act = _ACTIVATIONS[self.activation]
        for w, b in self.weights[:-1]:
            h = act(h @ w.T + b)
        w, b = self.weights[-1]
        return h @ w.T + b

    def act(
        self, observations: np.ndarray, rng: np.random.Generator, deterministic: bool = False
    ) -> np.ndarray:
        mu = self.mean_action(observations)
        if not deterministic:
            mu = mu + np.exp(self.log_std) * rng.standard_normal(mu.shape)
        return np.clip(mu, self.action_low, self.action_high).astype(np.float32)

    @classmethod
    def from_sb3(
        cls, model: Any, vec_normalize: Any | None, info: dict[str, Any] | None = None
    ) -> GaussianMLPPolicy:
        """Copy the actor of an SB3 PPO model (and its VecNormalize statistics) into numpy arrays."""
        import torch

        policy = model.policy
        layers = [m for m in policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
        layers.append(policy.action_net)
        weights = [
            (lin.weight.detach().cpu().numpy().copy(), lin.bias.detach().cpu().numpy().copy())
            for lin in layers
        ]
        activation = policy.activation_fn.__name__.lower()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unsupported activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}")
        space = model.action_space
        kwargs: dict[str, Any] = {}
        if vec_normalize is not None and vec_normalize.norm_obs:
            kwargs = {
                "obs_mean": np.array(vec_normalize.obs_rms.mean, np.float64),
                "obs_var": np.array(vec_normalize.obs_rms.var, np.float64),
                "clip_obs": float(vec_normalize.clip_obs),
                "epsilon": float(vec_normalize.epsilon),
            }
        return cls(
            weights=weights,
            log_std=policy.log_std.detach().cpu().numpy().copy(),
            activation=activation,
            action_low=np.asarray(space.low, np.float32),
            action_high=np.asarray(space.high, np.float32),
            info=dict(info or {}),
            **kwargs,
        )

    def save(self, stem: Path) -> None:
        """Write `<stem>.safetensors` (arrays) and `<stem>.json` (architecture, normalization, info)."""
        tensors = {f"layer{i}.weight": w for i, (w, _) in enumerate(self.weights)}
        tensors |= {f"layer{i}.bias": b for i, (_, b) in enumerate(self.weights)}
        tensors |= {"log_std": self.log_std, "action_low": self.action_low, "action_high": self.action_high}
        if self.obs_mean is not None:
            tensors |= {"obs_mean": self.obs_mean, "obs_var": self.obs_var}
        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        with atomic_path(stem.with_suffix(".safetensors")) as tmp:
            save_file(tensors, str(tmp))
        meta = {
            "kind": "gaussian_mlp_policy",
            "layers": len(self.weights),
            "activation": self.activation,
            "normalize_obs": self.obs_mean is not None,
            "clip_obs": self.clip_obs,
            "epsilon": self.epsilon,
            "info": self.info,
        }
        write_json(stem.with_suffix(".json"), meta)

    @classmethod
    def load(cls, stem: Path) -> GaussianMLPPolicy:
        """Read a policy written by `save`; errors name the file and the missing key."""
        meta_path, weights_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
        meta = read_json(meta_path)
        if meta.get("kind") != "gaussian_mlp_policy":
            raise ValueError(
                f"{meta_path}: key 'kind' must be 'gaussian_mlp_policy', got {meta.get('kind')!r}"
            )
        if not weights_path.exists():
            raise FileNotFoundError(f"{weights_path}: file not found (policy weights for {meta_path})")
        t = load_file(str(weights_path))
        needed = [f"layer{i}.{p}" for i in range(meta["layers"]) for p in ("weight", "bias")]
        needed += ["log_std", "action_low", "action_high"] + (
            ["obs_mean", "obs_var"] if meta["normalize_obs"] else []
        )
        missing = [k for k in needed if k not in t]
        if missing:
            raise KeyError(f"{weights_path}: missing tensors {missing}")
        return cls(
            weights=[(t[f"layer{i}.weight"], t[f"layer{i}.bias"]) for i in range(meta["layers"])],
            log_std=t["log_std"],
            activation=meta["activation"],
            action_low=t["action_low"],
            action_high=t["action_high"],
            obs_mean=t.get("obs_mean"),
            obs_var=t.get("obs_var"),
            clip_obs=float(meta["clip_obs"]),
            epsilon=float(meta["epsilon"]),
            info=meta.get("info", {}),
        )
