"""Maze2d with the D4RL protocol, simulated by gymnasium-robotics' point maze (docs/algorithm.md §1.1, §6.2).

D4RL's `maze2d-*` tasks (Fu et al. 2020, `d4rl/pointmaze/maze_model.py`) and gymnasium-robotics'
`PointMaze` share the point-mass physics (timestep 0.01 s, one MuJoCo step per env step, Euler
integrator, joint damping 1, motor gear 100, actions clipped to [-1, 1], velocities clipped to
[-5, 5] before each step, ball radius 0.1, unit cells) but not the frame or the protocol. `Maze2dEnv`
runs the gymnasium-robotics simulation and presents D4RL's:

* **Frame.** D4RL's x is the maze *row* and y the *column*. Its ball body sits at (1.2, 1.2) while
  the wall of cell (i, j) is centred at (i + 1, j + 1), so the free cell (i, j) spans
  x in [i - 0.7, i + 0.3], y in [j - 0.7, j + 0.3]: the cell centre is at qpos (i - 0.2, j - 0.2)
  and integer qpos (i, j), where D4RL resets the ball and places its goal, is 0.2 off-centre.
  gymnasium-robotics centres the maze and rotates it: gym x = col + 0.5 - W/2,
  gym y = H/2 - row - 0.5, for continuous cell coordinates (row, col) = D4RL (x, y) + 0.2.
  Positions, velocities and actions are converted (`MazeFrame`).
* **Protocol.** One fixed goal, the map's 'G' cell (D4RL's `env._target`, integer coordinates, no
  noise); sparse reward 1 within 0.5 of it (gymnasium-robotics: 0.45); reset to a uniformly random
  free cell (the goal cell included) with position noise U(-0.1, 0.1) and velocity noise N(0, 0.1²)
  (gymnasium-robotics: U(-0.25, 0.25), zero velocity, never near the goal); never terminates;
  300 / 600 / 800 steps for umaze / medium / large (a `TimeLimit` added by the task registry).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# The three D4RL maps, row by row as in `d4rl/pointmaze/maze_model.py` ('#' wall, 'O' free, 'G' goal).
U_MAZE: tuple[str, ...] = (
    "#####",
    "#GOO#",
    "###O#",
    "#OOO#",
    "#####",
)
MEDIUM_MAZE: tuple[str, ...] = (
    "########",
    "#OO##OO#",
    "#OO#OOO#",
    "##OOO###",
    "#OO#OOO#",
    "#O#OO#O#",
    "#OOO#OG#",
    "########",
)
LARGE_MAZE: tuple[str, ...] = (
    "############",
    "#OOOO#OOOOO#",
    "#O##O#O#O#O#",
    "#OOOOOO#OOO#",
    "#O####O###O#",
    "#OO#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#OOO#OGO#",
    "############",
)
MAZES: dict[str, tuple[str, ...]] = {"umaze": U_MAZE, "medium": MEDIUM_MAZE, "large": LARGE_MAZE}

# D4RL registrations (`d4rl/pointmaze/__init__.py`, maze2d-*-v1): episode length and the reference
# returns of a random policy and of the expert planner, used for the normalized score.
MAX_EPISODE_STEPS: dict[str, int] = {"umaze": 300, "medium": 600, "large": 800}
REF_MIN_SCORE: dict[str, float] = {"umaze": 23.85, "medium": 13.13, "large": 6.7}
REF_MAX_SCORE: dict[str, float] = {"umaze": 161.86, "medium": 277.39, "large": 273.99}

GOAL_RADIUS = 0.5  # D4RL sparse reward: 1 if ||xy - goal|| <= 0.5
RESET_POSITION_NOISE = 0.1  # D4RL reset: qpos = cell + U(-0.1, 0.1)
RESET_VELOCITY_STD = 0.1  # D4RL reset: qvel = N(0, 0.1^2)
D4RL_CELL_OFFSET = 0.2  # D4RL's ball body sits 0.2 past the wall grid: cell centre = integer qpos - 0.2


@dataclass(frozen=True)
class Maze:
    """A parsed maze map: wall mask (rows x cols), the goal cell 'G', the free cells in row-major order."""

    rows: tuple[str, ...]
    walls: np.ndarray
    goal_cell: tuple[int, int]
    free_cells: tuple[tuple[int, int], ...]

    @property
    def height(self) -> int:
        return self.walls.shape[0]

    @property
    def width(self) -> int:
        return self.walls.shape[1]

    def is_free(self, cell: tuple[int, int]) -> bool:
        """True if `cell` = (row, col) lies inside the map and is not a wall."""
        r, c = cell
        return 0 <= r < self.height and 0 <= c < self.width and not self.walls[r, c]

    def cell_of(self, xy: np.ndarray) -> tuple[int, int]:
        """The cell holding D4RL position `xy`: cell (i, j) spans [i - 0.7, i + 0.3) x [j - 0.7, j + 0.3)."""
        r, c = np.floor(np.asarray(xy, dtype=np.float64)[:2] + D4RL_CELL_OFFSET + 0.5).astype(int)
        return int(r), int(c)

    def cells_of(self, xy: np.ndarray) -> np.ndarray:
        """`cell_of` for many positions: (..., >=2) D4RL positions -> (..., 2) int64 (row, col) cells."""
        xy = np.asarray(xy, dtype=np.float64)[..., :2]
        return np.floor(xy + D4RL_CELL_OFFSET + 0.5).astype(np.int64)

    def free_at(self, xy: np.ndarray) -> np.ndarray:
        """(...,) bool: the position lies in a free cell of the map (False on walls and outside the map)."""
        cells = self.cells_of(xy)
        r, c = cells[..., 0], cells[..., 1]
        inside = (r >= 0) & (r < self.height) & (c >= 0) & (c < self.width)
        free = np.zeros(r.shape, dtype=bool)
        free[inside] = ~self.walls[r[inside], c[inside]]
        return free

    def gymnasium_map(self) -> list[list[int]]:
        """The map in gymnasium-robotics' encoding (1 wall, 0 free); the goal is passed separately."""
        return [[int(w) for w in row] for row in self.walls]


def parse_maze(rows: Sequence[str] | str) -> Maze:
    """Parse a D4RL maze (rows of '#', 'O'/' '/'0' and exactly one 'G'), or the name umaze|medium|large."""
    if isinstance(rows, str):
        if rows not in MAZES:
            raise ValueError(f"unknown maze {rows!r}: expected one of {sorted(MAZES)} or a list of map rows")
        rows = MAZES[rows]
    rows = tuple(rows)
    if not rows or len({len(r) for r in rows}) != 1:
        raise ValueError(f"maze map must be a non-empty list of equally long rows, got {rows!r}")
    allowed = set("#OG 0")
    bad = {ch for r in rows for ch in r} - allowed
    if bad:
        raise ValueError(
            f"maze map has unknown tiles {sorted(bad)}: expected '#' (wall), 'O' (free), 'G' (goal)"
        )
    goals = [(i, j) for i, r in enumerate(rows) for j, ch in enumerate(r) if ch == "G"]
    if len(goals) != 1:
        raise ValueError(f"maze map must mark exactly one goal cell 'G', found {len(goals)}")
    walls = np.array([[ch == "#" for ch in r] for r in rows], dtype=bool)
    free = tuple((i, j) for i in range(walls.shape[0]) for j in range(walls.shape[1]) if not walls[i, j])
    return Maze(rows=rows, walls=walls, goal_cell=goals[0], free_cells=free)


def shortest_path(maze: Maze, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
    """Breadth-first search over free cells (4-neighbourhood): the cells after `start` up to `goal`."""
    if not maze.is_free(start) or not maze.is_free(goal):
        raise ValueError(f"shortest_path: start {start} and goal {goal} must be free cells of the maze")
    parent: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            break
        r, c = cell
        for nxt in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if nxt not in parent and maze.is_free(nxt):
                parent[nxt] = cell
                queue.append(nxt)
    if goal not in parent:
        raise ValueError(f"shortest_path: goal {goal} is not reachable from {start}")
    path = []
    cell: tuple[int, int] | None = goal
    while cell is not None and cell != start:
        path.append(cell)
        cell = parent[cell]
    return path[::-1]


@dataclass(frozen=True)
class MazeFrame:
    """Conversions between D4RL coordinates and gymnasium-robotics' centred, rotated ones for an H x W map."""

    height: int
    width: int

    def position_to_gym(self, xy: np.ndarray) -> np.ndarray:
        """D4RL (x = row, y = col, offset 0.2) -> gym (x = col + 0.5 - W/2, y = H/2 - row - 0.5)."""
        xy = np.asarray(xy, dtype=np.float64)
        row, col = xy[..., 0] + D4RL_CELL_OFFSET, xy[..., 1] + D4RL_CELL_OFFSET
        return np.stack([col + 0.5 - self.width / 2, self.height / 2 - row - 0.5], axis=-1)

    def position_from_gym(self, xy: np.ndarray) -> np.ndarray:
        """Inverse of `position_to_gym`."""
        xy = np.asarray(xy, dtype=np.float64)
        col, row = xy[..., 0] - 0.5 + self.width / 2, self.height / 2 - 0.5 - xy[..., 1]
        return np.stack([row - D4RL_CELL_OFFSET, col - D4RL_CELL_OFFSET], axis=-1)

    @staticmethod
    def vector_to_gym(v: np.ndarray) -> np.ndarray:
        """A velocity or force (d row, d col) -> gym (d x, d y) = (d col, -d row)."""
        v = np.asarray(v, dtype=np.float64)
        return np.stack([v[..., 1], -v[..., 0]], axis=-1)

    @staticmethod
    def vector_from_gym(v: np.ndarray) -> np.ndarray:
        """Inverse of `vector_to_gym`: gym (d x, d y) -> D4RL (d row, d col) = (-d y, d x)."""
        v = np.asarray(v, dtype=np.float64)
        return np.stack([-v[..., 1], v[..., 0]], axis=-1)


class Maze2dEnv(gym.Env):
    """D4RL's Maze2d task (frame, fixed goal, sparse reward, reset) on gymnasium-robotics' point maze.

    Observation: (x, y, vx, vy) in the D4RL frame (= `state_vector()`); action: force (ax, ay) in
    [-1, 1]^2 in the D4RL frame. `goal` is the current episode's goal (D4RL-frame xy), also returned
    as `info["goal"]` by `reset` and `step`: the fixed evaluation goal `fixed_goal` unless `reset` was
    given `options={"goal": ...}`. The env never terminates; wrap it in a `TimeLimit`
    (the registry's `make_env` does) for D4RL's episode lengths.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 100}

    def __init__(
        self,
        maze: str | Sequence[str] = "umaze",
        goal_cell: tuple[int, int] | None = None,
        reward_type: str = "sparse",
        goal_radius: float = GOAL_RADIUS,
        reset_position_noise: float = RESET_POSITION_NOISE,
        reset_velocity_std: float = RESET_VELOCITY_STD,
        render_mode: str | None = None,
    ) -> None:
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

        if reward_type not in ("sparse", "dense"):
            raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
        self.maze = parse_maze(maze)
        cell = self.maze.goal_cell if goal_cell is None else (int(goal_cell[0]), int(goal_cell[1]))
        if not self.maze.is_free(cell):
            raise ValueError(f"goal_cell {cell} is not a free cell of the maze")
        self.goal_cell = cell
        # D4RL env._target: the goal cell's integer coords; `goal` is the current episode's (reset options)
        self.fixed_goal = np.array(cell, dtype=np.float64)
        self.goal = self.fixed_goal.copy()
        self.frame = MazeFrame(self.maze.height, self.maze.width)
        self.reward_type = reward_type
        self.goal_radius = float(goal_radius)
        self.reset_position_noise = float(reset_position_noise)
        self.reset_velocity_std = float(reset_velocity_std)
        self.render_mode = render_mode
        # gymnasium-robotics builds the maze MJCF and the point mass; we drive its point env directly
        # and keep its own goal (radius 0.45, resampling) out of the loop.
        self._sim = PointMazeEnv(
            maze_map=self.maze.gymnasium_map(),
            render_mode=render_mode,
            reward_type="sparse",
            continuing_task=True,
            reset_target=False,
        )
        self._point = self._sim.point_env
        # gymnasium-robotics leaves the generated MJCF in the temp folder; the model is loaded, drop it
        with contextlib.suppress(OSError):
            os.remove(self._sim.tmp_xml_file_path)
        self._sim.goal = self.frame.position_to_gym(self.goal)
        self._sim.update_target_site_pos()
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    # --- state in the D4RL frame -------------------------------------------------------------
    def state_vector(self) -> np.ndarray:
        """(qpos, qvel) in the D4RL frame: (x, y, vx, vy)."""
        (gx, gy), (gvx, gvy) = self._point.data.qpos, self._point.data.qvel
        # MazeFrame.position_from_gym / vector_from_gym, written out: this runs every step
        f = self.frame
        row = f.height / 2 - 0.5 - gy - D4RL_CELL_OFFSET
        col = gx - 0.5 + f.width / 2 - D4RL_CELL_OFFSET
        return np.array([row, col, -gvy, gvx])

    def set_state(self, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """Set position and velocity given in the D4RL frame."""
        self._point.set_state(self.frame.position_to_gym(qpos), self.frame.vector_to_gym(qvel))

    def reward(self, xy: np.ndarray) -> float:
        """D4RL's reward at position `xy`: sparse 1[||xy - goal|| <= 0.5], or dense exp(-||xy - goal||)."""
        dist = self.distance_to_goal(xy)
        if self.reward_type == "sparse":
            return 1.0 if dist <= self.goal_radius else 0.0
        return float(np.exp(-dist))

    # --- gymnasium API -------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset to a random free cell with D4RL's noise; `options` may pin the episode's start and goal.

        Options (all optional):
            reset_cell: (row, col), a free cell to start in (D4RL's noise still applies).
            start_state: (x, y, vx, vy) in the D4RL frame, the exact start state (no noise); its
                position must lie in a free cell. Not together with `reset_cell`.
            goal: (x, y) in the D4RL frame, this episode's goal (reward, `info["goal"]`,
                `info["success"]`); it must lie in a free cell. Without it the goal is the env's fixed one.
        """
        super().reset(seed=seed)
        options = options or {}
        self.goal = self._episode_goal(options.get("goal"))
        self._sim.goal = self.frame.position_to_gym(self.goal)
        self._sim.update_target_site_pos()  # the rendered goal marker; sites do not touch the physics
        if options.get("start_state") is not None:
            if options.get("reset_cell") is not None:
                raise ValueError("reset options: give either start_state or reset_cell, not both")
            state = self._checked_state(options["start_state"])
            self._point.reset()  # clears MuJoCo's data (time, warm starts) before we set the state
            self.set_state(state[:2], state[2:])
            obs = self.state_vector()
            return obs, self._info(obs)
        if options.get("reset_cell") is not None:
            cell = (int(options["reset_cell"][0]), int(options["reset_cell"][1]))
            if not self.maze.is_free(cell):
                raise ValueError(f"reset_cell {cell} is not a free cell of the maze")
        else:
            cell = self.maze.free_cells[int(self.np_random.integers(len(self.maze.free_cells)))]
        noise = self.np_random.uniform(-self.reset_position_noise, self.reset_position_noise, size=2)
        qpos = np.asarray(cell, dtype=np.float64) + noise
        qvel = self.np_random.standard_normal(2) * self.reset_velocity_std
        self._point.reset()  # clears MuJoCo's data (time, warm starts) before we set the state
        self.set_state(qpos, qvel)
        obs = self.state_vector()
        return obs, self._info(obs)

    def _episode_goal(self, goal: Any) -> np.ndarray:
        """The goal for the next episode: `goal` (D4RL-frame xy in a free cell) or the env's fixed goal."""
        if goal is None:
            return self.fixed_goal.copy()
        xy = np.asarray(goal, dtype=np.float64).reshape(-1)
        if xy.shape != (2,) or not np.isfinite(xy).all():
            raise ValueError(f"reset option goal must be a finite (x, y) position, got {goal!r}")
        if not self.maze.is_free(self.maze.cell_of(xy)):
            raise ValueError(f"reset option goal {xy.tolist()} lies in cell {self.maze.cell_of(xy)}, "
                             "which is a wall or outside the maze")
        return xy

    def _checked_state(self, state: Any) -> np.ndarray:
        """A start state (x, y, vx, vy) whose position lies in a free cell, as float64."""
        s = np.asarray(state, dtype=np.float64).reshape(-1)
        if s.shape != (4,) or not np.isfinite(s).all():
            raise ValueError(f"reset option start_state must be a finite (x, y, vx, vy) state, got {state!r}")
        if not self.maze.is_free(self.maze.cell_of(s[:2])):
            raise ValueError(f"reset option start_state position {s[:2].tolist()} lies in cell "
                             f"{self.maze.cell_of(s[:2])}, which is a wall or outside the maze")
        return s

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply a D4RL-frame force; reward from the next position (D4RL `MazeEnv.step`)."""
        ax, ay = np.asarray(action, dtype=np.float64).reshape(2)
        self._point.step(np.array([ay, -ax]))  # MazeFrame.vector_to_gym
        obs = self.state_vector()
        return obs, self.reward(obs), False, False, self._info(obs)

    def distance_to_goal(self, xy: np.ndarray) -> float:
        """Euclidean distance from D4RL position `xy` to the fixed goal."""
        return math.hypot(xy[0] - self.goal[0], xy[1] - self.goal[1])

    def _info(self, obs: np.ndarray) -> dict[str, Any]:
        return {"goal": self.goal.copy(), "success": self.distance_to_goal(obs) <= self.goal_radius}

    def render(self) -> np.ndarray | None:
        return self._sim.render()

    def close(self) -> None:
        self._sim.close()
