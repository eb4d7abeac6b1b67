"""Behaviour cloning on discrete actions: the cross-entropy between a policy's logits and the expert's action.

`BCObjective` plugs into the one training loop (`ractd.train.train`) with any batch source whose batches carry
observations and actions; `bc_cross_entropy` is the loss alone, for a plain loop. `train_bc_policy` trains the
BC-MLP baseline on a dataset's (observation, action) pairs through that loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def action_indices(actions: torch.Tensor) -> torch.Tensor:
    """Discrete action ids from integer ids (...,) or one-hot rows (..., K) (or any per-action score, e.g. a
    min-max-normalized one-hot): the argmax of the last dimension for floating rows."""
    if actions.is_floating_point():
        return actions.argmax(dim=-1)
    return actions.long()


def bc_cross_entropy(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Mean of −log softmax(logits)[a*] over the batch: logits (..., K), actions (...,) ids or (..., K) one-hot."""
    targets = action_indices(actions)
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"actions of shape {tuple(actions.shape)} do not match logits of shape "
                         f"{tuple(logits.shape)}: expected ids {tuple(logits.shape[:-1])} or one-hot "
                         f"{tuple(logits.shape)}")
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class BCObjective:
    """Cross-entropy of the policy network on the expert's discrete action (the BC-MLP baseline).

    Reads `batch[obs_key]` and `batch[action_key]`. Plain transitions: observations (B, D) (or (B, rows,
    features)) and actions (B,) ids or (B, K) one-hot. Windows (`ractd.data.WindowDataset`, the defaults `obs`
    and `x` with x = actions): observations (B, To, D) and actions (B, H, K); the first step of each is used.
    """

    def __init__(self, net: nn.Module, obs_key: str = "obs", action_key: str = "x"):
        self.net, self.obs_key, self.action_key = net, obs_key, action_key

    def trainable(self) -> nn.Module:
        return self.net

    def _inputs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        for key in (self.obs_key, self.action_key):
            if key not in batch:
                raise KeyError(f"BCObjective needs batch key {key!r}; the batch has {sorted(batch)}")
        obs, actions = batch[self.obs_key], batch[self.action_key]
        obs_dim = getattr(self.net, "obs_dim", None)
        if obs.dim() == 3 and obs.shape[-1] == obs_dim:  # (B, To, D) windows: the first observation
            obs = obs[:, 0]
        if actions.dim() == 3:  # (B, H, K) windows: the first action
            actions = actions[:, 0]
        return obs, actions

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor], step: int):
        obs, actions = self._inputs(batch)
        logits = model(obs)
        loss = bc_cross_entropy(logits, actions)
        accuracy = (logits.argmax(dim=-1) == action_indices(actions)).float().mean()
        return loss, {"loss": loss, "accuracy": accuracy.detach()}

    def validation_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        obs, actions = self._inputs(batch)
        return bc_cross_entropy(model(obs), actions)

    def after_optimizer_step(self, model: nn.Module, step: int) -> None:
        pass


class TransitionBatches:
    """A BatchSource of single steps: `obs` (N, D) float32 and `action` ids (N,) (one-hot rows are turned into ids)."""

    def __init__(self, observations: np.ndarray, actions: np.ndarray):
        obs = np.asarray(observations, np.float32).reshape(len(observations), -1)
        act = np.asarray(actions)
        act = act.argmax(axis=-1) if act.ndim == 2 else act
        if act.shape != (len(obs),):
            raise ValueError(f"{len(obs)} observations but actions of shape {np.asarray(actions).shape}; expected "
                             f"ids ({len(obs)},) or one-hot ({len(obs)}, K)")
        self.obs, self.action = obs, act.astype(np.int64)

    def __len__(self) -> int:
        return len(self.obs)

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return {"obs": self.obs[indices], "action": self.action[indices]}


def train_bc_policy(observations: np.ndarray, actions: np.ndarray, run_dir: str | Path, cfg: Any,
                    hidden: Sequence[int] = (256, 256), n_actions: int | None = None, progress: bool = True,
                    run_meta: dict[str, Any] | None = None) -> Any:
    """Train a `BCPolicyMLP` (obs → action logits) on (observation, action) pairs with the cross-entropy, through
    the training loop (`cfg`: a `LoopConfig`); the weights go to run_dir/model.safetensors and the network's shape
    to meta.json's `bc_policy`. Returns the loop's `TrainResult`."""
    from ..nn.mlp import BC_META_KEY, BCPolicyMLP
    from .loop import train

    data = TransitionBatches(observations, actions)
    n_actions = int(n_actions or (np.asarray(actions).shape[-1] if np.asarray(actions).ndim == 2
                                  else data.action.max() + 1))
    shape = {"obs_dim": int(data.obs.shape[1]), "n_actions": n_actions, "hidden": [int(h) for h in hidden]}
    torch.manual_seed(cfg.seed)  # the initial weights
    net = BCPolicyMLP(shape["obs_dim"], n_actions, hidden)
    return train(BCObjective(net, "obs", "action"), data, cfg, run_dir, progress=progress,
                 run_meta={**(run_meta or {}), BC_META_KEY: shape})
