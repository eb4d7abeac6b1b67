"""Roundabout environment steps per second on one core: the stock code path against the fast one, in one run.

Three variants run the same seeded episodes with the same random actions, interleaved episode by episode (so a
load change on a shared machine hits all alike):

* `roundabout-v0`: highway-env's own environment, unmodified (car traffic, 5 x 5 observation);
* `stock`: ractd's roundabout with `fast=False` (highway-env's per-lane closest-lane search in Python for every
  vehicle at every simulation frame, and its pandas observation);
* `fast`: the default (one vectorized closest-lane query for all vehicles per frame, observation without pandas).

Prints steps/s per variant and the fast/stock ratio; `--profile` adds the top functions of each path.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/roundabout_env.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/roundabout_env.py --traffic bicycle --episodes 40 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import numpy as np

from ractd.envs.roundabout import TRAFFIC_OPTIONS, make_roundabout_env


def episode(env, seed: int, actions: np.ndarray) -> int:
    """Run one episode (reset not counted in the steps, but timed by the caller); return the steps taken."""
    env.reset(seed=seed)
    for step, action in enumerate(actions, start=1):
        _, _, terminated, truncated, _ = env.step(int(action))
        if terminated or truncated:
            return step
    return len(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traffic", default="mixed", choices=list(TRAFFIC_OPTIONS))
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also print the 12 costliest functions per path")
    args = parser.parse_args()

    import gymnasium as gym
    import highway_env  # noqa: F401  (registers roundabout-v0)

    envs = {
        "roundabout-v0": gym.make("roundabout-v0"),
        "stock": make_roundabout_env(traffic=args.traffic, fast=False),
        "fast": make_roundabout_env(traffic=args.traffic),
    }
    rng = np.random.default_rng(args.seed)
    seconds = dict.fromkeys(envs, 0.0)
    steps = dict.fromkeys(envs, 0)
    for i in range(args.episodes):
        actions = rng.integers(0, 5, 11)
        for name, env in envs.items():
            start = time.perf_counter()
            steps[name] += episode(env, args.seed + i, actions)
            seconds[name] += time.perf_counter() - start
    rate = {name: steps[name] / seconds[name] for name in envs}
    print(f"traffic={args.traffic}, {args.episodes} episodes, random actions, one process (resets included)")
    for name in envs:
        print(f"  {name:>14}: {rate[name]:7.1f} steps/s  ({steps[name]} steps in {seconds[name]:.1f} s)")
    print(f"  fast / stock: {rate['fast'] / rate['stock']:.2f}x   fast / roundabout-v0: "
          f"{rate['fast'] / rate['roundabout-v0']:.2f}x")

    if args.profile:
        for name in ("stock", "fast"):
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(min(args.episodes, 10)):
                episode(envs[name], args.seed + i, rng.integers(0, 5, 11))
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
            print(f"\n--- {name}: costliest functions (own time) ---")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:4000])


if __name__ == "__main__":
    main()
