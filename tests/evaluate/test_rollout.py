"""Seeded vectorized rollouts: reproducible, equal to the plain one-env loop, masks and seeds right."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ractd.evaluate import episode_return, evaluate, evaluate_sequential
from tests.evaluate.helpers import CountdownEnv, RecordingMLPPolicy, ZeroPolicy, countdown_rewards

HOPPER_STEPS = 60


def make_hopper() -> gym.Env:
    return gym.make("Hopper-v5")


def hopper_policy(gain: float = 1.0, seed: int = 0) -> RecordingMLPPolicy:
    return RecordingMLPPolicy(obs_dim=11, act_dim=3, gain=gain, seed=seed)


def test_countdown_lengths_returns_and_refill_are_exact():
    # 10 episodes through 3 env slots: slots are refilled as episodes end; everything is hand-known
    policy = ZeroPolicy()
    r = evaluate(policy, CountdownEnv, n_episodes=10, seed=5, max_episode_steps=50, max_parallel=3,
                 legacy_running_max=True, progress=False)
    lengths = [3 + s % 7 for s in range(5, 15)]
    np.testing.assert_array_equal(r.seeds, np.arange(5, 15))
    np.testing.assert_array_equal(r.lengths, lengths)
    assert r.terminated.all()
    np.testing.assert_array_equal(r.returns, [sum(countdown_rewards(n)) for n in lengths])
    np.testing.assert_array_equal(r.legacy_returns, [sum(np.maximum.accumulate(countdown_rewards(n)))
                                                     for n in lengths])
    assert (r.legacy_returns > r.returns).all()
    # masking: every episode got exactly `length` act calls, never one after it ended
    assert sorted(n for calls in policy.calls.values() for n in calls) == sorted(lengths)
    assert r.max_parallel == 3 and len(policy.calls) == 3


def test_step_limit_truncates_without_termination():
    r = evaluate(ZeroPolicy(), CountdownEnv, n_episodes=7, seed=0, max_episode_steps=5, progress=False)
    full = np.array([3 + s % 7 for s in range(7)])
    np.testing.assert_array_equal(r.lengths, np.minimum(full, 5))
    np.testing.assert_array_equal(r.terminated, full <= 5)
    np.testing.assert_array_equal(r.returns, [sum(countdown_rewards(n)) for n in np.minimum(full, 5)])


def test_policy_actions_reach_their_own_env():
    # reward includes the action; a policy acting a_i = 0.01·(episode length) on its row shows mixing
    class LengthPolicy(ZeroPolicy):
        def act(self, observations, env_indices):
            super().act(observations, env_indices)
            return 0.01 * observations[:, 1:2]

    r = evaluate(LengthPolicy(), CountdownEnv, n_episodes=9, seed=0, max_episode_steps=20, max_parallel=4,
                 progress=False)
    lengths = np.array([3 + s % 7 for s in range(9)])
    expected = [sum(countdown_rewards(n)) + n * 0.01 * n for n in lengths]
    np.testing.assert_allclose(r.returns, expected, rtol=0, atol=1e-12)


def test_seeded_evaluation_is_reproducible():
    kwargs = dict(n_episodes=4, max_episode_steps=HOPPER_STEPS, progress=False)
    a = evaluate(hopper_policy(), make_hopper, seed=3, **kwargs)
    b = evaluate(hopper_policy(), make_hopper, seed=3, **kwargs)
    c = evaluate(hopper_policy(), make_hopper, seed=4, **kwargs)
    np.testing.assert_array_equal(a.returns, b.returns)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert not np.array_equal(a.returns, c.returns)
    # seed + i is episode i's seed whatever the run's start: run 4's episode 0 is run 3's episode 1
    assert a.returns[1] == c.returns[0] and a.returns[3] == c.returns[2]


def test_vectorized_equals_plain_single_env_loop():
    kwargs = dict(n_episodes=6, seed=11, max_episode_steps=HOPPER_STEPS, legacy_running_max=True,
                  ref_scores=(-20.272305, 3234.3), progress=False)
    vec = evaluate(hopper_policy(gain=2.0), make_hopper, max_parallel=4, **kwargs)  # exercises refills
    seq = evaluate_sequential(hopper_policy(gain=2.0), make_hopper, **kwargs)
    assert len(set(vec.lengths.tolist())) > 1, "the test needs episodes of different lengths"
    np.testing.assert_array_equal(vec.returns, seq.returns)
    np.testing.assert_array_equal(vec.lengths, seq.lengths)
    np.testing.assert_array_equal(vec.terminated, seq.terminated)
    np.testing.assert_array_equal(vec.legacy_returns, seq.legacy_returns)
    np.testing.assert_array_equal(vec.normalized_scores, seq.normalized_scores)
    assert vec.mode == "vectorized" and seq.mode == "sequential"


def test_falling_hopper_episodes_end_at_their_termination_step():
    # a policy that makes Hopper fall after ~50 steps; with a limit of 51 some episodes fall before
    # it, some at it and some are cut by it. Replay each episode with its seed and the recorded
    # actions in a fresh env: it must end exactly where the env terminates, or at the limit
    policy = hopper_policy(gain=2.0)
    n, limit = 6, 51
    r = evaluate(policy, make_hopper, n_episodes=n, seed=0, max_episode_steps=limit, max_parallel=4,
                 legacy_running_max=True, progress=False)
    assert r.terminated.any() and (~r.terminated).any() and (r.lengths < limit).any()
    env = make_hopper()
    for i in range(n):
        assert len(policy.actions[i]) == r.lengths[i]  # no act call after the episode ended
        obs, _ = env.reset(seed=int(r.seeds[i]))
        rewards, ended = [], []
        for t, action in enumerate(policy.actions[i]):
            np.testing.assert_array_equal(policy.observations[i][t], obs)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            ended.append(terminated)
        assert ended[-1] == r.terminated[i] and not any(ended[:-1])
        assert r.lengths[i] == limit or r.terminated[i]
        # the return is the one definition (ractd.data.returns); its summation order may differ from np.sum's
        assert r.returns[i] == episode_return(rewards) == pytest.approx(float(np.sum(rewards)), rel=1e-12)
        assert r.legacy_returns[i] >= r.returns[i]
    assert (r.legacy_returns > r.returns).any()


def test_one_batched_call_per_step_over_running_envs():
    policy = hopper_policy(gain=3.0, seed=1)
    r = evaluate(policy, make_hopper, n_episodes=5, seed=0, max_episode_steps=HOPPER_STEPS, progress=False)
    # all 5 run together: the batch shrinks as episodes end and there is one call per env step
    expected = [int((r.lengths > t).sum()) for t in range(int(r.lengths.max()))]
    assert policy.act_batch_sizes == expected
    assert len(policy.reset_infos) == 1 and policy.reset_infos[0]["x_position"].shape == (5,)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="max_episode_steps"):
        evaluate(ZeroPolicy(), CountdownEnv, n_episodes=2, progress=False)  # no spec, no limit
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*expected \(2, 1\)"):
        class Wrong(ZeroPolicy):
            def act(self, observations, env_indices):
                return np.zeros((len(env_indices), 3))
        evaluate(Wrong(), CountdownEnv, n_episodes=2, max_episode_steps=5, progress=False)
    with pytest.raises(ValueError, match="n_episodes"):
        evaluate(ZeroPolicy(), CountdownEnv, n_episodes=0, max_episode_steps=5, progress=False)
    with pytest.raises(ValueError, match="seed"):
        evaluate_sequential(ZeroPolicy(), CountdownEnv, n_episodes=1, seed=-1, max_episode_steps=5,
                            progress=False)


def test_the_progress_bar_shows_episodes_done_and_changes_no_result(capsys):
    """With progress on, both loops draw ractd's one progress bar (episodes done as its info text)."""
    kwargs = dict(n_episodes=5, seed=2, max_episode_steps=50, legacy_running_max=True)
    quiet = evaluate(ZeroPolicy(), CountdownEnv, progress=False, max_parallel=2, **kwargs)
    capsys.readouterr()
    shown = evaluate(ZeroPolicy(), CountdownEnv, progress=True, max_parallel=2, **kwargs)
    out = capsys.readouterr().out
    assert "evaluating" in out and "5/5 episodes" in out
    sequential = evaluate_sequential(ZeroPolicy(), CountdownEnv, progress=True, **kwargs)
    out = capsys.readouterr().out
    assert "evaluating (sequential)" in out and "5/5 episodes" in out
    for r in (shown, sequential):
        np.testing.assert_array_equal(r.returns, quiet.returns)
        np.testing.assert_array_equal(r.legacy_returns, quiet.legacy_returns)


def test_the_policy_is_told_each_episodes_seed_and_may_refuse_the_env():
    """infos["episode_seed"] at a reset is the seed each env was reset with (seed + i), refills included; a
    policy's optional check_env sees the env before any episode starts."""
    class SeedPolicy(ZeroPolicy):
        def __init__(self):
            super().__init__()
            self.episode_seeds: list[int] = []
            self.checked: list[gym.Env] = []

        def check_env(self, env):
            self.checked.append(env)

        def reset(self, observations, infos, env_indices):
            super().reset(observations, infos, env_indices)
            self.episode_seeds.extend(int(s) for s in infos["episode_seed"])

    for run in (lambda p: evaluate(p, CountdownEnv, 7, seed=5, max_episode_steps=20, max_parallel=3, progress=False),
                lambda p: evaluate_sequential(p, CountdownEnv, 7, seed=5, max_episode_steps=20, progress=False)):
        policy = SeedPolicy()
        run(policy)
        assert policy.episode_seeds == list(range(5, 12)) and len(policy.checked) == 1

    class Refusing(ZeroPolicy):
        def check_env(self, env):
            raise ValueError("not my env")

        def reset(self, observations, infos, env_indices):
            raise AssertionError("an episode started")

    with pytest.raises(ValueError, match="not my env"):
        evaluate(Refusing(), CountdownEnv, 2, max_episode_steps=5, progress=False)
