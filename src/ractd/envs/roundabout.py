"""The out-of-combination roundabout: a highway-env `roundabout-v0` with car, bicycle or mixed traffic.

This module is light: it names the environment and re-exports the traffic options, the observation layout and
the composition extraction r(o) (`ractd.envs.roundabout_traffic`, pure functions). The simulation itself
(`ractd.envs.roundabout_env`) needs the optional `highway-env` package (`pip install 'ractd[ooc]'`) and is
imported only when an environment is made. See docs/roundabout.md.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from ractd.envs.roundabout_traffic import (
    BICYCLE,
    CAR,
    COMPOSITION_CLASSES,
    EGO,
    NULL,
    OBS_FEATURES,
    OBS_ROWS,
    PRESENCE,
    TRAFFIC_OPTIONS,
    TYPE,
    VEHICLE_TYPES,
    check_traffic,
    composition_tokens,
)

ENV_ID = "ractd/Roundabout-OOC-v0"
INSTALL_HINT = "pip install 'ractd[ooc]'  (or: pip install highway-env)"

__all__ = [
    "BICYCLE",
    "CAR",
    "COMPOSITION_CLASSES",
    "EGO",
    "ENV_ID",
    "NULL",
    "OBS_FEATURES",
    "OBS_ROWS",
    "PRESENCE",
    "TRAFFIC_OPTIONS",
    "TYPE",
    "VEHICLE_TYPES",
    "MissingHighwayEnvError",
    "check_traffic",
    "composition_tokens",
    "make_roundabout_env",
    "register_roundabout_env",
    "require_highway_env",
]


class MissingHighwayEnvError(ImportError):
    """highway-env (the optional `ooc` extra) is not installed."""


def require_highway_env() -> None:
    """Raise MissingHighwayEnvError, naming the extra to install, unless `highway_env` can be imported."""
    try:
        importlib.import_module("highway_env")
    except ImportError as err:
        raise MissingHighwayEnvError(
            f"the roundabout environment needs highway-env ({err}); install it with: {INSTALL_HINT}"
        ) from None


def make_roundabout_env(
    traffic: str = "mixed", config: dict[str, Any] | None = None, render_mode: str | None = None, **knobs: Any
) -> gym.Env:
    """Build the environment (the gymnasium entry point of ENV_ID).

    `traffic` is one of TRAFFIC_OPTIONS; `knobs` are further environment config keys (car_speed, bicycle_speed,
    bicycle_advance_m, fast, or any highway-env roundabout key such as simulation_frequency); `config` is merged
    first, so `knobs` win.
    """
    check_traffic(traffic)
    require_highway_env()
    from ractd.envs.roundabout_env import RoundaboutOOCEnv

    return RoundaboutOOCEnv(config={**(config or {}), **knobs, "traffic": traffic}, render_mode=render_mode)


def register_roundabout_env() -> None:
    """Register ENV_ID with gymnasium (once per process); highway-env is needed only when it is made."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=make_roundabout_env)


register_roundabout_env()
