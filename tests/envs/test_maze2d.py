"""Maze2d: D4RL maps, gym <-> D4RL frame, physics identical to D4RL's model, reward, reset, episode length."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from gymnasium_robotics.envs.maze import maps as gym_maps
from gymnasium_robotics.envs.maze.maze_v4 import Maze as GymMaze

from ractd.envs.maze2d import (
    D4RL_CELL_OFFSET,
    MAZES,
    Maze2dEnv,
    MazeFrame,
    parse_maze,
    shortest_path,
)
from ractd.envs.registry import make_env

GYM_LAYOUTS = {"umaze": gym_maps.U_MAZE, "medium": gym_maps.MEDIUM_MAZE, "large": gym_maps.LARGE_MAZE}


@pytest.mark.parametrize(
    ("maze", "goal", "n_free"), [("umaze", (1, 1), 7), ("medium", (6, 6), 26), ("large", (7, 9), 46)]
)
def test_d4rl_maps_goal_cells_and_gymnasium_layouts(maze: str, goal: tuple[int, int], n_free: int) -> None:
    m = parse_maze(maze)
    assert m.goal_cell == goal
    assert len(m.free_cells) == n_free
    assert m.gymnasium_map() == GYM_LAYOUTS[maze]  # D4RL's walls are gymnasium-robotics' walls


def test_parse_maze_rejects_bad_maps() -> None:
    with pytest.raises(ValueError, match="exactly one goal"):
        parse_maze(["###", "#O#", "###"])
    with pytest.raises(ValueError, match="unknown tiles"):
        parse_maze(["###", "#X#", "#G#", "###"])
    with pytest.raises(ValueError, match="unknown maze 'tiny'"):
        parse_maze("tiny")


def test_frame_hand_computed_values() -> None:
    f = MazeFrame(5, 5)
    # D4RL (1, 1) is 0.2 past the centre of cell (1, 1): continuous cell coords (1.2, 1.2)
    np.testing.assert_allclose(f.position_to_gym([1.0, 1.0]), [1.2 + 0.5 - 2.5, 2.5 - 1.2 - 0.5])
    np.testing.assert_allclose(f.vector_to_gym([1.0, 0.0]), [0.0, -1.0])  # +row is -y in gym
    np.testing.assert_allclose(f.vector_to_gym([0.0, 1.0]), [1.0, 0.0])  # +col is +x in gym


@pytest.mark.parametrize("maze", sorted(MAZES))
def test_frame_cell_centres_match_gymnasium(maze: str) -> None:
    m = parse_maze(maze)
    f = MazeFrame(m.height, m.width)
    gym_maze = GymMaze(m.gymnasium_map(), maze_size_scaling=1.0, maze_height=0.4)
    for cell in m.free_cells:
        centre_d4rl = np.asarray(cell, dtype=float) - D4RL_CELL_OFFSET
        np.testing.assert_allclose(f.position_to_gym(centre_d4rl), gym_maze.cell_rowcol_to_xy(np.array(cell)))
        assert m.cell_of(centre_d4rl) == cell
        assert m.cell_of(np.asarray(cell, dtype=float)) == cell  # D4RL's integer coords lie in the cell


def test_frame_round_trips() -> None:
    rng = np.random.default_rng(0)
    f = MazeFrame(9, 12)
    xy = rng.uniform(-3, 12, size=(100, 2))
    v = rng.normal(size=(100, 2))
    np.testing.assert_allclose(f.position_from_gym(f.position_to_gym(xy)), xy, atol=1e-12)
    np.testing.assert_allclose(f.position_to_gym(f.position_from_gym(xy)), xy, atol=1e-12)
    np.testing.assert_allclose(f.vector_from_gym(f.vector_to_gym(v)), v, atol=1e-12)
    np.testing.assert_allclose(f.vector_to_gym(f.vector_from_gym(v)), v, atol=1e-12)
    # the frame change is a rotation: lengths (distances, speeds, force magnitudes) are preserved
    np.testing.assert_allclose(np.linalg.norm(f.vector_to_gym(v), axis=1), np.linalg.norm(v, axis=1))


def test_env_state_and_set_state_round_trip() -> None:
    env = Maze2dEnv("medium")
    env.reset(seed=0)
    env.set_state(np.array([4.1, 2.3]), np.array([0.7, -1.1]))
    np.testing.assert_allclose(env.state_vector(), [4.1, 2.3, 0.7, -1.1], atol=1e-12)
    # the simulation agrees: gymnasium-robotics' raw state is the converted one
    np.testing.assert_allclose(env._point.data.qpos, env.frame.position_to_gym([4.1, 2.3]))
    np.testing.assert_allclose(env._point.data.qvel, env.frame.vector_to_gym([0.7, -1.1]))


def test_actions_push_along_d4rl_axes() -> None:
    env = Maze2dEnv("large")
    env.reset(seed=0, options={"reset_cell": (3, 2)})  # row 3 is a long free corridor
    env.set_state(np.array([3.0, 2.0]), np.zeros(2))
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 1.0]))  # +y force: move along the row toward larger columns
    assert obs[1] > 2.02 and abs(obs[0] - 3.0) < 1e-9 and obs[3] > 0 and obs[2] == 0


def _d4rl_geometry_model(maze: str) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """D4RL's `maze_model.point_maze`: ball body at (1.2, 1.2), wall (i, j) centred at (i + 1, j + 1)."""
    m = parse_maze(maze)
    walls = "".join(
        f'<geom type="box" pos="{i + 1.0} {j + 1.0} 0" size="0.5 0.5 0.2" conaffinity="1"/>'
        for i in range(m.height)
        for j in range(m.width)
        if m.walls[i, j]
    )
    xml = f"""
    <mujoco>
      <compiler inertiafromgeom="true" angle="radian" coordinate="local"/>
      <option timestep="0.01" gravity="0 0 0" iterations="20" integrator="Euler"/>
      <default>
        <joint damping="1" limited="false"/>
        <geom friction=".5 .1 .1" density="1000" margin="0.002" condim="1" contype="2" conaffinity="1"/>
      </default>
      <worldbody>
        <geom name="ground" size="40 40 0.25" pos="0 0 -0.1" type="plane" contype="1" conaffinity="0"/>
        <body name="particle" pos="1.2 1.2 0">
          <geom name="particle_geom" type="sphere" size="0.1" contype="1"/>
          <joint name="ball_x" type="slide" pos="0 0 0" axis="1 0 0"/>
          <joint name="ball_y" type="slide" pos="0 0 0" axis="0 1 0"/>
        </body>
        {walls}
      </worldbody>
      <actuator>
        <motor joint="ball_x" ctrlrange="-1.0 1.0" ctrllimited="true" gear="100"/>
        <motor joint="ball_y" ctrlrange="-1.0 1.0" ctrllimited="true" gear="100"/>
      </actuator>
    </mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    return model, mujoco.MjData(model)


@pytest.mark.parametrize("maze", ["umaze", "medium"])
def test_physics_match_d4rl_model_including_wall_contacts(maze: str) -> None:
    env = Maze2dEnv(maze)
    model, data = _d4rl_geometry_model(maze)
    rng = np.random.default_rng(1)
    obs, _ = env.reset(seed=3)
    data.qpos[:], data.qvel[:] = obs[:2], obs[2:]
    mujoco.mj_forward(model, data)
    # strong random pushes (beyond the [-1, 1] range, to exercise clipping) that keep hitting walls
    actions = np.repeat(rng.uniform(-2, 2, size=(40, 2)), 10, axis=0)
    ours, theirs = [], []
    for a in actions:
        ours.append(env.step(a)[0])
        # D4RL MazeEnv.step: clip action, clip velocity, one MuJoCo step
        data.qvel[:] = np.clip(data.qvel, -5.0, 5.0)
        mujoco.mj_forward(model, data)
        data.ctrl[:] = np.clip(a, -1.0, 1.0)
        mujoco.mj_step(model, data)
        theirs.append(np.concatenate([data.qpos, data.qvel]))
    ours, theirs = np.array(ours), np.array(theirs)
    m = parse_maze(maze)
    # the ball did touch walls: some position is within ball radius + margin of a cell edge
    edge_gap = np.abs(((ours[:, :2] + D4RL_CELL_OFFSET + 0.5) % 1.0) - 0.5)
    assert (edge_gap > 0.39).any()
    assert all(m.is_free(m.cell_of(p)) for p in ours[:, :2])
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_sparse_reward_radius_is_half_a_cell() -> None:
    env = Maze2dEnv("umaze")
    env.reset(seed=0)
    g = env.goal
    np.testing.assert_array_equal(g, [1.0, 1.0])  # D4RL's env._target: the 'G' cell's integer coords
    assert env.reward(g + [0.49, 0.0]) == 1.0
    assert env.reward(g + [0.0, 0.5]) == 1.0
    assert env.reward(g + [0.3, 0.4001]) == 0.0  # distance 0.50008
    assert env.reward(g + [0.46, 0.0]) == 1.0  # gymnasium-robotics' 0.45 would say 0 here
    # through step: a resting ball 0.48 from the goal is rewarded and flagged a success, 0.52 is not
    for offset, expected in ((0.48, 1.0), (0.52, 0.0)):
        env.set_state(g + [0.0, offset], np.zeros(2))
        obs, reward, terminated, truncated, info = env.step(np.zeros(2))
        assert reward == expected and info["success"] == bool(expected)
        assert not terminated and not truncated
        np.testing.assert_array_equal(info["goal"], g)
    dense = Maze2dEnv("umaze", reward_type="dense")
    assert dense.reward(dense.goal + [0.3, 0.4]) == pytest.approx(np.exp(-0.5))


def test_reset_follows_d4rl() -> None:
    env = Maze2dEnv("umaze")
    cells, speeds = set(), []
    for seed in range(200):
        obs, info = env.reset(seed=seed)
        cell = np.round(obs[:2])
        assert np.all(np.abs(obs[:2] - cell) <= 0.1)  # integer cell coords + U(-0.1, 0.1)
        cells.add((int(cell[0]), int(cell[1])))
        speeds.append(obs[2:])
        np.testing.assert_array_equal(info["goal"], env.goal)
    assert cells == set(env.maze.free_cells)  # every free cell, the goal cell included
    assert np.std(speeds) == pytest.approx(0.1, rel=0.15)  # qvel ~ N(0, 0.1^2)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("task", "length"), [("maze2d-umaze", 300), ("maze2d-medium", 600), ("maze2d-large", 800)]
)
def test_episode_length_and_no_early_termination(task: str, length: int) -> None:
    env = make_env(task, seed=0)
    env.reset(seed=0)
    for t in range(length):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == length - 1)
    assert env.unwrapped.goal.shape == (2,)


def test_shortest_path_hand_computed() -> None:
    m = parse_maze("umaze")
    assert shortest_path(m, (3, 1), (1, 1)) == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    assert shortest_path(m, (1, 1), (1, 1)) == []
    with pytest.raises(ValueError, match="free cells"):
        shortest_path(m, (0, 0), (1, 1))
