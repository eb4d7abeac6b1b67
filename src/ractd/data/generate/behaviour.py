"""Locomotion behaviour policies: PPO training with cached snapshots, and batched rollouts.

The D4RL locomotion recipe (Fu et al. 2020, §5) needs three behaviour sources per environment: a random
policy, a "medium" policy stopped at about one third of the expert's return, and the converged "expert"
policy, plus every trajectory the learner collected until the medium snapshot ("medium-replay").
`train_behaviour_policies` produces all of them in one stable-baselines3 PPO run and caches them in a
folder (`<env>-policies/`): policies as safetensors + JSON (no pickle), the training curve as CSV, the
learner's trajectory stream as hdf5. `rollout_transitions` turns any policy into D4RL-layout arrays.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import h5py
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from safetensors.numpy import load_file, save_file

from ractd.io import atomic_path, read_json, write_json

# Keys of one transition table, in D4RL's hdf5 naming.
TRANSITION_KEYS = (
    "observations",
    "actions",
    "rewards",
    "terminals",
    "timeouts",
    "next_observations",
    "infos/qpos",
    "infos/qvel",
)

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


@contextmanager
def progress_bar(description: str, total: int, enabled: bool) -> Iterator[Any]:
    """A rich progress bar with ETA, or a no-op advance function when disabled."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _split_budget(steps: int, n_envs: int) -> np.ndarray:
    """Per-env step budgets that sum to `steps` (the first `steps % n` envs take one more)."""
    n = max(1, min(n_envs, steps))
    return np.array([steps // n + (i < steps % n) for i in range(n)], dtype=np.int64)


def rollout_transitions(
    env_id: str,
    policy: Policy,
    steps: int,
    seed: int | Sequence[int],
    n_envs: int = 8,
    progress: bool = True,
    description: str = "rollouts",
) -> dict[str, np.ndarray]:
    """Exactly `steps` transitions of `policy` in D4RL layout, one policy call per vector step.

    Each of the `n_envs` environments is an independent sequential stream with its own budget; the
    streams are concatenated env by env, so every episode is contiguous. terminals = the env terminated,
    timeouts = the env truncated (TimeLimit) or the stream hit its budget mid-episode (never unflagged).
    infos/qpos and infos/qvel are the simulator state at the time of `observations`.
    Deterministic given (seed, n_envs): env i is reset with a seed drawn from SeedSequence(seed) and the
    action noise comes from a generator spawned from the same sequence.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    budgets = _split_budget(steps, n_envs)
    n = len(budgets)
    seq = np.random.SeedSequence(seed)
    env_seeds = [int(s) for s in seq.generate_state(n)]
    rng = np.random.default_rng(seq.spawn(1)[0])

    envs = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(n)], autoreset_mode=AutoresetMode.SAME_STEP)
    try:
        sims = [e.unwrapped.data for e in envs.envs]
        obs, _ = envs.reset(seed=env_seeds)
        cap = int(budgets.max())
        buf = {
            "observations": np.zeros((n, cap, obs.shape[1]), np.float32),
            "actions": np.zeros((n, cap, envs.single_action_space.shape[0]), np.float32),
            "rewards": np.zeros((n, cap), np.float32),
            "terminals": np.zeros((n, cap), bool),
            "timeouts": np.zeros((n, cap), bool),
            "next_observations": np.zeros((n, cap, obs.shape[1]), np.float32),
            "infos/qpos": np.zeros((n, cap, sims[0].qpos.shape[0]), np.float64),
            "infos/qvel": np.zeros((n, cap, sims[0].qvel.shape[0]), np.float64),
        }
        filled = np.zeros(n, np.int64)
        with progress_bar(description, steps, progress) as advance:
            while (active := filled < budgets).any():
                qpos = np.stack([d.qpos.copy() for d in sims])
                qvel = np.stack([d.qvel.copy() for d in sims])
                actions = policy.act(obs, rng)
                next_obs, rewards, terminated, truncated, info = envs.step(actions)
                true_next = next_obs.copy()
                for i in np.flatnonzero(terminated | truncated):
                    true_next[i] = info["final_obs"][i]
                rows, cols = np.flatnonzero(active), filled[active]
                row = {
                    "observations": obs,
                    "actions": actions,
                    "rewards": rewards,
                    "terminals": terminated,
                    "timeouts": truncated,
                    "next_observations": true_next,
                    "infos/qpos": qpos,
                    "infos/qvel": qvel,
                }
                for key, value in row.items():
                    buf[key][rows, cols] = value[rows]
                filled[active] += 1
                advance(len(rows))
                obs = next_obs
    finally:
        envs.close()
    # A stream that stops mid-episode closes it with a timeout flag.
    for i in range(n):
        last = budgets[i] - 1
        if not buf["terminals"][i, last]:
            buf["timeouts"][i, last] = True
    return {k: np.concatenate([v[i, : budgets[i]] for i in range(n)]) for k, v in buf.items()}


def episode_returns(rewards: np.ndarray, terminals: np.ndarray, timeouts: np.ndarray) -> np.ndarray:
    """Σ r over each episode of a flat D4RL stream (an episode closes at terminal | timeout)."""
    ends = np.flatnonzero(np.asarray(terminals) | np.asarray(timeouts))
    if len(ends) == 0 or ends[-1] != len(rewards) - 1:
        ends = np.append(ends, len(rewards) - 1)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(rewards, np.float64))])
    starts = np.concatenate([[0], ends[:-1] + 1])
    return cumulative[ends + 1] - cumulative[starts]


def evaluate_returns(env_id: str, policy: Policy, episodes: int, seed: int | Sequence[int]) -> np.ndarray:
    """Returns of `episodes` complete episodes, one per env, all run in parallel until each has ended."""
    seq = np.random.SeedSequence(seed)
    env_seeds = [int(s) for s in seq.generate_state(episodes)]
    rng = np.random.default_rng(seq.spawn(1)[0])
    envs = SyncVectorEnv([lambda: gym.make(env_id) for _ in range(episodes)])
    try:
        obs, _ = envs.reset(seed=env_seeds)
        returns = np.zeros(episodes)
        done = np.zeros(episodes, bool)
        while not done.all():
            obs, rewards, terminated, truncated, _ = envs.step(policy.act(obs, rng))
            returns += np.where(done, 0.0, rewards)
            done |= terminated | truncated
    finally:
        envs.close()
    return returns


# ---------------------------------------------------------------- training with a recorded trajectory stream


class _TrajectoryStream:
    """Every transition a learner collects, in collection order, tagged with its episode and global index.

    Rows go into preallocated column chunks (no per-row Python objects: millions of steps fit in memory).
    """

    CHUNK = 65_536
    DTYPES = {
        "terminals": bool,
        "timeouts": bool,
        "infos/qpos": np.float64,
        "infos/qvel": np.float64,
        "episode_id": np.int64,
        "collected_at": np.int64,
    }

    def __init__(self) -> None:
        self.chunks: dict[str, list[np.ndarray]] = {}
        self.count = 0
        self.episodes = 0

    def new_episode(self) -> int:
        self.episodes += 1
        return self.episodes - 1

    def add(self, episode: int, transition: dict[str, Any]) -> None:
        row = dict(transition, episode_id=episode, collected_at=self.count)
        i = self.count % self.CHUNK
        for k, v in row.items():
            v = np.asarray(v)
            if i == 0:
                dtype = self.DTYPES.get(k, np.float32)
                self.chunks.setdefault(k, []).append(np.zeros((self.CHUNK, *v.shape), dtype))
            self.chunks[k][-1][i] = v
        self.count += 1

    def arrays(self) -> dict[str, np.ndarray]:
        """Rows grouped into contiguous episodes (ordered by episode start), steps in order within each."""
        out = {k: np.concatenate(v)[: self.count] for k, v in self.chunks.items()}
        order = np.argsort(out["episode_id"], kind="stable")
        return {k: v[order] for k, v in out.items()}


class _RecordTransitions(gym.Wrapper):
    """Records raw (unnormalized) transitions of the env the learner steps into a shared stream."""

    def __init__(self, env: gym.Env, stream: _TrajectoryStream) -> None:
        super().__init__(env)
        self.stream = stream
        self.episode = -1
        self.obs: np.ndarray | None = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.obs, info = self.env.reset(**kwargs)
        self.episode = self.stream.new_episode()
        return self.obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        data = self.env.unwrapped.data
        qpos, qvel = data.qpos.copy(), data.qvel.copy()
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        self.stream.add(
            self.episode,
            {
                "observations": self.obs,
                "actions": action,
                "rewards": reward,
                "terminals": terminated,
                "timeouts": truncated,
                "next_observations": next_obs,
                "infos/qpos": qpos,
                "infos/qvel": qvel,
            },
        )
        self.obs = next_obs
        return next_obs, reward, terminated, truncated, info


def replay_until(stream: dict[str, np.ndarray], step: int) -> dict[str, np.ndarray]:
    """Every transition collected before global step `step`, episodes contiguous (D4RL medium-replay).

    An episode still running at `step` keeps its collected prefix, closed with a timeout flag.
    """
    keep = stream["collected_at"] < step
    out = {k: v[keep] for k, v in stream.items()}
    episode = out["episode_id"]
    closes = np.ones(len(episode), bool)
    closes[:-1] = episode[1:] != episode[:-1]
    out["timeouts"] = out["timeouts"] | (closes & ~out["terminals"])
    return {k: out[k] for k in TRANSITION_KEYS}


def write_stream(path: Path, stream: dict[str, np.ndarray]) -> None:
    """Store the learner's trajectory stream as hdf5 (atomically)."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k, v in stream.items():
            f.create_dataset(k, data=v, compression="gzip", compression_opts=1)


def read_stream(path: Path) -> dict[str, np.ndarray]:
    """Read a stream written by `write_stream`; errors name the file and the missing key."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found (the behaviour-policy training stream)")
    with h5py.File(path, "r") as f:
        missing = [k for k in (*TRANSITION_KEYS, "episode_id", "collected_at") if k not in f]
        if missing:
            raise KeyError(f"{path}: missing datasets {missing}")
        return {k: f[k][()] for k in (*TRANSITION_KEYS, "episode_id", "collected_at")}


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


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine generated data."""
    import importlib.metadata as md

    out = {}
    for pkg in ("ractd", "gymnasium", "mujoco", "stable-baselines3", "torch", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


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
) -> dict[str, Any]:
    """Train PPO on `env_id` once and cache medium/expert policies and the learner's stream in `policy_dir`.

    If `policy_dir/policies.json` exists the cached run is returned (an explicit `total_steps` that
    differs from the cached run is an error, not a silent retrain). Returns the manifest dict.
    `ppo_overrides` replace entries of `PPO_SETTINGS[env_id]["ppo"]` (SB3 PPO keyword arguments).
    Deterministic given `seed` (PPO seed, env seeds, torch single-threaded).
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
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    settings = dict(PPO_SETTINGS[env_id])
    settings["ppo"] = settings["ppo"] | dict(ppo_overrides or {})
    total_steps = int(total_steps or settings["total_steps"])
    torch.set_num_threads(1)
    stream = _TrajectoryStream()
    venv: Any = DummyVecEnv([lambda: Monitor(_RecordTransitions(gym.make(env_id), stream))])
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
