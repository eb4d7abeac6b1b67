"""Task registry and environments: gymnasium MuJoCo v5 locomotion, Maze2d with the D4RL protocol."""

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
