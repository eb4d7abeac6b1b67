"""MuJoCo locomotion tasks (hopper, walker2d, halfcheetah) on gymnasium's v5 environments.

D4RL's v2 datasets were recorded on gym's v3 MuJoCo envs (mujoco-py); gymnasium's v5 envs have the
same observation and action layouts (hopper 11/3, walker2d 17/6, halfcheetah 17/6), the same reward
terms and 1000-step episodes. Normalized scores use D4RL's v2 reference returns (random policy /
expert policy, `d4rl/infos.py`).
"""

from __future__ import annotations

ROBOTS: tuple[str, ...] = ("hopper", "walker2d", "halfcheetah")
DATASET_LEVELS: tuple[str, ...] = ("random", "medium", "medium-replay", "expert", "medium-expert")

GYM_IDS: dict[str, str] = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5"}
OBS_DIM: dict[str, int] = {"hopper": 11, "walker2d": 17, "halfcheetah": 17}
ACT_DIM: dict[str, int] = {"hopper": 3, "walker2d": 6, "halfcheetah": 6}
MAX_EPISODE_STEPS = 1000

# D4RL v2 reference returns for the normalized score 100 * (R - min) / (max - min).
REF_MIN_SCORE: dict[str, float] = {"hopper": -20.272305, "walker2d": 1.629008, "halfcheetah": -280.178953}
REF_MAX_SCORE: dict[str, float] = {"hopper": 3234.3, "walker2d": 4592.3, "halfcheetah": 12135.0}
