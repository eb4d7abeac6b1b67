"""Datasets by simulation, following D4RL's recipes (import the submodule you need; they are heavy).

- `ractd.data.generate.maze2d.generate_maze2d`: Maze2d, waypoint + PD controller to random goals.
- `ractd.data.generate.locomotion.generate_locomotion`: MuJoCo locomotion, behaviour policies.
"""
