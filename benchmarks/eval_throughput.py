"""Evaluation throughput against the physics bound, side by side in one process (1 torch thread by default).

For each task (default: hopper-medium on Hopper-v5, maze2d-umaze), with `--envs` envs at once:

* **physics bound**: the same envs, built the same way, reset with the same seeds and stepped with random
  actions for exactly the steps the evaluation took (each slot runs its episodes' lengths, refilled as the
  evaluator refills), in a plain Python loop: the cost of the simulation and gymnasium's wrappers alone. The
  physics can cost more or less with other actions (random actions bang the Maze2d ball into walls), so the
  **replayed-action bound** also steps the envs through the very actions the evaluation took.
* **batched evaluation**: `ractd.evaluate.evaluate` with a policy (default: the one-step student planner of
  the task's cpu preset, untrained — the cost does not depend on the weights; `--policy mlp`: a small MLP, so
  the evaluator's own overhead shows). Ratio = its wall time / the random-action bound's (goal ≤ 1.5×);
  "loop overhead" = (wall − policy time) / the replayed-action bound, what the evaluator adds to the physics.
* **sequential**: `evaluate_sequential`, one env and one batch-1 policy call per step, on the first
  `--sequential-episodes` episodes; the context number is batched env steps/s over sequential env steps/s.
* construction: seconds to build the envs (`EvalResult.construct_seconds`, outside `wall_seconds`).

Clock (`--clock`): the process's CPU time by default — with one torch thread every case is a one-core loop, and
CPU time leaves out the time spent waiting for a core on a loaded machine — or wall time.

`--vector-envs` adds gymnasium's `SyncVectorEnv` and `AsyncVectorEnv` (one subprocess per env) stepping the
same number of envs with random actions, against the plain loop (wall time: their subprocesses' CPU time is
not this process's): the measurement behind stepping the envs in-process ourselves.

Each measurement is repeated `--repeats` times alternating, the fastest kept (least disturbed by other load);
the 1-minute load average at the start and the end is printed and written to the JSON.

    .venv/bin/python benchmarks/eval_throughput.py --json /tmp/eval_throughput.json
    .venv/bin/python benchmarks/eval_throughput.py --tasks hopper-medium --policy mlp --vector-envs
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ractd.envs import get_task, make_env
from ractd.evaluate import BatchPolicy, evaluate, evaluate_sequential
from ractd.nn import count_parameters


class MLPPolicy:
    """A plain deterministic torch MLP (ReLU, float32) mapping observations to tanh-squashed actions."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int = 256, layers: int = 2, seed: int = 0):
        torch.manual_seed(seed)
        sizes = [obs_dim] + [hidden] * layers
        modules: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            modules += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*modules, torch.nn.Linear(sizes[-1], act_dim), torch.nn.Tanh()).eval()
        self.description = f"MLP {layers}×{hidden} ({count_parameters(self.net)} parameters)"

    def reset(self, observations: np.ndarray, infos: dict, env_indices: np.ndarray) -> None:
        pass

    @torch.inference_mode()
    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        return self.net(torch.as_tensor(observations, dtype=torch.float32)).numpy()


def planner_policy(task: str, seed: int = 0) -> BatchPolicy:
    """The one-step student planner of `task`'s cpu preset with untrained weights and random normalizers."""
    from ractd.bench import untrained_artifacts
    from ractd.planning import Planner, PlannerPolicy
    from ractd.presets import resolve_config

    cfg = resolve_config(task, "cpu", [])
    art = untrained_artifacts(cfg, seed=seed)["student"]
    policy = PlannerPolicy(Planner(art, "one_step", seed=seed))
    policy.description = f"one-step student planner, {task} cpu preset ({count_parameters(art.net) / 1e6:.2f} M)"
    return policy


class ActionRecorder:
    """Passes a policy through and keeps each episode's actions, by the episode's reset seed."""

    def __init__(self, policy: BatchPolicy):
        self.policy, self.seed_of_slot, self.actions = policy, {}, {}
        self.check_env = getattr(policy, "check_env", lambda env: None)
        self.description = getattr(policy, "description", type(policy).__name__)

    def reset(self, observations: np.ndarray, infos: dict, env_indices: np.ndarray) -> None:
        for seed, slot in zip(infos["episode_seed"].tolist(), np.asarray(env_indices).tolist(), strict=True):
            self.seed_of_slot[slot], self.actions[seed] = seed, []
        self.policy.reset(observations, infos, env_indices)

    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        actions = np.asarray(self.policy.act(observations, env_indices))
        for row, slot in enumerate(np.asarray(env_indices).tolist()):
            self.actions[self.seed_of_slot[slot]].append(actions[row])
        return actions

    def episode_actions(self, seeds: np.ndarray) -> list[np.ndarray]:
        return [np.stack(self.actions[int(s)]) for s in seeds]


class TimedPolicy:
    """Passes a policy through and adds the `clock` time of its reset and act calls to `seconds`."""

    def __init__(self, policy: BatchPolicy, clock: Callable[[], float]):
        self.policy, self.clock, self.seconds = policy, clock, 0.0
        self.check_env = getattr(policy, "check_env", lambda env: None)
        self.description = getattr(policy, "description", type(policy).__name__)

    def reset(self, observations: np.ndarray, infos: dict, env_indices: np.ndarray) -> None:
        start = self.clock()
        self.policy.reset(observations, infos, env_indices)
        self.seconds += self.clock() - start

    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        start = self.clock()
        actions = self.policy.act(observations, env_indices)
        self.seconds += self.clock() - start
        return actions


def random_actions(space: gym.spaces.Box, lengths: np.ndarray, seed: int = 0) -> list[np.ndarray]:
    """Uniform random actions in `space`, lengths[i] of them for episode i."""
    rng = np.random.default_rng(seed)
    return [rng.uniform(space.low, space.high, size=(int(n), *space.shape)).astype(space.dtype) for n in lengths]


def step_episodes(envs: list[gym.Env], seeds: np.ndarray, actions: list[np.ndarray],
                  clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds to run episode i (reset with seeds[i]) through its actions[i], the envs stepped together one
    after another and a slot refilled with the next episode when its episode ends, as `evaluate` schedules them:
    the physics and gymnasium's wrappers alone, no policy and no bookkeeping."""
    n = min(len(envs), len(seeds))
    episode_of_slot = list(range(n))
    t_of_slot = [0] * n
    next_episode = n
    start = clock()
    for slot in range(n):
        envs[slot].reset(seed=int(seeds[slot]))
    running = list(range(n))
    while running:
        still = []
        for slot in running:
            episode = actions[episode_of_slot[slot]]
            envs[slot].step(episode[t_of_slot[slot]])
            t_of_slot[slot] += 1
            if t_of_slot[slot] < len(episode):
                still.append(slot)
            elif next_episode < len(seeds):
                envs[slot].reset(seed=int(seeds[next_episode]))
                episode_of_slot[slot], t_of_slot[slot] = next_episode, 0
                next_episode += 1
                still.append(slot)
        running = still
    return clock() - start


def vector_env_case(make: Callable[[], gym.Env], n_envs: int, rounds: int, console: Console) -> dict[str, Any]:
    """Random-action stepping of `n_envs` envs for `rounds` steps each: plain loop vs gymnasium's vector envs."""
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

    out: dict[str, Any] = {}
    envs = [make() for _ in range(n_envs)]
    space = envs[0].action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(rounds, n_envs, *space.shape))
    actions = actions.astype(space.dtype)
    for i, env in enumerate(envs):
        env.reset(seed=i)
    start = time.perf_counter()
    for t in range(rounds):
        for env, a in zip(envs, actions[t], strict=True):
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
    out["plain loop"] = {"construct_seconds": float("nan"), "wall_seconds": time.perf_counter() - start}
    for env in envs:
        env.close()
    for name, cls in (("gymnasium SyncVectorEnv", SyncVectorEnv), ("gymnasium AsyncVectorEnv", AsyncVectorEnv)):
        start = time.perf_counter()
        vec = cls([make] * n_envs, autoreset_mode=AutoresetMode.SAME_STEP)
        vec.reset(seed=list(range(n_envs)))
        built = time.perf_counter() - start
        start = time.perf_counter()
        for t in range(rounds):
            vec.step(actions[t])
        out[name] = {"construct_seconds": built, "wall_seconds": time.perf_counter() - start}
        vec.close()
    table = Table(title=f"random actions, {n_envs} envs × {rounds} steps: who steps them")
    for col in ("stepping", "construct s", "wall s", "µs / env step", "× plain loop"):
        table.add_column(col, justify="right")
    plain = out["plain loop"]["wall_seconds"]
    for name, r in out.items():
        r["ratio_to_plain_loop"] = r["wall_seconds"] / plain
        table.add_row(name, f"{r['construct_seconds']:.2f}", f"{r['wall_seconds']:.2f}",
                      f"{1e6 * r['wall_seconds'] / (n_envs * rounds):.0f}", f"{r['ratio_to_plain_loop']:.2f}")
    console.print(table)
    return out


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def task_case(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """Batched evaluation, the physics bound and the sequential loop on one task; the fastest of the repeats."""
    spec = get_task(task)
    clock = CLOCKS[args.clock]
    building = {"seconds": 0.0}

    def make() -> gym.Env:
        start = clock()
        env = make_env(spec)
        building["seconds"] += clock() - start
        return env

    inner = planner_policy(task, args.seed) if args.policy == "planner" else MLPPolicy(spec.obs_dim, spec.act_dim)
    episodes = args.episodes
    common = dict(seed=args.seed, max_episode_steps=args.max_steps, progress=False)
    evaluate(inner, make, min(episodes, 4), max_parallel=4, **common)  # warm-up: allocations, kernel selection
    recorder = ActionRecorder(inner)  # an untimed run that records the actions, for the replay bound
    recorded = evaluate(recorder, make, episodes, max_parallel=args.envs, **common)
    replay = recorder.episode_actions(recorded.seeds)
    runs: list[dict[str, float]] = []
    for _ in range(args.repeats):
        policy = TimedPolicy(inner, clock)
        building["seconds"] = 0.0
        start = clock()
        r = evaluate(policy, make, episodes, max_parallel=args.envs, **common)
        total = clock() - start
        if not np.array_equal(r.returns, recorded.returns):
            raise RuntimeError(f"{task}: repeated seeded evaluations gave different returns")
        run = {"construct_seconds": building["seconds"], "seconds": total - building["seconds"],
               "policy_seconds": policy.seconds, "wall_seconds": r.wall_seconds,
               "reported_construct_seconds": float(getattr(r, "construct_seconds", float("nan")))}
        envs = [make_env(spec) for _ in range(min(args.envs, episodes))]
        run["random_bound_seconds"] = step_episodes(envs, r.seeds, random_actions(envs[0].action_space, r.lengths,
                                                                                   args.seed), clock)
        run["replay_bound_seconds"] = step_episodes(envs, r.seeds, replay, clock)
        for env in envs:
            env.close()
        runs.append(run)
    best = {key: min(run[key] for run in runs) for key in runs[0]}
    k = min(args.sequential_episodes, episodes)
    building["seconds"] = 0.0
    start = clock()
    seq = evaluate_sequential(inner, make, k, **common)
    seq_seconds = clock() - start - building["seconds"]
    batched_per_step = best["seconds"] / recorded.env_steps
    return {
        "task": task, "env_id": recorded.env_id, "policy": recorded.policy_description, "envs": args.envs,
        "episodes": episodes, "env_steps": recorded.env_steps, "mean_length": float(recorded.lengths.mean()),
        "clock": args.clock, **best,
        "physics_bound_ratio": best["seconds"] / best["random_bound_seconds"],
        "replay_bound_ratio": best["seconds"] / best["replay_bound_seconds"],
        "loop_overhead_ratio": (best["seconds"] - best["policy_seconds"]) / best["replay_bound_seconds"],
        "sequential_episodes": k, "sequential_env_steps": seq.env_steps, "sequential_seconds": seq_seconds,
        "sequential_over_batched_per_step": (seq_seconds / seq.env_steps) / batched_per_step,
        "sequential_returns_equal_batched": bool(np.array_equal(seq.returns, recorded.returns[:k])),
        "returns": [float(v) for v in recorded.returns],
    }


def load_average() -> float:
    return os.getloadavg()[0]


def report(cases: list[dict[str, Any]], console: Console, title: str) -> None:
    table = Table(title=title)
    for col in ("task", "env steps", "build s", "random-action bound s", "replayed-action bound s", "batched s",
                "policy s", "batched / bound", "batched / replayed", "loop overhead", "seq / batched per step"):
        table.add_column(col, justify="right")
    for c in cases:
        table.add_row(c["task"], f"{c['env_steps']:,}", f"{c['construct_seconds']:.2f}",
                      f"{c['random_bound_seconds']:.2f}", f"{c['replay_bound_seconds']:.2f}", f"{c['seconds']:.2f}",
                      f"{c['policy_seconds']:.2f}",
                      f"{c['physics_bound_ratio']:.2f}×", f"{c['replay_bound_ratio']:.2f}×",
                      f"{c['loop_overhead_ratio']:.2f}×", f"{c['sequential_over_batched_per_step']:.1f}×")
    console.print(table)
    for c in cases:
        verdict = "meets" if c["physics_bound_ratio"] <= 1.5 else "misses"
        console.print(f"{c['task']} ({c['env_id']}, {c['policy']}): batched evaluation / physics bound = "
                      f"{c['physics_bound_ratio']:.2f}× ({verdict} the goal ≤ 1.5×; policy "
                      f"{100 * c['policy_seconds'] / c['seconds']:.0f}% of it, the evaluator's loop "
                      f"{c['loop_overhead_ratio']:.2f}× the bound); sequential / batched per env step "
                      f"{c['sequential_over_batched_per_step']:.1f}×; building {c['envs']} envs "
                      f"{c['construct_seconds']:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["hopper-medium", "maze2d-umaze"])
    p.add_argument("--envs", type=int, default=100, help="envs at once (max_parallel)")
    p.add_argument("--episodes", type=int, default=500,
                   help="episodes per task (untrained planners' Hopper episodes end after ~30 steps; slots refill)")
    p.add_argument("--max-steps", type=int, default=None, help="step limit per episode (default: the task's)")
    p.add_argument("--policy", choices=["planner", "mlp"], default="planner",
                   help="planner: the cpu preset's one-step student planner (untrained); mlp: a small MLP")
    p.add_argument("--sequential-episodes", type=int, default=10, help="episodes of the sequential loop")
    p.add_argument("--repeats", type=int, default=2, help="alternate runs per measurement; the fastest counts")
    p.add_argument("--vector-envs", action="store_true",
                   help="also time gymnasium's SyncVectorEnv and AsyncVectorEnv against the plain loop")
    p.add_argument("--vector-rounds", type=int, default=100, help="steps per env of the vector-env case")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: the process's CPU time (one thread: leaves out waiting for a core on a loaded machine); "
                        "wall: elapsed time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 150))
    load_start = load_average()
    cases = [task_case(task, args) for task in args.tasks]
    vector = {}
    if args.vector_envs:
        for task in args.tasks:
            spec = get_task(task)
            vector[task] = vector_env_case(lambda spec=spec: make_env(spec), args.envs, args.vector_rounds, console)
    load_end = load_average()
    report(cases, console, f"{args.envs} envs per task, {args.clock} seconds, torch threads {torch.get_num_threads()}, "
                           f"best of {args.repeats}, load average {load_start:.2f} → {load_end:.2f}")
    if args.json:
        from ractd.io import write_json

        write_json(args.json, {"envs": args.envs, "policy": args.policy, "torch_threads": torch.get_num_threads(),
                               "repeats": args.repeats, "clock": args.clock, "load_average": [load_start, load_end],
                               "goal_physics_bound_ratio": 1.5, "tasks": cases, "vector_envs": vector})


if __name__ == "__main__":
    main()
