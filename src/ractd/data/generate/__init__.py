"""Datasets by simulation, following D4RL's recipes (import the submodule you need; they are heavy).

- `maze2d.generate_maze2d`: Maze2d, waypoint + PD controller to random goals.
- `locomotion.generate_locomotion`: MuJoCo locomotion at D4RL's five levels, rolled out from the behaviour
  policies shipped in `behaviour/<env>/`: `policies` (uniform random, numpy PPO actor), `rollout` (batched
  rollouts), `recipes` (the PPO recipe per env), `ppo` (training them; needs the `generate` extra), `ship`
  (retraining the shipped policies and recording them for the report).
- `save.save_generated_dataset`: the D4RL hdf5 + Minari + card writer both generators share.
"""
