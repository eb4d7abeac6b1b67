"""ractd: Reward-Aware Consistency Trajectory Distillation for fast diffusion planning in offline RL."""

__version__ = "0.1.0"
