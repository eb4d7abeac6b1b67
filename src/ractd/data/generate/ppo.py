"""Behaviour policies by PPO (stable-baselines3, an optional extra): train once per env, cache, read back.

The D4RL locomotion recipe (Fu et al. 2020, §5) needs three behaviour sources per environment: a random
policy, a "medium" policy stopped at about one third of the expert's return, and the converged "expert"
policy, plus every trajectory the learner collected until the medium snapshot ("medium-replay").
`train_behaviour_policies` produces all of them in one stable-baselines3 PPO run and caches them in a
folder (`<env>-policies/`): policies as safetensors + JSON (no pickle), the training curve as CSV, the
learner's trajectory stream as hdf5. Reading the cache needs no stable-baselines3; only training does,
and this is the one module that imports it (inside the functions that train).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ractd.data.generate.policies import GaussianMLPPolicy
from ractd.data.generate.rollout import evaluate_returns
from ractd.data.generate.save import package_versions
from ractd.data.generate.stream import RecordTransitions, TrajectoryStream, write_stream
from ractd.io import atomic_path, read_json, write_json

INSTALL_HINT = "pip install 'ractd[generate]'"

# PPO settings per environment. Hopper: SB3 defaults (measured here to reach ~3,500). Walker2d and
# HalfCheetah: the tuned rl-baselines3-zoo hyperparameters for the v3/v4 MuJoCo envs (hyperparams/ppo.yml),
# since default PPO stalls far below expert there. `normalize` = VecNormalize on observations and rewards.
PPO_SETTINGS: dict[str, dict[str, Any]] = {
    "Hopper-v5": {
        "total_steps": 1_000_000,
        "normalize": True,
        "ppo": {},
        "net": {"pi": [64, 64], "vf": [64, 64], "activation": "tanh"},
    },
    "Walker2d-v5": {
        "total_steps": 2_000_000,
        "normalize": True,
        "ppo": {
            "n_steps": 512,
            "batch_size": 32,
            "gamma": 0.99,
            "learning_rate": 5.05041e-05,
            "ent_coef": 0.000585045,
            "clip_range": 0.1,
            "n_epochs": 20,
            "gae_lambda": 0.95,
            "max_grad_norm": 1.0,
            "vf_coef": 0.871923,
        },
        "net": {"pi": [64, 64], "vf": [64, 64], "activation": "tanh"},
    },
    "HalfCheetah-v5": {
        "total_steps": 2_000_000,
        "normalize": True,
        "ppo": {
            "n_steps": 512,
            "batch_size": 64,
            "gamma": 0.98,
            "learning_rate": 2.0633e-05,
            "ent_coef": 0.000401762,
            "clip_range": 0.1,
            "n_epochs": 20,
            "gae_lambda": 0.92,
            "max_grad_norm": 0.8,
            "vf_coef": 0.58096,
        },
        "net": {
            "pi": [256, 256],
            "vf": [256, 256],
            "activation": "relu",
            "log_std_init": -2.0,
            "ortho_init": False,
        },
    },
}

MANIFEST = "policies.json"
STREAM = "training_stream.hdf5"
CURVE = "training_curve.csv"


class MissingExtraError(ImportError):
    """A package of the optional `generate` extra is not installed; the one-line message says which and why."""


def require_training_packages(needed_for: str, progress: bool) -> None:
    """Raise MissingExtraError unless stable-baselines3 (and tqdm, for its progress bar) can be imported."""
    import importlib

    packages = {"stable_baselines3": "stable-baselines3"} | ({"tqdm": "tqdm"} if progress else {})
    for module, package in packages.items():
        try:
            importlib.import_module(module)
        except ImportError:
            raise MissingExtraError(
                f"{needed_for} needs {package} to train its PPO behaviour policies; install it with: "
                f"{INSTALL_HINT}"
            ) from None


@dataclass
class Snapshot:
    """The actor after `timesteps` environment steps of training and its evaluated episode returns."""

    timesteps: int
    seconds: float
    returns: np.ndarray
    policy: GaussianMLPPolicy | None


def _make_callback(
    env_id: str, every: int, episodes: int, seed: int, vec_normalize: Any, log: Any
) -> tuple[Any, list[Snapshot]]:
    from stable_baselines3.common.callbacks import BaseCallback

    snapshots: list[Snapshot] = []
    t0 = time.perf_counter()

    class Snapshots(BaseCallback):
        """Snapshot + evaluate the actor at rollout starts (weights trained on all data collected so far)."""

        def snapshot(self) -> None:
            steps = int(self.model.num_timesteps)
            if snapshots and snapshots[-1].timesteps == steps:
                return
            policy = GaussianMLPPolicy.from_sb3(self.model, vec_normalize)
            returns = evaluate_returns(env_id, policy, episodes, seed + 7919 * (len(snapshots) + 1))
            snapshots.append(Snapshot(steps, time.perf_counter() - t0, returns, policy))
            log(f"{env_id} step {steps:>9,d}: eval return {returns.mean():8.1f} ± {returns.std():6.1f}")

        def _on_rollout_start(self) -> None:
            if not snapshots or self.model.num_timesteps - snapshots[-1].timesteps >= every:
                self.snapshot()

        def _on_step(self) -> bool:
            return True

    return Snapshots(), snapshots


def select_snapshots(snapshots: list[Snapshot], medium_fraction: float) -> tuple[Snapshot, Snapshot]:
    """expert = the best-evaluated snapshot; medium = the first one reaching `medium_fraction` of it.

    The untrained snapshot at step 0 is excluded, so medium-replay is never empty.
    """
    trained = [s for s in snapshots if s.timesteps > 0]
    expert = max(trained, key=lambda s: (s.returns.mean(), s.timesteps))
    target = medium_fraction * expert.returns.mean()
    reached = (s for s in trained if s.returns.mean() >= target and s.timesteps <= expert.timesteps)
    medium = next(reached, expert)  # a negative expert return can make no snapshot reach its third
    return medium, expert


def train_behaviour_policies(
    env_id: str,
    policy_dir: Path,
    seed: int = 0,
    total_steps: int | None = None,
    *,
    eval_every: int = 10_000,
    eval_episodes: int = 10,
    medium_fraction: float = 1 / 3,
    ppo_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log: Any = print,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Train PPO on `env_id` once and cache medium/expert policies and the learner's stream in `policy_dir`.

    If `policy_dir/policies.json` exists the cached run is returned (an explicit `total_steps` that
    differs from the cached run is an error, not a silent retrain). Returns the manifest dict.
    `ppo_overrides` replace entries of `PPO_SETTINGS[env_id]["ppo"]` (SB3 PPO keyword arguments).
    Deterministic given `seed` (PPO seed, env seeds, torch single-threaded). Training needs the
    `generate` extra; without it a MissingExtraError names `dataset` (the dataset that asked for the
    policies, default `env_id`) and the install command. A cached run needs nothing extra.
    """
    policy_dir = Path(policy_dir)
    manifest_path = policy_dir / MANIFEST
    if manifest_path.exists():
        manifest = read_json(manifest_path)
        if total_steps is not None and manifest.get("total_steps") != total_steps:
            raise ValueError(
                f"{manifest_path}: cached behaviour policies were trained for {manifest.get('total_steps')} "
                f"steps, but total_steps={total_steps} was requested; delete {policy_dir} to retrain"
            )
        return manifest
    if env_id not in PPO_SETTINGS:
        raise KeyError(f"no PPO settings for {env_id!r}; known: {sorted(PPO_SETTINGS)}")
    require_training_packages(f"dataset {dataset}" if dataset else env_id, progress)
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    settings = dict(PPO_SETTINGS[env_id])
    settings["ppo"] = settings["ppo"] | dict(ppo_overrides or {})
    total_steps = int(total_steps or settings["total_steps"])
    torch.set_num_threads(1)
    stream = TrajectoryStream()
    venv: Any = DummyVecEnv([lambda: Monitor(RecordTransitions(gym.make(env_id), stream))])
    gamma = settings["ppo"].get("gamma", 0.99)
    vec_normalize = (
        VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=gamma) if settings["normalize"] else None
    )
    net = settings["net"]
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(net["pi"]), "vf": list(net["vf"])},
        "activation_fn": {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[net["activation"]],
    }
    policy_kwargs |= {k: net[k] for k in ("log_std_init", "ortho_init") if k in net}
    model = PPO(
        "MlpPolicy",
        vec_normalize or venv,
        seed=seed,
        device="cpu",
        policy_kwargs=policy_kwargs,
        verbose=0,
        **settings["ppo"],
    )
    callback, snapshots = _make_callback(env_id, eval_every, eval_episodes, seed, vec_normalize, log)
    t0 = time.perf_counter()
    model.learn(total_steps, callback=callback, progress_bar=progress)
    callback.snapshot()  # the final weights
    seconds = time.perf_counter() - t0
    medium, expert = select_snapshots(snapshots, medium_fraction)

    policy_dir.mkdir(parents=True, exist_ok=True)
    write_stream(policy_dir / STREAM, stream.arrays())
    infos = {}
    for level, snap in (("medium", medium), ("expert", expert)):
        infos[level] = {
            "env_id": env_id,
            "level": level,
            "timesteps": snap.timesteps,
            "eval_return_mean": float(snap.returns.mean()),
            "eval_return_std": float(snap.returns.std()),
            "eval_episodes": len(snap.returns),
        }
        dataclasses.replace(snap.policy, info=infos[level]).save(policy_dir / level)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["steps", "seconds", "eval_return_mean", "eval_return_std"])
    for s in snapshots:
        writer.writerow(
            [s.timesteps, f"{s.seconds:.1f}", f"{s.returns.mean():.2f}", f"{s.returns.std():.2f}"]
        )
    with atomic_path(policy_dir / CURVE) as tmp:
        tmp.write_text(text.getvalue())
    manifest = {
        "env_id": env_id,
        "seed": seed,
        "total_steps": total_steps,
        "train_seconds": round(seconds, 1),
        "steps_per_second": round(total_steps / seconds, 1),
        "settings": settings,
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "medium_fraction": medium_fraction,
        "medium": infos["medium"],
        "expert": infos["expert"],
        "final_eval_return_mean": float(snapshots[-1].returns.mean()),
        "stream_steps": stream.count,
        "versions": package_versions(),
    }
    write_json(manifest_path, manifest)  # written last: its presence marks a complete cache
    log(json.dumps({k: manifest[k] for k in ("env_id", "total_steps", "train_seconds", "medium", "expert")}))
    return manifest


def load_behaviour_policy(policy_dir: Path, level: str) -> GaussianMLPPolicy:
    """The cached `medium` or `expert` policy of a `train_behaviour_policies` run."""
    if level not in ("medium", "expert"):
        raise ValueError(f"level must be 'medium' or 'expert', got {level!r}")
    if not (Path(policy_dir) / MANIFEST).exists():
        raise FileNotFoundError(f"{Path(policy_dir) / MANIFEST}: no trained behaviour policies here")
    return GaussianMLPPolicy.load(Path(policy_dir) / level)
