"""Task registry and environments: gymnasium MuJoCo v5 locomotion, Maze2d with the D4RL protocol, and the
car/bicycle roundabout (`ractd/Roundabout-OOC-v0`, registered here; highway-env is needed only to make it)."""

from ractd.envs import roundabout  # noqa: F401  (registers ractd/Roundabout-OOC-v0 with gymnasium)
from ractd.envs.maze2d import Maze2dEnv, MazeFrame, parse_maze
from ractd.envs.registry import TaskSpec, get_task, make_env, normalized_score, task_names

__all__ = [
    "Maze2dEnv",
    "MazeFrame",
    "TaskSpec",
    "get_task",
    "make_env",
    "normalized_score",
    "parse_maze",
    "task_names",
]
