"""Behaviour policies by PPO (stable-baselines3, an optional extra): train once per env, save, read back.

The D4RL locomotion recipe (Fu et al. 2020, §5) needs three behaviour sources per environment: a random
policy, a "medium" policy stopped at about one third of the expert's return, and the converged "expert"
policy, plus the learner's experience until the medium policy ("medium-replay"). `train_behaviour_policies`
produces all of them in one PPO run (recipe: `recipes.RECIPES`) and writes them to a folder: every
snapshot as safetensors + JSON (no pickle; observation-normalization statistics included), the training
curve as CSV and a manifest (`policies.json`). The package ships one such folder per environment
(`shipped_policy_dir`), so datasets are rolled out without any RL library; only training imports
stable-baselines3, and this is the one module that does (inside the functions that train).
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

from ractd.data.generate.extras import require_generate_extra
from ractd.data.generate.policies import GaussianMLPPolicy, UniformRandomPolicy
from ractd.data.generate.recipes import PPORecipe, recipe_for
from ractd.data.generate.rollout import evaluate_returns
from ractd.data.generate.save import package_versions
from ractd.io import atomic_path, read_json, write_json

MANIFEST = "policies.json"
CURVE = "training_curve.csv"
FORMAT = 2  # manifest layout version: snapshots + learner sequence (1 = one cached learner stream)
# The short evaluation every policy is checked on after loading: `episodes` episodes cut at `horizon` steps
# from fixed reset seeds; the truncated return's mean is recorded at training time.
CHECK = {"episodes": 8, "horizon": 100, "seed": 20240613}
FINAL_EVAL_EPISODES = 20  # fresh episodes that re-evaluate the selected medium and expert snapshots


def require_training_packages(needed_for: str, progress: bool) -> None:
    """Raise MissingExtraError unless stable-baselines3 (and tqdm, for its progress bar) can be imported."""
    require_generate_extra(needed_for, "train its PPO behaviour policies", progress)


def shipped_policy_dir(env_id: str) -> Path:
    """The behaviour policies shipped inside the package for gymnasium env `env_id` (e.g. Hopper-v5)."""
    from importlib.resources import files

    return Path(str(files("ractd.data.generate"))) / "behaviour" / env_id.split("-")[0].lower()


@dataclass
class Snapshot:
    """The actor after `timesteps` environment steps of training and its evaluated episode returns."""

    timesteps: int
    seconds: float
    returns: np.ndarray
    policy: GaussianMLPPolicy | None


def _make_callback(
    recipe: PPORecipe, seed: int, vec_normalize: Any, log: Any, max_seconds: float | None
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
            eval_seed = [seed, 7919, len(snapshots)]
            returns = evaluate_returns(recipe.env_id, policy, recipe.eval_episodes, eval_seed)
            snapshots.append(Snapshot(steps, time.perf_counter() - t0, returns, policy))
            log(f"{recipe.env_id} step {steps:>9,d} ({time.perf_counter() - t0:6.0f} s): "
                f"eval return {returns.mean():8.1f} ± {returns.std():6.1f}")

        def _on_rollout_start(self) -> None:
            if not snapshots or self.model.num_timesteps - snapshots[-1].timesteps >= recipe.snapshot_every:
                self.snapshot()

        def _on_step(self) -> bool:
            return max_seconds is None or time.perf_counter() - t0 < max_seconds

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


def policy_check(env_id: str, policy: Any) -> dict[str, Any]:
    """What a loaded copy of `policy` must reproduce: its mean truncated return on `CHECK`'s short
    evaluation, and (for a network) its deterministic action on the first reset observation."""
    returns = evaluate_returns(env_id, policy, CHECK["episodes"], CHECK["seed"], horizon=CHECK["horizon"])
    out: dict[str, Any] = {"truncated_return_mean": float(returns.mean()),
                           "truncated_return_std": float(returns.std())}
    if isinstance(policy, GaussianMLPPolicy):
        obs, _ = gym.make(env_id).reset(seed=CHECK["seed"])
        out["probe_action"] = [float(a) for a in policy.mean_action(obs[None])[0]]
    return out


def _write_curve(path: Path, snapshots: list[Snapshot]) -> None:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["steps", "seconds", "eval_return_mean", "eval_return_std"])
    for s in snapshots:
        writer.writerow([s.timesteps, f"{s.seconds:.1f}", f"{s.returns.mean():.2f}", f"{s.returns.std():.2f}"])
    with atomic_path(path) as tmp:
        tmp.write_text(text.getvalue())


def train_behaviour_policies(
    env_id: str,
    policy_dir: Path,
    seed: int = 0,
    total_steps: int | None = None,
    *,
    recipe: PPORecipe | None = None,
    ppo_overrides: dict[str, Any] | None = None,
    progress: bool = True,
    log: Any = print,
    dataset: str | None = None,
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Train PPO on `env_id` once and write its behaviour policies to `policy_dir`; return the manifest.

    If `policy_dir/policies.json` exists the saved run is returned (an explicit `total_steps` that differs
    from it is an error, not a silent retrain). `recipe` defaults to `RECIPES[env_id]`; `ppo_overrides`
    replace entries of its `ppo` (SB3 PPO keyword arguments). Deterministic given `seed` (PPO seed, env
    seeds, torch single-threaded) unless `max_seconds` stops training early (the steps reached are recorded).
    Training needs the `generate` extra; without it a MissingExtraError names `dataset` (the dataset that
    asked for the policies, default `env_id`) and the install command. A saved run needs nothing extra.

    Written: `medium`, `expert` and `learner-NNN` (every snapshot before the medium one, in training
    order) as `<name>.safetensors` + `<name>.json`, `training_curve.csv`, and `policies.json` last.
    """
    policy_dir = Path(policy_dir)
    manifest_path = policy_dir / MANIFEST
    if manifest_path.exists():
        manifest = read_manifest(policy_dir)
        if total_steps is not None and manifest.get("total_steps") != total_steps:
            raise ValueError(
                f"{manifest_path}: saved behaviour policies were trained for {manifest.get('total_steps')} "
                f"steps, but total_steps={total_steps} was requested; delete {policy_dir} to retrain"
            )
        return manifest
    recipe = (recipe or recipe_for(env_id)).with_overrides(ppo_overrides)
    if recipe.env_id != env_id:
        raise ValueError(f"recipe is for {recipe.env_id!r}, not {env_id!r}")
    require_training_packages(f"dataset {dataset}" if dataset else env_id, progress)
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    total_steps = int(total_steps or recipe.total_steps)
    torch.set_num_threads(1)
    venv: Any = DummyVecEnv([lambda: Monitor(gym.make(env_id)) for _ in range(recipe.n_envs)])
    gamma = recipe.ppo.get("gamma", 0.99)
    vec_normalize = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=gamma) if recipe.normalize else None
    net = recipe.net
    policy_kwargs: dict[str, Any] = {
        "net_arch": {"pi": list(net["pi"]), "vf": list(net["vf"])},
        "activation_fn": {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[net["activation"]],
    }
    policy_kwargs |= {k: net[k] for k in ("log_std_init", "ortho_init") if k in net}
    model = PPO("MlpPolicy", vec_normalize or venv, seed=seed, device="cpu", policy_kwargs=policy_kwargs,
                verbose=0, **recipe.ppo)
    callback, snapshots = _make_callback(recipe, seed, vec_normalize, log, max_seconds)
    t0 = time.perf_counter()
    model.learn(total_steps, callback=callback, progress_bar=progress)
    callback.snapshot()  # the final weights
    seconds = time.perf_counter() - t0
    medium, expert = select_snapshots(snapshots, recipe.medium_fraction)
    learner = [s for s in snapshots if s.timesteps < medium.timesteps]
    bounds = [s.timesteps for s in learner] + [medium.timesteps]

    entries: dict[str, dict[str, Any]] = {"random": {"kind": "uniform", "file": None, "timesteps": None}}
    named = [("medium", medium), ("expert", expert)] + [(f"learner-{j:03d}", s) for j, s in enumerate(learner)]
    for name, snap in named:
        info: dict[str, Any] = {"kind": "gaussian_mlp", "file": name, "timesteps": snap.timesteps,
                                "curve_return_mean": float(snap.returns.mean()),
                                "curve_return_std": float(snap.returns.std())}
        if name in ("medium", "expert"):  # a fresh evaluation: the curve's value is the best of many noisy ones
            fresh_seed = [seed, 104729, 1 if name == "medium" else 2]
            fresh = evaluate_returns(env_id, snap.policy, FINAL_EVAL_EPISODES, fresh_seed)
            info |= {"eval_return_mean": float(fresh.mean()), "eval_return_std": float(fresh.std()),
                     "eval_episodes": FINAL_EVAL_EPISODES}
        else:
            j = int(name.split("-")[1])
            info |= {"replays_steps": [bounds[j], bounds[j + 1]]}
        entries[name] = info
    entries["random"] |= policy_check(env_id, UniformRandomPolicy.for_env(env_id))
    for name, snap in named:
        entries[name] |= policy_check(env_id, snap.policy)
        dataclasses.replace(snap.policy, info={"env_id": env_id, "name": name, **entries[name]}).save(
            policy_dir / name)
    _write_curve(policy_dir / CURVE, snapshots)
    space = gym.make(env_id)
    manifest = {
        "format": FORMAT,
        "env_id": env_id,
        "obs_dim": int(space.observation_space.shape[0]),
        "act_dim": int(space.action_space.shape[0]),
        "seed": seed,
        "recipe": recipe.as_dict(),
        "total_steps": total_steps,
        "trained_steps": snapshots[-1].timesteps,
        "train_seconds": round(seconds, 1),
        "steps_per_second": round(snapshots[-1].timesteps / seconds, 1),
        "stopped_early": snapshots[-1].timesteps < total_steps,
        "policies": entries,
        "medium_replay": [f"learner-{j:03d}" for j in range(len(learner))],
        "check": CHECK,
        "final_eval_return_mean": float(snapshots[-1].returns.mean()),
        "versions": package_versions(),
    }
    write_json(manifest_path, manifest)  # written last: its presence marks a complete folder
    log(json.dumps({"env_id": env_id, "trained_steps": manifest["trained_steps"], "train_seconds": seconds,
                    "medium": entries["medium"]["eval_return_mean"], "expert": entries["expert"]["eval_return_mean"]}))
    return manifest


def read_manifest(policy_dir: Path) -> dict[str, Any]:
    """The manifest of a behaviour-policy folder; clear errors for a missing or outdated one."""
    path = Path(policy_dir) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path}: no trained behaviour policies here")
    manifest = read_json(path)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: behaviour policies in an older layout (format {manifest.get('format')}, "
                         f"expected {FORMAT}); delete {Path(policy_dir)} and generate with --train-policies")
    return manifest


def load_behaviour_policy(policy_dir: Path, name: str) -> GaussianMLPPolicy | UniformRandomPolicy:
    """The policy `name` (random, medium, expert or learner-NNN) of a behaviour-policy folder."""
    manifest = read_manifest(policy_dir)
    entries = manifest["policies"]
    if name not in entries:
        raise ValueError(f"{Path(policy_dir) / MANIFEST}: no policy {name!r}; it has {sorted(entries)}")
    if entries[name]["kind"] == "uniform":
        return UniformRandomPolicy.for_env(manifest["env_id"])
    return GaussianMLPPolicy.load(Path(policy_dir) / entries[name]["file"])
