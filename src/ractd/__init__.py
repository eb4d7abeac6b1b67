"""ractd: Reward-Aware Consistency Trajectory Distillation for fast diffusion planning in offline RL."""

__version__ = "0.1.0"

try:  # gymnasium-robotics prints a notice about its Adroit envs (unused here) on every import; drop just that one
    import farama_notifications

    farama_notifications.notifications.pop("gymnasium_robotics", None)
except ImportError:  # pragma: no cover
    pass
