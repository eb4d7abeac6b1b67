"""Seeded, vectorized policy rollouts (docs/algorithm.md §6; corrects §8 items 1 and 16).

Episode i is reset with seed ``seed + i`` and runs exactly once; the policy is told that seed
(``infos["episode_seed"]`` at its reset), so a stochastic policy can draw each episode's randomness
from it and make episode i the same whatever else runs beside it. All running episodes advance
together: one batched ``policy.act`` call per env step for the envs that are still running; an
episode that ends is masked out and its env slot is refilled with the next pending episode, so at
most ``max_parallel`` envs exist at a time. The score is the true return Σ r_t; the reference code's
running-max sum is only computed on request, as a separately named legacy metric.

The envs are built once (``EvalResult.construct_seconds`` times it, outside ``wall_seconds``) and stepped as one
vector env, ``ractd.evaluate.vector_env.EpisodeSlots``: in this process, only the running slots, a slot reset with
its next episode's seed when one ends (gymnasium's ``SyncVectorEnv`` steps every sub-env and merges every info dict
each step, its ``AsyncVectorEnv`` runs a subprocess per env; both measured slower on two cores).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from ractd.data.returns import episode_returns, normalized_score
from ractd.evaluate.metrics import running_max_return
from ractd.evaluate.results import EvalResult
from ractd.evaluate.vector_env import EnvFactory, EpisodeSlots, env_id
from ractd.progress import progress_bar

DEFAULT_MAX_PARALLEL = 256
PROGRESS_SECONDS = 0.1  # the progress bar's expected total is recomputed at most this often


@runtime_checkable
class BatchPolicy(Protocol):
    """What the evaluator drives. ``env_indices`` name env slots in ``[0, max_parallel)``; a slot is
    reused by a new episode only after ``reset`` was called for it.

    Optional: ``check_env(env)``, called once with the first env before any episode, to refuse an env
    the policy was not made for (e.g. other observation or action sizes)."""

    def reset(self, observations: np.ndarray, infos: dict[str, Any], env_indices: np.ndarray) -> None:
        """Start an episode in each of ``env_indices`` from its first observation (row-aligned).

        ``infos[key]`` stacks the reset info of those envs along axis 0 (e.g. ``infos["goal"]`` for
        Maze2d, where a planner makes its one plan here); ``infos["episode_seed"]`` holds the seed each
        env was reset with (``seed + i`` for episode i)."""
        ...

    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        """Actions, shape (len(env_indices), *action_shape), for the running envs only."""
        ...


def stack_infos(infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack per-env info dicts key by key along a new axis 0 (keys present in every dict only);
    values that do not stack into one array (ragged, non-numeric) are kept as a list."""
    if not infos:
        return {}
    keys = [k for k in infos[0] if all(k in info for info in infos[1:])]
    out: dict[str, Any] = {}
    for k in keys:
        values = [info[k] for info in infos]
        try:
            out[k] = np.stack([np.asarray(v) for v in values])
        except (ValueError, TypeError):
            out[k] = values
    return out


def episode_limit(env: gym.Env, max_episode_steps: int | None) -> int:
    """The step limit per episode: ``max_episode_steps`` if given, else the env spec's."""
    if max_episode_steps is not None:
        if not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps: expected a positive integer, got {max_episode_steps!r}")
        return int(max_episode_steps)
    spec_limit = env.spec.max_episode_steps if env.spec is not None else None
    if spec_limit is None:
        raise ValueError(
            f"{env_id(env)}: the env declares no max_episode_steps (env.spec); pass max_episode_steps "
            "so that every episode is guaranteed to end"
        )
    return int(spec_limit)


def expected_steps(ended: Sequence[int], running: Sequence[int], pending: int, limit: int) -> int:
    """Env steps an evaluation is expected to take in all, from the episode lengths seen so far: the ended
    episodes' lengths; for a running episode that has lived l steps, the mean length of the ended episodes that
    lived longer than l (the step limit when none did); for a pending one, the mean over all of these."""
    ended_sorted = np.sort(np.asarray(ended, dtype=np.float64))
    suffix = np.cumsum(ended_sorted[::-1])[::-1]  # suffix[i] = sum of ended_sorted[i:]
    finals = []
    for lived in running:
        i = int(np.searchsorted(ended_sorted, lived, side="right"))  # ended episodes longer than `lived`
        n_longer = ended_sorted.size - i
        finals.append(min(limit, suffix[i] / n_longer) if n_longer else limit)
    seen = [*ended_sorted.tolist(), *finals]
    mean = float(np.mean(seen)) if seen else float(limit)
    return int(round(sum(seen) + pending * mean))


def _checked_actions(actions: Any, n: int, env: gym.Env) -> np.ndarray:
    a = np.asarray(actions)
    expected = (n, *env.action_space.shape)
    if a.shape != expected:
        raise ValueError(
            f"policy.act returned actions of shape {a.shape} for {n} running env(s) of {env_id(env)}; "
            f"expected {expected} (action space {env.action_space})"
        )
    return a


def _check_arguments(n_episodes: int, seed: int, ref_scores: tuple[float, float] | None) -> None:
    if not isinstance(n_episodes, (int, np.integer)) or n_episodes < 1:
        raise ValueError(f"n_episodes: expected a positive integer, got {n_episodes!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    if ref_scores is not None and len(ref_scores) != 2:
        raise ValueError(f"ref_scores: expected (random_return, expert_return), got {ref_scores!r}")


def _check_env(policy: BatchPolicy, env: gym.Env) -> None:
    check = getattr(policy, "check_env", None)
    if check is not None:
        check(env)


def _reset_infos(infos: Sequence[dict[str, Any]], episode_seeds: np.ndarray) -> dict[str, Any]:
    return {**stack_infos(infos), "episode_seed": np.asarray(episode_seeds, dtype=np.int64)}


def _describe(policy: BatchPolicy, description: str | None) -> str:
    return description or getattr(policy, "description", None) or type(policy).__qualname__


def _result(
    rewards: list[np.ndarray], terminated: list[bool], seeds: np.ndarray, limit: int, wall: float,
    policy_seconds: float, description: str, env_id: str, mode: str, max_parallel: int,
    ref_scores: tuple[float, float] | None, legacy_running_max: bool, construct_seconds: float,
) -> EvalResult:
    lengths = np.array([len(r) for r in rewards])
    returns = episode_returns(np.concatenate(rewards), np.cumsum(lengths))
    legacy = np.array([running_max_return(r) for r in rewards]) if legacy_running_max else None
    score = None if ref_scores is None else (lambda x: normalized_score(x, *ref_scores))
    return EvalResult(
        returns=returns,
        lengths=lengths,
        seeds=seeds,
        terminated=np.array(terminated),
        max_episode_steps=limit,
        wall_seconds=wall,
        policy_seconds=policy_seconds,
        construct_seconds=construct_seconds,
        policy_description=description,
        env_id=env_id,
        mode=mode,
        max_parallel=max_parallel,
        ref_scores=ref_scores,
        normalized_scores=None if score is None else score(returns),
        legacy_returns=legacy,
        legacy_normalized_scores=None if score is None or legacy is None else score(legacy),
    )


def evaluate(
    policy: BatchPolicy,
    make_env: EnvFactory,
    n_episodes: int,
    seed: int = 0,
    max_episode_steps: int | None = None,
    ref_scores: tuple[float, float] | None = None,
    legacy_running_max: bool = False,
    progress: bool = True,
    max_parallel: int = DEFAULT_MAX_PARALLEL,
    description: str | None = None,
) -> EvalResult:
    """Roll out ``n_episodes`` episodes (episode i reset with seed ``seed + i``), batched.

    Up to ``max_parallel`` episodes run at once in as many envs from ``make_env``; each env step
    makes one ``policy.act`` call for the running envs. An episode ends on the env's termination or
    truncation or after ``max_episode_steps`` steps (default: the env spec's limit). ``ref_scores``
    = (random, expert) returns add normalized scores ×100; ``legacy_running_max`` adds the reference
    code's Σ_t max_{τ≤t} r_τ on the same episodes (docs/algorithm.md §8 item 1; the reference computed it for
    MuJoCo tasks only, its Maze2d runner sums true rewards). Given a deterministic policy whose
    rows do not depend on the batch, the returns equal :func:`evaluate_sequential`'s exactly.
    """
    _check_arguments(n_episodes, seed, ref_scores)
    if not isinstance(max_parallel, (int, np.integer)) or max_parallel < 1:
        raise ValueError(f"max_parallel: expected a positive integer, got {max_parallel!r}")
    n_slots = int(min(n_episodes, max_parallel))
    with EpisodeSlots(make_env, n_slots) as envs:
        first_env = envs.envs[0]
        _check_env(policy, first_env)
        limit = episode_limit(first_env, max_episode_steps)
        seeds = seed + np.arange(n_episodes, dtype=np.int64)
        episode_rewards: list[np.ndarray] = [np.empty(0)] * n_episodes
        episode_terminated = np.zeros(n_episodes, dtype=bool)
        episode_of_slot = np.full(n_slots, -1, dtype=np.int64)
        steps_of_slot = np.zeros(n_slots, dtype=np.int64)
        rewards_of_slot = _RewardRows(n_slots, limit)
        running = np.zeros(n_slots, dtype=bool)
        next_episode = 0
        policy_seconds = 0.0

        def start_episodes(slots: np.ndarray) -> None:
            # reset each slot with the next pending episode's seed, then one batched policy.reset
            nonlocal next_episode, policy_seconds
            episodes = np.arange(next_episode, next_episode + len(slots))
            infos = envs.reset(slots, seeds[episodes])
            episode_of_slot[slots] = episodes
            steps_of_slot[slots] = 0
            running[slots] = True
            next_episode += len(slots)
            t0 = time.perf_counter()
            policy.reset(envs.observations[slots], _reset_infos(infos, seeds[episodes]), slots)
            policy_seconds += time.perf_counter() - t0

        # progress in env steps, out of the steps expected from the episode lengths seen so far
        with progress_bar("evaluating", n_episodes * limit, progress, info=f"0/{n_episodes} episodes") as bar:
            steps = 0
            ended: list[int] = []  # lengths of the episodes that ended, for the expected total
            shown = 0.0
            start = time.perf_counter()
            start_episodes(np.arange(n_slots))
            while True:
                slots = np.flatnonzero(running)
                if not slots.size:
                    break
                t0 = time.perf_counter()
                actions = policy.act(envs.observations[slots], slots)
                policy_seconds += time.perf_counter() - t0
                actions = _checked_actions(actions, len(slots), first_env)
                rewards, terminated, truncated = envs.step(slots, actions)
                rewards_of_slot.put(slots, steps_of_slot[slots], rewards)
                steps_of_slot[slots] += 1
                steps += len(slots)
                end = terminated | truncated | (steps_of_slot[slots] >= limit)
                if end.any():
                    finished = slots[end]
                    episodes = episode_of_slot[finished]
                    episode_terminated[episodes] = terminated[end]
                    for slot, episode, length in zip(finished.tolist(), episodes.tolist(),
                                                     steps_of_slot[finished].tolist(), strict=True):
                        episode_rewards[episode] = rewards_of_slot.row(slot, length)
                        ended.append(length)
                    running[finished] = False
                    refill = finished[: n_episodes - next_episode]
                    if refill.size:
                        start_episodes(refill)
                if progress and (time.perf_counter() - shown > PROGRESS_SECONDS or not running.any()):
                    shown = time.perf_counter()
                    lengths = steps_of_slot[running].tolist()
                    total = expected_steps(ended, lengths, n_episodes - next_episode, limit)
                    bar.update(completed=steps, total=total, info=f"{len(ended)}/{n_episodes} episodes")
            wall = time.perf_counter() - start
    return _result(
        episode_rewards, episode_terminated.tolist(), seeds, limit, wall, policy_seconds,
        _describe(policy, description), env_id(first_env), "vectorized", n_slots,
        ref_scores, legacy_running_max, envs.construct_seconds,
    )


class _RewardRows:
    """Per env slot, the rewards of its running episode: a (slots, columns) float64 array whose columns grow by
    doubling up to the step limit, so a huge `max_episode_steps` costs only the steps taken."""

    def __init__(self, n_slots: int, limit: int):
        self.limit = limit
        self.rows = np.zeros((n_slots, min(limit, 1024)), dtype=np.float64)

    def put(self, slots: np.ndarray, steps: np.ndarray, rewards: np.ndarray) -> None:
        if steps.max() >= self.rows.shape[1]:
            wider = np.zeros((len(self.rows), min(self.limit, 2 * self.rows.shape[1])), dtype=np.float64)
            wider[:, : self.rows.shape[1]] = self.rows
            self.rows = wider
        self.rows[slots, steps] = rewards

    def row(self, slot: int, length: int) -> np.ndarray:
        return self.rows[slot, :length].copy()


def evaluate_sequential(
    policy: BatchPolicy,
    make_env: EnvFactory,
    n_episodes: int,
    seed: int = 0,
    max_episode_steps: int | None = None,
    ref_scores: tuple[float, float] | None = None,
    legacy_running_max: bool = False,
    progress: bool = True,
    description: str | None = None,
) -> EvalResult:
    """The reference's plain loop, with seeds applied: one env, one episode after another, one
    policy call (batch of 1, env index 0) per step. For equivalence tests and throughput comparison."""
    _check_arguments(n_episodes, seed, ref_scores)
    with EpisodeSlots(make_env, 1) as one:
        env = one.envs[0]
        _check_env(policy, env)
        limit = episode_limit(env, max_episode_steps)
        seeds = seed + np.arange(n_episodes, dtype=np.int64)
        index = np.zeros(1, dtype=np.int64)
        episode_rewards, episode_terminated = [], []
        policy_seconds = 0.0
        with progress_bar("evaluating (sequential)", n_episodes, progress) as bar:
            start = time.perf_counter()
            for i in range(n_episodes):
                info = one.reset(index, seeds[i: i + 1])[0]
                obs = one.observations[0]
                t0 = time.perf_counter()
                policy.reset(obs[None], _reset_infos([info], seeds[i: i + 1]), index)
                policy_seconds += time.perf_counter() - t0
                rewards, terminated = [], False
                for _ in range(limit):
                    t0 = time.perf_counter()
                    action = policy.act(obs[None], index)
                    policy_seconds += time.perf_counter() - t0
                    action = _checked_actions(action, 1, env)[0]
                    obs, reward, terminated, truncated, _ = env.step(action)
                    obs = np.asarray(obs)
                    rewards.append(float(reward))
                    if terminated or truncated:
                        break
                episode_rewards.append(np.array(rewards))
                episode_terminated.append(bool(terminated))
                bar.update(advance=1, info=f"{i + 1}/{n_episodes} episodes")
            wall = time.perf_counter() - start
    return _result(
        episode_rewards, episode_terminated, seeds, limit, wall, policy_seconds,
        _describe(policy, description), env_id(env), "sequential", 1, ref_scores, legacy_running_max,
        one.construct_seconds,
    )
