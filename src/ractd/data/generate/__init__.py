"""Datasets by simulation, following D4RL's recipes (import the submodule you need; they are heavy).

- `maze2d.generate_maze2d`: Maze2d, waypoint + PD controller to random goals.
- `locomotion.generate_locomotion`: MuJoCo locomotion at D4RL's five levels, from behaviour policies:
  `policies` (uniform random, numpy PPO actor), `ppo` (training them; needs the `generate` extra),
  `rollout` (batched rollouts), `stream` (the learner's trajectory stream, medium-replay).
- `save.save_generated_dataset`: the D4RL hdf5 + Minari + card writer both generators share.
"""
