"""Roundabout diffusion-planner evaluation speed on one core: episodes one at a time against episodes in lockstep.

The planner replans at every step through all T denoising steps, so an evaluation is mostly network calls. Stepping
B episodes together makes one call of B rows (2B with guidance) per denoising step instead of B calls of one row.
Both variants drive the same seeded episodes; the actions must agree (each episode draws its noise from its own
generator), and the script says so.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/roundabout_planner.py RUN [--episodes 20] [--batch 20]

RUN is a trained `ooc-roundabout` run folder (`ractd train teacher --task ooc-roundabout`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ractd.data.generate import roundabout as rb
from ractd.planning.driving import load_driver


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--traffic", default="mixed")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    driver = load_driver(args.run)
    seeds = rb.episode_seeds(args.seed, 0, args.episodes)
    rows = {}
    for batch in (1, args.batch):
        start = time.perf_counter()
        episodes = rb.run_episodes(driver, args.traffic, seeds, batch=batch)
        rows[batch] = (time.perf_counter() - start, episodes)
    same = all(np.array_equal(a.actions, b.actions) for a, b in zip(rows[1][1], rows[args.batch][1], strict=True))
    steps = sum(e.length for e in rows[1][1])
    print(f"{driver.describe()}; traffic={args.traffic}, {args.episodes} episodes, {steps} steps, one process")
    print(f"  {'episodes together':>18} | {'seconds':>8} | {'steps/s':>8}")
    for batch, (seconds, _) in rows.items():
        print(f"  {batch:>18} | {seconds:8.1f} | {steps / seconds:8.2f}")
    print(f"  lockstep speed-up: {rows[1][0] / rows[args.batch][0]:.1f}x; same actions: {same}")


if __name__ == "__main__":
    main()
