"""Roundabout experts and their data: PPO per training combination, then only the episodes that did not crash.

The recipe is highway-env's own PPO example (stable-baselines3 `MlpPolicy` with separate 256-256 policy and
value networks, minibatches of 64, 768 steps per environment per update, 10 epochs, learning rate 5e-4,
γ = 0.8) on 2 environments, one expert per training combination (`car`, `bicycle`: all four road users of one
kind) and the PPO baseline on the training mixture (`train`). Recipes are data (`ExpertRecipe`, written into
each expert's JSON). A trained expert is a numpy copy of its actor and critic (`CategoricalMLPPolicy`) saved as
safetensors + JSON: rolling it out needs neither stable-baselines3 nor torch; only training imports
stable-baselines3 (the `generate` extra). The environment needs highway-env (the `ooc` extra).

Expert data: each expert drives in its own combination; crashed episodes are discarded, the others (11
transitions, 12 observations each) are stored in the D4RL layout with the discrete action one-hot in
`actions` and, per step, `infos/action` (the action id), `infos/composition` (r(o) of the observation),
`next_observations` and `infos/combination` (which training combination the episode comes from). See
docs/roundabout.md.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors.numpy import load_file, save_file

from ractd.data.generate.extras import require_generate_extra
from ractd.data.generate.recipes import RecipeData
from ractd.envs.roundabout import ENV_ID, OBS_FEATURES, OBS_ROWS, check_traffic, composition_tokens
from ractd.io import atomic_path, read_json, write_json

ACTION_NAMES: tuple[str, ...] = ("LANE_LEFT", "IDLE", "LANE_RIGHT", "FASTER", "SLOWER")  # DiscreteMetaAction
N_ACTIONS = len(ACTION_NAMES)
IDLE = ACTION_NAMES.index("IDLE")
OBS_DIM = OBS_ROWS * len(OBS_FEATURES)
TRAINING_COMBINATIONS: tuple[str, ...] = ("car", "bicycle")
BASELINE_TRAFFIC = "train"  # the PPO baseline learns on the 50/50 mixture of the training combinations
# highway-env's PPO example settings (its scripts/sb3_highway_ppo.py); n_steps is per environment
HIGHWAY_PPO: dict[str, Any] = {"n_steps": 768, "batch_size": 64, "n_epochs": 10, "learning_rate": 5e-4,
                               "gamma": 0.8}
EXPERT_STEPS: dict[str, int] = {"cpu": 50_000, "paper": 200_000}  # PPO environment steps per expert
EXPERT_KIND = "categorical_mlp_policy"
FORMAT = 1


Rngs = np.random.Generator | Sequence[np.random.Generator]


class Policy(Protocol):
    """Maps a batch of observations (B, 5, 6) or (B, 30) to a batch of action ids (B,). `rng` is one generator
    for the batch, or one per row (the episodes' own, when episodes are stepped together: `run_episodes`)."""

    def act(self, observations: np.ndarray, rng: Rngs, deterministic: bool = True) -> np.ndarray:
        ...


def categorical_actions(logits: np.ndarray, rng: Rngs, deterministic: bool = True) -> np.ndarray:
    """Action ids (B,) from logits (B, K): the argmax, or a draw from softmax(logits) by inverse CDF with `rng`."""
    logits = np.asarray(logits)
    if deterministic:
        return logits.argmax(axis=-1).astype(np.int64)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=-1, keepdims=True), axis=-1)
    u = uniform_per_row(rng, len(cdf))
    return np.minimum((u > cdf).sum(axis=-1), cdf.shape[-1] - 1).astype(np.int64)


def per_row(rng: Rngs, n: int) -> list[np.random.Generator]:
    """The n rows' own generators; one generator stands for a single row only (episodes are independent)."""
    if isinstance(rng, np.random.Generator):
        if n != 1:
            raise ValueError(f"one generator for a batch of {n} rows; pass one per row (episodes are independent)")
        return [rng]
    rngs = list(rng)
    if len(rngs) != n:
        raise ValueError(f"{len(rngs)} generators for a batch of {n} rows; pass one per row")
    return rngs


def uniform_per_row(rng: Rngs, n: int) -> np.ndarray:
    """(n, 1) uniform draws: n from one generator, or one from each of n per-row generators."""
    if isinstance(rng, np.random.Generator):
        return rng.random((n, 1))
    return np.array([g.random(1) for g in per_row(rng, n)]).reshape(n, 1)


# --------------------------------------------------------------------------- recipes


@dataclass(frozen=True)
class ExpertRecipe(RecipeData):
    """How to train one roundabout PPO policy with stable-baselines3.

    traffic: the environment's traffic option it learns on (a training combination, or `train` for the
        baseline). total_steps: environment steps of PPO. n_envs / vec_env: environments stepped together,
        `subproc` (one process each, for a slow environment on several cores) or `dummy` (in-process).
    ppo: keyword arguments of `stable_baselines3.PPO`. net: `pi` and `vf` layer widths and the `activation`
        (tanh, SB3's default, or relu). env_config: further environment keys (car_speed, bicycle_advance_m ...).
    eval_episodes / min_no_crash: the check after training; an expert's data is used only if its no-crash rate
        over `eval_episodes` episodes of its own traffic reaches `min_no_crash`.
    """

    traffic: str
    total_steps: int
    n_envs: int = 2
    vec_env: str = "subproc"
    ppo: dict[str, Any] = field(default_factory=lambda: dict(HIGHWAY_PPO))
    net: dict[str, Any] = field(default_factory=lambda: {"pi": [256, 256], "vf": [256, 256], "activation": "tanh"})
    env_config: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 100
    min_no_crash: float = 0.85

    def __post_init__(self) -> None:
        check_traffic(self.traffic)
        if self.vec_env not in ("subproc", "dummy"):
            raise ValueError(f"vec_env must be 'subproc' or 'dummy', got {self.vec_env!r}")
        if self.net.get("activation", "tanh") not in _ACTIVATIONS:
            raise ValueError(f"net activation must be one of {sorted(_ACTIVATIONS)}, got {self.net['activation']!r}")



def expert_recipe(traffic: str, scale: str = "cpu", **fields: Any) -> ExpertRecipe:
    """The PPO recipe for `traffic` at `scale` (`cpu`: 5e4 steps, `paper`: 2e5); `fields` replace recipe fields."""
    if scale not in EXPERT_STEPS:
        raise ValueError(f"unknown scale {scale!r}; choose one of: {', '.join(EXPERT_STEPS)}")
    return ExpertRecipe(traffic=traffic, total_steps=EXPERT_STEPS[scale]).with_overrides(**fields)


def expert_recipes(scale: str = "cpu", **fields: Any) -> dict[str, ExpertRecipe]:
    """One recipe per training combination, and the baseline's on the training mixture, keyed by traffic."""
    return {t: expert_recipe(t, scale, **fields) for t in (*TRAINING_COMBINATIONS, BASELINE_TRAFFIC)}


# --------------------------------------------------------------------------- policies

_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}


def flat_observations(observations: np.ndarray) -> np.ndarray:
    """(B, 5, 6) or (B, 30) observations → (B, 30) float32."""
    obs = np.asarray(observations, np.float32)
    if obs.shape[-2:] == (OBS_ROWS, len(OBS_FEATURES)):
        obs = obs.reshape(*obs.shape[:-2], OBS_DIM)
    if obs.shape[-1] != OBS_DIM:
        raise ValueError(f"expected roundabout observations of shape (..., {OBS_ROWS}, {len(OBS_FEATURES)}) or "
                         f"(..., {OBS_DIM}), got {obs.shape}")
    return obs


def _mlp(layers: Sequence[tuple[np.ndarray, np.ndarray]], activation: str, x: np.ndarray) -> np.ndarray:
    act = _ACTIVATIONS[activation]
    for w, b in layers[:-1]:
        x = act(x @ w.T + b)
    w, b = layers[-1]
    return x @ w.T + b


@dataclass
class CategoricalMLPPolicy:
    """π(a|s) = softmax(logits(s)): the actor (and critic) of an SB3 PPO `MlpPolicy` on discrete actions, in numpy.

    `weights` are the actor's hidden layers then its logits head, each (W [out, in], b); `value_weights` the
    critic's hidden layers then its value head (optional). The observation is flattened (SB3's flatten extractor).
    """

    weights: list[tuple[np.ndarray, np.ndarray]]
    activation: str
    value_weights: list[tuple[np.ndarray, np.ndarray]] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def logits(self, observations: np.ndarray) -> np.ndarray:
        return _mlp(self.weights, self.activation, flat_observations(observations))

    def value(self, observations: np.ndarray) -> np.ndarray:
        """V(s), the critic's estimate of the discounted return (γ of the recipe)."""
        if self.value_weights is None:
            raise ValueError("this policy was saved without its value network")
        return _mlp(self.value_weights, self.activation, flat_observations(observations))[..., 0]

    def act(self, observations: np.ndarray, rng: Rngs, deterministic: bool = True) -> np.ndarray:
        """Action ids (B,): argmax of the logits, or a draw from the softmax with `rng` (one, or one per row)."""
        return categorical_actions(self.logits(observations), rng, deterministic)

    @property
    def num_parameters(self) -> int:
        layers = self.weights + (self.value_weights or [])
        return int(sum(w.size + b.size for w, b in layers))

    @classmethod
    def from_sb3(cls, model: Any, info: dict[str, Any] | None = None) -> CategoricalMLPPolicy:
        """Copy the actor and critic of an SB3 PPO model with a Discrete action space into numpy arrays."""
        import torch

        policy = model.policy

        def linears(modules: Sequence[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(m.weight.detach().cpu().numpy().copy(), m.bias.detach().cpu().numpy().copy())
                    for m in modules if isinstance(m, torch.nn.Linear)]

        activation = policy.activation_fn.__name__.lower()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unsupported activation {activation!r}; expected one of {sorted(_ACTIVATIONS)}")
        return cls(weights=linears([*policy.mlp_extractor.policy_net, policy.action_net]), activation=activation,
                   value_weights=linears([*policy.mlp_extractor.value_net, policy.value_net]), info=dict(info or {}))

    def save(self, stem: Path) -> None:
        """Write `<stem>.safetensors` (arrays) and `<stem>.json` (architecture and `info`), each atomically."""
        stem = Path(stem)
        tensors: dict[str, np.ndarray] = {}
        for net, layers in (("pi", self.weights), ("vf", self.value_weights or [])):
            for i, (w, b) in enumerate(layers):
                tensors |= {f"{net}.{i}.weight": w, f"{net}.{i}.bias": b}
        with atomic_path(stem.with_suffix(".safetensors")) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp))
        write_json(stem.with_suffix(".json"), {
            "kind": EXPERT_KIND, "format": FORMAT, "pi_layers": len(self.weights),
            "vf_layers": len(self.value_weights or []), "activation": self.activation,
            "obs_dim": int(self.weights[0][0].shape[1]), "n_actions": int(self.weights[-1][0].shape[0]),
            "actions": list(ACTION_NAMES), "parameters": self.num_parameters, "info": self.info})

    @classmethod
    def load(cls, stem: Path) -> CategoricalMLPPolicy:
        """Read a policy written by `save`; errors name the file and what is wrong."""
        stem = Path(stem)
        meta_path, weights_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path}: no saved roundabout expert here")
        meta = read_json(meta_path)
        if meta.get("kind") != EXPERT_KIND:
            raise ValueError(f"{meta_path}: key 'kind' must be {EXPERT_KIND!r}, got {meta.get('kind')!r}")
        if not weights_path.exists():
            raise FileNotFoundError(f"{weights_path}: file not found (the weights of {meta_path})")
        t = load_file(str(weights_path))
        needed = [f"{net}.{i}.{p}" for net, n in (("pi", meta["pi_layers"]), ("vf", meta["vf_layers"]))
                  for i in range(n) for p in ("weight", "bias")]
        missing = [k for k in needed if k not in t]
        if missing:
            raise KeyError(f"{weights_path}: missing tensors {missing}")

        def layers(net: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
            return [(t[f"{net}.{i}.weight"], t[f"{net}.{i}.bias"]) for i in range(n)]

        return cls(weights=layers("pi", meta["pi_layers"]), activation=meta["activation"],
                   value_weights=layers("vf", meta["vf_layers"]) or None, info=meta.get("info", {}))


@dataclass(frozen=True)
class ConstantPolicy:
    """Always the same action (IDLE by default): a scripted reference driver."""

    action: int = IDLE

    def act(self, observations: np.ndarray, rng: Rngs, deterministic: bool = True) -> np.ndarray:
        return np.full(len(observations), self.action, dtype=np.int64)


def load_expert(stem: str | Path) -> CategoricalMLPPolicy:
    """A saved expert (`<stem>.safetensors` + `<stem>.json`), ready to roll out without stable-baselines3."""
    return CategoricalMLPPolicy.load(Path(stem))


# --------------------------------------------------------------------------- episodes


@dataclass
class Episode:
    """One roundabout episode: T actions and rewards, T + 1 observations (flattened), and whether it crashed."""

    seed: int
    observations: np.ndarray  # (T + 1, 30) float32
    actions: np.ndarray  # (T,) int64
    rewards: np.ndarray  # (T,) float32
    crashed: bool

    @property
    def length(self) -> int:
        return len(self.actions)


def episode_seeds(seed: int | Sequence[int], start: int, count: int) -> list[int]:
    """Reset seeds of episodes start … start + count − 1 of a run seeded `seed` (independent of how they are
    split across workers)."""
    base = [seed] if isinstance(seed, int) else list(seed)
    return [int(np.random.SeedSequence([*base, i]).generate_state(1)[0]) for i in range(start, start + count)]


def run_episodes(policy: Policy, traffic: str, seeds: Sequence[int], env_config: Mapping[str, Any] | None = None,
                 deterministic: bool = True, batch: int = 1) -> list[Episode]:
    """Roll `policy` out for one episode per reset seed, `batch` episodes at a time in lockstep (one `act` call for
    the running ones per step, each with its episode's own generator, seeded by the episode's seed: sampled actions
    and a planner's noise do not depend on the batch). Episodes come back in seed order."""
    from ractd.envs.roundabout import make_roundabout_env

    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    seeds = [int(s) for s in seeds]
    envs = [make_roundabout_env(traffic, **dict(env_config or {})) for _ in range(min(batch, len(seeds)))]
    episodes: list[Episode] = []
    try:
        for start in range(0, len(seeds), len(envs) or 1):
            episodes += _lockstep_episodes(policy, envs, seeds[start:start + len(envs)], deterministic)
    finally:
        for env in envs:
            env.close()
    return episodes


def _lockstep_episodes(policy: Policy, envs: list[Any], seeds: list[int], deterministic: bool) -> list[Episode]:
    rngs = [np.random.default_rng([s, 1]) for s in seeds]
    # the last chunk may hold fewer episodes than there are environments
    observations = [[flat_observations(env.reset(seed=s)[0])] for env, s in zip(envs, seeds, strict=False)]
    actions: list[list[int]] = [[] for _ in seeds]
    rewards: list[list[float]] = [[] for _ in seeds]
    crashed = [False] * len(seeds)
    running = list(range(len(seeds)))
    while running:
        chosen = np.asarray(policy.act(np.stack([observations[i][-1] for i in running]), [rngs[i] for i in running],
                                       deterministic)).reshape(-1)
        if len(chosen) != len(running):
            raise ValueError(f"{type(policy).__name__}.act returned {len(chosen)} actions for {len(running)} "
                             "observations")
        still = []
        for i, a in zip(running, chosen.tolist(), strict=True):
            obs, reward, terminated, truncated, info = envs[i].step(int(a))
            observations[i].append(flat_observations(obs))
            actions[i].append(int(a))
            rewards[i].append(reward)
            crashed[i] = bool(info.get("crashed", False)) or bool(terminated)
            if not (terminated or truncated):
                still.append(i)
        running = still
    return [Episode(s, np.stack(observations[i]), np.asarray(actions[i], np.int64),
                    np.asarray(rewards[i], np.float32), crashed[i]) for i, s in enumerate(seeds)]


class EpisodeRunner:
    """Runs batches of episodes in this process (`workers` ≤ 1) or split over `workers` processes, each stepping
    `batch` episodes in lockstep (`run_episodes`), returning them in seed order either way (so results do not depend
    on the number of workers or the batch)."""

    def __init__(self, policy: Policy, traffic: str, env_config: Mapping[str, Any] | None = None,
                 deterministic: bool = True, workers: int = 1, batch: int = 1):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.args = (policy, check_traffic(traffic), dict(env_config or {}), deterministic, int(batch))
        self.workers = int(workers)
        self.pool: Any = None

    def __enter__(self) -> EpisodeRunner:
        if self.workers > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("forkserver"))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def run(self, seeds: Sequence[int]) -> list[Episode]:
        policy, traffic, env_config, deterministic, batch = self.args
        if self.pool is None or len(seeds) < 2:
            return run_episodes(policy, traffic, seeds, env_config, deterministic, batch)
        chunks = [c.tolist() for c in np.array_split(np.asarray(seeds, np.int64), self.workers) if len(c)]
        futures = [self.pool.submit(run_episodes, policy, traffic, c, env_config, deterministic, batch)
                   for c in chunks]
        return [e for f in futures for e in f.result()]


def evaluate_no_crash(policy: Policy, traffic: str, episodes: int = 100, seed: int | Sequence[int] = 0,
                      env_config: Mapping[str, Any] | None = None, deterministic: bool = True,
                      workers: int = 1, batch: int = 1) -> dict[str, Any]:
    """No-crash rate, crashes and returns of `policy` over `episodes` episodes of `traffic` (reset seeds from
    `seed`): what decides whether an expert is good enough for its data to be used. `workers` processes, `batch`
    episodes stepped together in each (one `act` call per step for all: what makes a planner fast)."""
    if episodes < 1:
        raise ValueError(f"episodes must be ≥ 1, got {episodes}")
    with EpisodeRunner(policy, traffic, env_config, deterministic, workers, batch) as runner:
        done = runner.run(episode_seeds(seed, 0, episodes))
    crashed = np.array([e.crashed for e in done])
    returns = np.array([float(e.rewards.sum()) for e in done])
    counts = np.bincount(np.concatenate([e.actions for e in done]), minlength=N_ACTIONS)
    return {"traffic": traffic, "episodes": episodes, "crashes": int(crashed.sum()),
            "action_counts": dict(zip(ACTION_NAMES, counts.tolist(), strict=True)),
            "no_crash_rate": float(1.0 - crashed.mean()), "return_mean": float(returns.mean()),
            "return_se": float(returns.std(ddof=1) / np.sqrt(episodes)) if episodes > 1 else 0.0,
            "length_mean": float(np.mean([e.length for e in done])), "deterministic": deterministic}


# --------------------------------------------------------------------------- training


def _make_env(traffic: str, env_config: dict[str, Any]) -> Any:
    from stable_baselines3.common.monitor import Monitor

    from ractd.envs.roundabout import make_roundabout_env

    return Monitor(make_roundabout_env(traffic, **env_config))


def train_expert(recipe: ExpertRecipe, stem: str | Path, seed: int = 0, *, eval_seed: int | None = None,
                 workers: int = 1, progress: bool = False, log: Any = print) -> dict[str, Any]:
    """Train PPO by `recipe`, evaluate it and save it as `<stem>.safetensors` + `<stem>.json`; return its info.

    If the expert exists with the same recipe and seed its info is returned; a different recipe or seed is an
    error naming the file (delete it to retrain). The info holds the recipe, the seed, the training time, the
    no-crash evaluation (`recipe.eval_episodes` deterministic episodes from reset seeds `eval_seed`, default
    seed + 1000), whether it passed `recipe.min_no_crash`, and `probe`: observations' seeds and the actions
    stable-baselines3's own `predict` chose there, which the saved numpy copy reproduces.
    """
    stem = Path(stem)
    meta_path = stem.with_suffix(".json")
    if meta_path.exists():
        info = load_expert(stem).info
        if info.get("recipe") != recipe.as_dict() or info.get("seed") != seed:
            raise ValueError(f"{meta_path}: an expert trained with another recipe or seed exists (seed "
                             f"{info.get('seed')}); delete {meta_path} and {stem.with_suffix('.safetensors')} "
                             "to retrain")
        return info
    require_generate_extra(f"the roundabout expert for traffic {recipe.traffic!r}", "train PPO")
    import functools

    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from ractd.data.generate.save import package_versions
    from ractd.envs.roundabout import require_highway_env

    require_highway_env()
    torch.set_num_threads(1)
    fns = [functools.partial(_make_env, recipe.traffic, dict(recipe.env_config)) for _ in range(recipe.n_envs)]
    venv = SubprocVecEnv(fns, start_method="forkserver") if recipe.vec_env == "subproc" else DummyVecEnv(fns)
    activation = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[recipe.net.get("activation", "tanh")]
    policy_kwargs = {"net_arch": {"pi": list(recipe.net["pi"]), "vf": list(recipe.net["vf"])},
                     "activation_fn": activation}
    t0 = time.perf_counter()
    try:
        model = PPO("MlpPolicy", venv, seed=seed, device="cpu", policy_kwargs=policy_kwargs, verbose=0,
                    **recipe.ppo)
        model.learn(recipe.total_steps, progress_bar=progress)
    finally:
        venv.close()
    seconds = time.perf_counter() - t0
    policy = CategoricalMLPPolicy.from_sb3(model)
    probe_seeds = episode_seeds([seed, 7], 0, 16)
    probe_obs = np.stack([_reset_observation(recipe.traffic, s, recipe.env_config) for s in probe_seeds])
    sb3_actions, _ = model.predict(probe_obs, deterministic=True)
    eval_seed = seed + 1000 if eval_seed is None else eval_seed
    evaluation = evaluate_no_crash(policy, recipe.traffic, recipe.eval_episodes, eval_seed, recipe.env_config,
                                   workers=workers)
    policy.info = {
        "recipe": recipe.as_dict(), "seed": seed, "env_id": ENV_ID, "trained_steps": int(model.num_timesteps),
        "train_seconds": round(seconds, 1), "steps_per_second": round(model.num_timesteps / seconds, 1),
        "evaluation": evaluation | {"seed": eval_seed},
        "passed": evaluation["no_crash_rate"] >= recipe.min_no_crash,
        "probe": {"traffic": recipe.traffic, "reset_seeds": probe_seeds,
                  "actions": [int(a) for a in np.asarray(sb3_actions).reshape(-1)]},
        "versions": package_versions() | _version("highway-env"),
    }
    policy.save(stem)
    log(f"roundabout expert {recipe.traffic}: {model.num_timesteps:,d} steps in {seconds:.0f} s, no-crash rate "
        f"{evaluation['no_crash_rate']:.2f} over {recipe.eval_episodes} episodes "
        f"({'passed' if policy.info['passed'] else 'below'} {recipe.min_no_crash})")
    return policy.info


def _version(package: str) -> dict[str, str]:
    import importlib.metadata as md

    try:
        return {package: md.version(package)}
    except md.PackageNotFoundError:
        return {package: "not installed"}


def _reset_observation(traffic: str, seed: int, env_config: Mapping[str, Any]) -> np.ndarray:
    from ractd.envs.roundabout import make_roundabout_env

    env = make_roundabout_env(traffic, **dict(env_config))
    try:
        return env.reset(seed=int(seed))[0]
    finally:
        env.close()


def probe_actions(policy: Policy, info: Mapping[str, Any]) -> np.ndarray:
    """The actions `policy` takes on the first observations of an expert's `probe` (its info), to compare with
    the recorded ones."""
    probe = info["probe"]
    env_config = info.get("recipe", {}).get("env_config", {})
    obs = np.stack([_reset_observation(probe["traffic"], s, env_config) for s in probe["reset_seeds"]])
    return policy.act(obs, np.random.default_rng(0), deterministic=True)


# --------------------------------------------------------------------------- expert data


@dataclass
class ExpertData:
    """Successful episodes of one policy in one traffic, in D4RL layout, and how many attempts it took."""

    arrays: dict[str, np.ndarray]
    stats: dict[str, Any]


def episodes_to_arrays(episodes: Sequence[Episode]) -> dict[str, np.ndarray]:
    """D4RL layout of whole episodes: per step the observation, the one-hot action, the reward, the flags (the
    last step of an episode is a terminal if it crashed, else a timeout), `next_observations`, `infos/action`
    (the action id) and `infos/composition` (r(o) of the observation)."""
    if not episodes:
        raise ValueError("no episodes to store")
    obs = np.concatenate([e.observations[:-1] for e in episodes]).astype(np.float32)
    actions = np.concatenate([e.actions for e in episodes])
    last = np.cumsum([e.length for e in episodes]) - 1
    terminals = np.zeros(len(actions), bool)
    timeouts = np.zeros(len(actions), bool)
    crashed = np.array([e.crashed for e in episodes])
    terminals[last[crashed]] = True
    timeouts[last[~crashed]] = True
    return {
        "observations": obs,
        "actions": np.eye(N_ACTIONS, dtype=np.float32)[actions],
        "rewards": np.concatenate([e.rewards for e in episodes]).astype(np.float32),
        "terminals": terminals,
        "timeouts": timeouts,
        "next_observations": np.concatenate([e.observations[1:] for e in episodes]).astype(np.float32),
        "infos/action": actions.astype(np.int64),
        "infos/composition": composition_tokens(obs),
        "infos/episode_seed": np.repeat(np.array([e.seed for e in episodes], np.int64),
                                        [e.length for e in episodes]),
    }


def collect_successful_episodes(
    policy: Policy,
    traffic: str,
    n_episodes: int,
    seed: int | Sequence[int] = 0,
    *,
    env_config: Mapping[str, Any] | None = None,
    deterministic: bool = True,
    max_attempts: int | None = None,
    workers: int = 1,
    log: Any = None,
) -> ExpertData:
    """The first `n_episodes` episodes of `policy` in `traffic` that did not crash (reset seeds from `seed`, in
    order), in D4RL layout (`episodes_to_arrays`). Crashed episodes are discarded and counted in `stats`.

    Raises RuntimeError when `max_attempts` episodes (default 10 × n_episodes + 100) give too few.
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be ≥ 1, got {n_episodes}")
    max_attempts = 10 * n_episodes + 100 if max_attempts is None else max_attempts
    kept: list[Episode] = []
    attempted = 0
    t0 = time.perf_counter()
    with EpisodeRunner(policy, traffic, env_config, deterministic, workers) as runner:
        while len(kept) < n_episodes and attempted < max_attempts:
            rate = (len(kept) + 1) / (attempted + 1)  # a guess of the success rate, to size the next batch
            batch = min(max_attempts - attempted, max(workers, int(np.ceil((n_episodes - len(kept)) / rate))))
            for e in runner.run(episode_seeds(seed, attempted, batch)):
                attempted += 1
                if not e.crashed:
                    kept.append(e)
                    if len(kept) == n_episodes:
                        break
            if log is not None:
                log(f"{traffic}: {len(kept)}/{n_episodes} successful episodes in {attempted} attempts")
    if len(kept) < n_episodes:
        raise RuntimeError(f"only {len(kept)} of {attempted} episodes in traffic {traffic!r} did not crash; "
                           f"{n_episodes} were asked for (raise max_attempts or use a better expert)")
    stats = {"traffic": traffic, "episodes": n_episodes, "attempted": attempted, "crashed": attempted - n_episodes,
             "success_rate": n_episodes / attempted, "steps": int(sum(e.length for e in kept)),
             "deterministic": deterministic, "seconds": round(time.perf_counter() - t0, 1)}
    return ExpertData(episodes_to_arrays(kept), stats)


def combine_expert_data(parts: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate per-combination datasets (same keys) into one, adding `infos/combination`: per step, the
    position of its combination in `parts` (the names are recorded in the dataset's metadata)."""
    if not parts:
        raise ValueError("no datasets to combine")
    keys = [set(p) for p in parts.values()]
    if any(k != keys[0] for k in keys):
        raise ValueError(f"datasets to combine have different keys: {[sorted(k) for k in keys]}")
    out = {k: np.concatenate([np.asarray(p[k]) for p in parts.values()]) for k in next(iter(parts.values()))}
    out["infos/combination"] = np.concatenate([np.full(len(p["rewards"]), i, np.int64)
                                               for i, p in enumerate(parts.values())])
    return out


def _combination_seed(seed: int, traffic: str) -> list[int]:
    return [seed, zlib.crc32(traffic.encode())]


def generate_roundabout_expert_data(
    out_dir: str | Path,
    name: str,
    experts: Mapping[str, Policy | str | Path],
    episodes_per_combination: int = 1000,
    seed: int = 0,
    *,
    deterministic: bool = True,
    require_passed: bool = True,
    workers: int = 1,
    overwrite: bool = True,
    log: Any = print,
) -> Any:
    """Roll each expert out in its training combination and write the successful episodes as one dataset.

    `experts` maps a traffic option (the combination) to a policy, or to the stem of a saved expert
    (`train_expert`); a saved expert whose no-crash evaluation did not reach its recipe's threshold is refused
    while `require_passed`. Writes `<out_dir>/<name>.hdf5` (D4RL layout and the extra keys of
    `episodes_to_arrays` plus `infos/combination`; metadata: the combinations, per-combination statistics and
    the experts' evaluations) and `<out_dir>/card.json`, atomically; returns the `SavedDataset`.
    """
    from ractd.data.generate.save import package_versions, save_generated_dataset

    parts: dict[str, dict[str, np.ndarray]] = {}
    stats: dict[str, Any] = {}
    expert_meta: dict[str, Any] = {}
    for traffic, expert in experts.items():
        check_traffic(traffic)
        env_config: dict[str, Any] = {}
        if isinstance(expert, str | Path):
            policy: Policy = load_expert(expert)
            info = policy.info  # type: ignore[attr-defined]
            recipe = info.get("recipe", {})
            if recipe.get("traffic") != traffic:
                raise ValueError(f"{Path(expert).with_suffix('.json')}: this expert was trained on traffic "
                                 f"{recipe.get('traffic')!r}, not {traffic!r}")
            if require_passed and not info.get("passed", False):
                ev = info.get("evaluation", {})
                raise ValueError(f"{Path(expert).with_suffix('.json')}: no-crash rate {ev.get('no_crash_rate')} "
                                 f"over {ev.get('episodes')} episodes is below the recipe's "
                                 f"{recipe.get('min_no_crash')}; its data is not used (train longer, or pass "
                                 "require_passed=False)")
            env_config = dict(recipe.get("env_config", {}))
            expert_meta[traffic] = {"path": str(expert), "evaluation": info.get("evaluation"),
                                    "seed": info.get("seed"), "total_steps": recipe.get("total_steps")}
        else:
            policy = expert
            expert_meta[traffic] = {"policy": type(expert).__name__}
        data = collect_successful_episodes(policy, traffic, episodes_per_combination,
                                           _combination_seed(seed, traffic), env_config=env_config,
                                           deterministic=deterministic, workers=workers, log=log)
        parts[traffic], stats[traffic] = data.arrays, data.stats
    arrays = combine_expert_data(parts)
    metadata = {"name": name, "env_id": ENV_ID, "source": "generated", "generator": "roundabout-experts",
                "combinations": list(parts), "episodes_per_combination": episodes_per_combination, "seed": seed,
                "deterministic": deterministic, "actions": list(ACTION_NAMES), "collection": stats,
                "experts": expert_meta, "versions": package_versions()}
    no_reference: Any = (None, None)  # no normalized score: the card shows raw returns
    return save_generated_dataset(out_dir, name, arrays, metadata, env_id=ENV_ID, ref=no_reference,
                                  algorithm_name="ractd/roundabout-ppo-experts", minari=False,
                                  card_extra={"collection": stats}, overwrite=overwrite)
