"""Evaluation throughput: batched `evaluate` vs the reference's one-env sequential loop.

Both run the same deterministic torch MLP policy on the same seeded Hopper-v5 episodes, side by
side in one process (goal: ≥ 25× for 100 episodes). Both modes step the MuJoCo envs one
after another in this process, so batching removes policy calls, not physics: once the policy cost
is amortized, the batched run costs about Σ env steps, and the ratio is roughly
(policy call at batch 1 + env step) / env step. The table splits each run into policy time and
env+loop time so this is visible. `compare_throughput` works for any `BatchPolicy` (e.g. a planner).

    .venv/bin/python benchmarks/eval_throughput.py --episodes 100 --max-steps 1000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ractd.evaluate import BatchPolicy, EnvFactory, EvalResult, evaluate, evaluate_sequential
from ractd.nn import count_parameters


class MLPPolicy:
    """A plain deterministic torch MLP (ReLU, float32) mapping observations to tanh-squashed actions."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int, seed: int):
        torch.manual_seed(seed)
        sizes = [obs_dim] + [hidden] * layers
        modules: list[torch.nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            modules += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*modules, torch.nn.Linear(sizes[-1], act_dim), torch.nn.Tanh()).eval()
        n_params = count_parameters(self.net)
        self.description = f"MLP {layers}×{hidden} ({n_params} parameters)"
        self.obs_dim = obs_dim

    def reset(self, observations: np.ndarray, infos: dict, env_indices: np.ndarray) -> None:
        pass

    @torch.inference_mode()
    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        return self.net(torch.as_tensor(observations, dtype=torch.float32)).numpy()


class UnetStandInPolicy:
    """Costs what a one-step student planner costs: one ConditionalUnet1D forward (two time inputs,
    observation conditioning) on an H-step action sequence, returning its first action. Starts from
    zeros rather than noise, so it is deterministic; the cost is the same."""

    def __init__(self, obs_dim: int, act_dim: int, down_dims: list[int], horizon: int, seed: int):
        from ractd.nn.unet import ConditionalUnet1D

        torch.manual_seed(seed)
        self.net = ConditionalUnet1D(act_dim, global_cond_dim=obs_dim, down_dims=down_dims, n_time_inputs=2)
        self.net.eval()
        self.horizon, self.act_dim = horizon, act_dim
        self.t, self.s = torch.tensor(80.0), torch.tensor(0.002)
        n_params = count_parameters(self.net)
        self.description = f"one-step U-Net stand-in {down_dims}, H={horizon} ({n_params / 1e6:.1f} M params)"

    def reset(self, observations: np.ndarray, infos: dict, env_indices: np.ndarray) -> None:
        pass

    @torch.inference_mode()
    def act(self, observations: np.ndarray, env_indices: np.ndarray) -> np.ndarray:
        cond = torch.as_tensor(observations, dtype=torch.float32)
        x = torch.zeros(len(cond), self.horizon, self.act_dim)
        return torch.tanh(self.net(x, self.t, self.s, cond)[:, 0]).numpy()


def compare_throughput(
    policy: BatchPolicy, make_env: EnvFactory, n_episodes: int, max_episode_steps: int | None,
    seed: int = 0, repeats: int = 1,
) -> tuple[EvalResult, EvalResult]:
    """Run the batched and the sequential evaluation ``repeats`` times, alternating; keep the fastest
    run of each (the least disturbed by other load on the machine)."""
    runs: dict[str, list[EvalResult]] = {"vectorized": [], "sequential": []}
    common = dict(n_episodes=n_episodes, seed=seed, max_episode_steps=max_episode_steps, progress=False)
    for _ in range(repeats):
        runs["vectorized"].append(evaluate(policy, make_env, max_parallel=n_episodes, **common))
        runs["sequential"].append(evaluate_sequential(policy, make_env, **common))
    best = {mode: min(rs, key=lambda r: r.wall_seconds) for mode, rs in runs.items()}
    return best["vectorized"], best["sequential"]


def report(vec: EvalResult, seq: EvalResult, title: str, console: Console) -> dict[str, float]:
    """Print the side-by-side table and the ratio; return the headline numbers."""
    table = Table(title=title)
    for name in ["mode", "episodes", "env steps", "policy calls", "wall s", "policy µs/step",
                 "env+loop µs/step", "env steps/s", "mean return"]:
        table.add_column(name, justify="right")
    for r in (vec, seq):
        calls = int(r.lengths.max()) if r.mode == "vectorized" else r.env_steps
        table.add_row(
            r.mode, str(r.n_episodes), str(r.env_steps), str(calls), f"{r.wall_seconds:.2f}",
            f"{1e6 * r.policy_seconds / r.env_steps:.0f}",
            f"{1e6 * (r.wall_seconds - r.policy_seconds) / r.env_steps:.0f}",
            f"{r.steps_per_second:,.0f}", f"{r.returns.mean():.1f}",
        )
    console.print(table)
    numbers = {
        "wall_ratio": seq.wall_seconds / vec.wall_seconds,
        "steps_per_second_ratio": vec.steps_per_second / seq.steps_per_second,
        "max_abs_return_difference": float(np.abs(vec.returns - seq.returns).max()),
    }
    console.print(
        f"speed-up: {numbers['wall_ratio']:.1f}× wall time for the {vec.n_episodes} episodes, "
        f"{numbers['steps_per_second_ratio']:.1f}× env steps/s (goal ≥ 25×)\n"
        f"max |Δ return| between the modes: {numbers['max_abs_return_difference']:.3g} "
        "(a float32 matmul rounds differently at batch 1 and at batch n)"
    )
    return numbers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--max-steps", type=int, default=1000, help="step limit per episode")
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--policy", choices=["mlp", "unet"], default="mlp",
                   help="mlp: a small MLP; unet: a stand-in with the cost of a one-step student planner")
    p.add_argument("--hidden", type=int, default=256, help="MLP width")
    p.add_argument("--layers", type=int, default=2, help="MLP hidden layers")
    p.add_argument("--down-dims", type=int, nargs="+", default=[64, 128, 256],
                   help="U-Net channels per level")
    p.add_argument("--horizon", type=int, default=16, help="U-Net sequence length")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="alternate runs per mode; the fastest counts")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: both modes are one-core loops; 0: torch's default)")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    def make_env() -> gym.Env:
        return gym.make(args.env)

    probe = make_env()
    obs_dim, act_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
    probe.close()
    policy: MLPPolicy | UnetStandInPolicy
    if args.policy == "mlp":
        policy = MLPPolicy(obs_dim, act_dim, args.hidden, args.layers, args.seed)
    else:
        policy = UnetStandInPolicy(obs_dim, act_dim, args.down_dims, args.horizon, args.seed)
    for batch in (1, args.episodes):  # warm-up (allocations, kernel selection) outside the timing
        for _ in range(10):
            policy.act(np.zeros((batch, obs_dim)), np.arange(batch))
    vec, seq = compare_throughput(policy, make_env, args.episodes, args.max_steps, args.seed, args.repeats)
    title = (f"{args.episodes} {args.env} episodes, {policy.description}, "
             f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    numbers = report(vec, seq, title, Console())
    if args.json:
        from ractd.io import write_json

        write_json(args.json, {
            "env": args.env, "episodes": args.episodes, "max_steps": args.max_steps,
            "policy": policy.description, "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
            **numbers, "vectorized": vec.to_dict(), "sequential": seq.to_dict(),
        })


if __name__ == "__main__":
    main()
