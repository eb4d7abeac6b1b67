"""Task registry: names and aliases, D4RL reference scores, env factory, generic gymnasium ids."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.classic_control import PendulumEnv

from ractd.envs.registry import get_task, make_env, normalized_score, task_names

D4RL_REFS = {
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
    "maze2d-umaze": (23.85, 161.86),
    "maze2d-medium": (13.13, 277.39),
    "maze2d-large": (6.7, 273.99),
}


def test_all_paper_tasks_are_registered() -> None:
    names = set(task_names())
    for robot in ("hopper", "walker2d", "halfcheetah"):
        for level in ("random", "medium", "medium-replay", "expert", "medium-expert"):
            assert f"{robot}-{level}" in names
    assert {"maze2d-umaze", "maze2d-medium", "maze2d-large"} <= names
    assert len(names) == 18


@pytest.mark.parametrize(
    ("name", "env_id", "steps", "dims", "refs"),
    [
        ("hopper-medium-replay", "Hopper-v5", 1000, (11, 3), D4RL_REFS["hopper"]),
        ("walker2d-medium-expert", "Walker2d-v5", 1000, (17, 6), D4RL_REFS["walker2d"]),
        ("halfcheetah-random", "HalfCheetah-v5", 1000, (17, 6), D4RL_REFS["halfcheetah"]),
        ("maze2d-umaze", "ractd/maze2d-umaze-v1", 300, (4, 2), D4RL_REFS["maze2d-umaze"]),
        ("maze2d-medium", "ractd/maze2d-medium-v1", 600, (4, 2), D4RL_REFS["maze2d-medium"]),
        ("maze2d-large", "ractd/maze2d-large-v1", 800, (4, 2), D4RL_REFS["maze2d-large"]),
    ],
)
def test_task_fields(
    name: str, env_id: str, steps: int, dims: tuple[int, int], refs: tuple[float, float]
) -> None:
    t = get_task(name)
    assert (t.name, t.env_id, t.max_episode_steps) == (name, env_id, steps)
    assert (t.obs_dim, t.act_dim) == dims
    assert (t.ref_min_score, t.ref_max_score) == refs
    assert t.dataset == name


def test_d4rl_versioned_names_are_aliases() -> None:
    assert get_task("hopper-medium-replay-v2") is get_task("hopper-medium-replay")
    assert get_task("maze2d-large-v1") is get_task("maze2d-large")
    assert get_task("maze2d-medium-v1").goal_cell == (6, 6)


def test_unknown_task_error_lists_known_names() -> None:
    with pytest.raises(KeyError) as e:
        get_task("hopper-mediun")
    msg = str(e.value)
    assert "'hopper-mediun'" in msg and "hopper-medium-replay" in msg and "maze2d-large" in msg


def test_normalized_score_hand_values() -> None:
    lo, hi = D4RL_REFS["hopper"]
    assert normalized_score("hopper-medium", lo) == pytest.approx(0.0)
    assert normalized_score("hopper-medium", hi) == pytest.approx(100.0)
    assert normalized_score("hopper-medium", (lo + hi) / 2) == pytest.approx(50.0)
    # umaze: a return of 92.855 is half-way between 23.85 and 161.86
    scores = normalized_score("maze2d-umaze", np.array([23.85, 92.855, 161.86]))
    np.testing.assert_allclose(scores, [0, 50, 100])
    assert isinstance(normalized_score("maze2d-umaze", 50.0), float)


def test_generic_gymnasium_env_is_a_task_without_references() -> None:
    t = get_task("Pendulum-v1")
    assert (t.kind, t.env_id, t.max_episode_steps) == ("locomotion", "Pendulum-v1", 200)
    assert (t.obs_dim, t.act_dim) == (3, 1)
    assert not t.has_reference_scores
    with pytest.raises(ValueError, match="no reference scores"):
        normalized_score(t, 1.0)
    env = make_env(t, seed=0)
    assert env.spec.max_episode_steps == 200


def test_make_env_locomotion_is_seeded() -> None:
    env = make_env("hopper-medium", seed=3)
    assert env.spec.id == "Hopper-v5" and env.spec.max_episode_steps == 1000
    a, _ = env.reset(seed=5)
    b, _ = make_env("hopper-medium").reset(seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (11,)


def test_make_env_maze_returns_d4rl_frame_observation() -> None:
    env = make_env("maze2d-large", seed=0)
    obs, info = env.reset(seed=0)
    assert obs.shape == (4,)
    np.testing.assert_array_equal(info["goal"], [7.0, 9.0])
    maze = env.unwrapped.maze
    assert maze.is_free(maze.cell_of(obs[:2]))


class CountedEnv(PendulumEnv):
    """Pendulum that counts its constructions."""

    built = 0

    def __init__(self, **kwargs):
        type(self).built += 1
        super().__init__(**kwargs)


def test_n_envs_of_a_gymnasium_id_cost_n_constructions() -> None:
    """make_env of a plain gymnasium id builds no probe env to learn the task; get_task builds one, once."""
    env_id = "ractd-test/CountedPendulum-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=CountedEnv, max_episode_steps=7)
    CountedEnv.built = 0
    envs = [make_env(env_id) for _ in range(5)]
    assert CountedEnv.built == 5
    assert all(env.spec.max_episode_steps == 7 for env in envs)
    assert (get_task(env_id).obs_dim, get_task(env_id).max_episode_steps) == (3, 7)
    assert CountedEnv.built == 6  # the one probe, cached
    make_env(env_id), make_env(get_task(env_id))
    assert CountedEnv.built == 8
