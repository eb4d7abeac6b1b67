"""ractd: Reward-Aware Consistency Trajectory Distillation for fast diffusion planning in offline RL.

    import ractd

    cfg = ractd.task_config("hopper-medium-replay", size="cpu")
    pipeline = ractd.Pipeline(cfg, runs="runs")
    pipeline.fit("teacher"); pipeline.fit("reward"); pipeline.fit("student")
    planner = pipeline.planner("student")

`import ractd` stays light (no torch): the names below and the subpackages load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

try:  # gymnasium-robotics prints a notice about its Adroit envs (unused here) on every import; drop just that one
    import farama_notifications

    farama_notifications.notifications.pop("gymnasium_robotics", None)
except ImportError:  # pragma: no cover
    pass

# name -> the module that defines it, imported when the name is first used
_LAZY = {
    "task_config": "ractd.api",
    "Pipeline": "ractd.api",
    "PipelineConfig": "ractd.api",
    "load_planner": "ractd.planning",
    "Planner": "ractd.planning",
    "load_artifact": "ractd.artifact",
}
_SUBPACKAGES = ("api", "data", "diffusion", "envs", "evaluate", "planning", "presets", "stages", "train")

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})
