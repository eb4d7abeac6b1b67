"""EpisodeSlots: a vector env that resets and steps any subset of its envs, each slot with its own seed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ractd.evaluate.vector_env import EpisodeSlots
from tests.evaluate.helpers import CountdownEnv, countdown_rewards


def test_only_the_given_slots_reset_and_step_with_their_own_seeds_and_actions():
    with EpisodeSlots(CountdownEnv, 4) as slots:
        infos = slots.reset(np.array([0, 1, 2, 3]), np.array([3, 4, 5, 6]))  # episode lengths 6, 7, 8, 9
        np.testing.assert_array_equal([info["goal"][0] for info in infos], [6, 7, 8, 9])
        np.testing.assert_array_equal(slots.observations, [[0, 6], [0, 7], [0, 8], [0, 9]])
        rewards, terminated, truncated = slots.step(np.array([1, 3]), np.array([[0.5], [-0.25]]))
        np.testing.assert_array_equal(rewards, [countdown_rewards(1)[0] + 0.5, countdown_rewards(1)[0] - 0.25])
        assert rewards.dtype == np.float64 and not terminated.any() and not truncated.any()
        np.testing.assert_array_equal(slots.observations[:, 0], [0, 1, 0, 1])  # slots 0 and 2 did not move
        for _ in range(5):
            slots.step(np.array([0]), np.zeros((1, 1)))
        _, terminated, _ = slots.step(np.array([0]), np.zeros((1, 1)))
        assert terminated.tolist() == [True]  # slot 0's 6-step episode ended at its 6th step
        slots.reset(np.array([0]), np.array([0]))  # refilled with the 3-step episode of seed 0
        np.testing.assert_array_equal(slots.observations[0], [0, 3])
        assert slots.construct_seconds >= 0 and len(slots) == 4


def test_the_same_seed_in_another_slot_gives_the_same_hopper_trajectory():
    actions = np.random.default_rng(0).uniform(-1, 1, size=(30, 3))
    with EpisodeSlots(lambda: gym.make("Hopper-v5"), 3) as slots:
        slots.reset(np.array([0, 2]), np.array([7, 7]))
        for a in actions:
            rewards, _, _ = slots.step(np.array([0, 2]), np.stack([a, a]))
            assert rewards[0] == rewards[1]
        np.testing.assert_array_equal(slots.observations[0], slots.observations[2])
        env = gym.make("Hopper-v5")
        env.reset(seed=7)
        for a in actions:
            obs, *_ = env.step(a)
        np.testing.assert_array_equal(slots.observations[0], obs)


def test_dict_observations_and_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="positive number of envs"):
        EpisodeSlots(CountdownEnv, 0)

    class DictEnv(CountdownEnv):
        def reset(self, *, seed=None, options=None):
            obs, info = super().reset(seed=seed)
            return {"t": obs}, info

    with EpisodeSlots(DictEnv, 1) as slots, pytest.raises(TypeError, match="FlattenObservation"):
        slots.reset(np.array([0]), np.array([0]))


def test_envs_built_before_a_failing_factory_call_are_closed():
    closed = []

    class Closing(CountdownEnv):
        def close(self):
            closed.append(self)

    made = iter([Closing, Closing, None])

    def factory():
        cls = next(made)
        if cls is None:
            raise RuntimeError("no more envs")
        return cls()

    with pytest.raises(RuntimeError, match="no more envs"):
        EpisodeSlots(factory, 3)
    assert len(closed) == 2
