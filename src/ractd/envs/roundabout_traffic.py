"""The roundabout's traffic options, its observation layout and the composition extraction r(o).

Pure (numpy only, no highway-env): the data and planning code read observations with these names without
needing the simulator. See docs/roundabout.md.
"""

from __future__ import annotations

import numpy as np

# Vehicle-type feature of an observation row: 0 for a car (the ego is a car), 1 for a bicycle.
VEHICLE_TYPES: dict[str, int] = {"car": 0, "bicycle": 1}
# Observation: up to 5 vehicles (ego first), each row (presence, x, y, vx, vy, type).
OBS_FEATURES: tuple[str, ...] = ("presence", "x", "y", "vx", "vy", "type")
OBS_ROWS = 5
PRESENCE, TYPE = OBS_FEATURES.index("presence"), OBS_FEATURES.index("type")
# One categorical per observation row: absent, the ego itself, a car, a bicycle.
COMPOSITION_CLASSES: tuple[str, ...] = ("null", "ego", "car", "bicycle")
NULL, EGO, CAR, BICYCLE = range(len(COMPOSITION_CLASSES))

# Traffic of the four environment vehicles (incoming inner-ring, two outer-ring, entering from the east).
TRAFFIC_OPTIONS: dict[str, str] = {
    "car": "all four are cars (training combination 1)",
    "bicycle": "all four are bicycles (training combination 2)",
    "train": "all-car or all-bicycle, each with probability 1/2 per episode (the training mixture)",
    "mixed": "each vehicle a car or a bicycle with probability 1/2, redrawn until both kinds are present",
    "test-1": "the incoming inner-ring vehicle is a bicycle, the other three are cars",
    "test-2": "the incoming inner-ring vehicle is a car, the other three are bicycles",
    "bicycles-1": "exactly 1 bicycle among the four, its slot drawn uniformly",
    "bicycles-2": "exactly 2 bicycles among the four, their slots drawn uniformly",
    "bicycles-3": "exactly 3 bicycles among the four, their slots drawn uniformly",
}


def check_traffic(traffic: str) -> str:
    """Return `traffic` if it names a traffic option, else raise a ValueError listing them."""
    if traffic not in TRAFFIC_OPTIONS:
        raise ValueError(f"unknown roundabout traffic {traffic!r}; choose one of: {', '.join(TRAFFIC_OPTIONS)}")
    return traffic


def composition_tokens(obs: np.ndarray) -> np.ndarray:
    """r(o): one class id from COMPOSITION_CLASSES per observation row, read from presence and the type feature.

    `obs` has shape (..., rows, 6) or (..., rows * 6) with rows = OBS_ROWS; returns int64 (..., rows).
    Absent rows (presence 0) are null; a present first row is the ego; other present rows are bicycles where
    the type feature is 1 and cars where it is 0.
    """
    obs = np.asarray(obs)
    n_feat = len(OBS_FEATURES)
    if obs.ndim >= 1 and obs.shape[-1] == OBS_ROWS * n_feat:  # flattened rows, e.g. from an MLP policy's input
        obs = obs.reshape(*obs.shape[:-1], OBS_ROWS, n_feat)
    if obs.ndim < 2 or obs.shape[-1] != n_feat:
        raise ValueError(
            f"composition_tokens expects observations of shape (..., rows, {n_feat}) or (..., {OBS_ROWS * n_feat}), "
            f"got {obs.shape}"
        )
    present = obs[..., PRESENCE] > 0.5
    tokens = np.where(obs[..., TYPE] > 0.5, BICYCLE, CAR)
    tokens[..., 0] = EGO
    return np.where(present, tokens, NULL).astype(np.int64)
