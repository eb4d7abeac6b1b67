"""Episode i of an evaluation depends only on the run, the sampler, the seed and i (docs/algorithm.md §6): the same
as a plain one-episode-at-a-time gymnasium loop, whatever the number of episodes or of envs run side by side.

Every episode draws its planner noise from its own generator. What is left between a batched evaluation and the
plain loop is float rounding: a network call on a batch rounds a row differently (~1e-7) from a call on that row
alone, and a Heun solve and the hopper dynamics amplify it. Run one env at a time and the loop is matched bit for
bit. For scale: with one noise stream shared by the batch, returns moved by 5–40 % with the batch.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ractd.cli import app
from ractd.envs import get_task, make_env
from ractd.evaluate import episode_return, evaluate
from ractd.planning import PlannerPolicy, load_planner
from ractd.planning.planner import episode_generator

runner = CliRunner()

# (stage, sampler, relative tolerance of a batched evaluation against one env at a time)
CASES = [("student", "one_step", 1e-5), ("teacher", "heun:4", 1e-2)]


def plain_loop_returns(run, sampler: str, seed: int, n: int) -> np.ndarray:
    """The reference: for each episode a new env reset with seed + i and a fresh planner, whose noise comes from
    the episode's generator; act until the env ends the episode; the true return."""
    returns = []
    for i in range(n):
        planner = load_planner(run, sampler, seed=seed)
        generator = episode_generator(seed, seed + i)
        env = make_env(planner.cfg.task)
        obs, _ = env.reset(seed=seed + i)
        rewards = []
        while True:
            action = planner.act_batch(np.asarray(obs)[None], generators=[generator])[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        env.close()
        returns.append(episode_return(rewards))
    return np.array(returns)


def cli_returns(run, sampler: str, seed: int, n: int, out, *extra: str) -> np.ndarray:
    result = runner.invoke(app, ["eval", str(run), "-n", str(n), "--seed", str(seed), "--sampler", sampler,
                                 "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return np.array(json.loads(out.read_text())["returns"])


@pytest.mark.parametrize(("stage", "sampler", "rtol"), CASES)
def test_ractd_eval_equals_a_plain_one_episode_loop(tiny_hopper_runs, tmp_path, stage, sampler, rtol):
    run, seed, n = tiny_hopper_runs / stage, 3, 4
    plain = plain_loop_returns(run, sampler, seed, n)
    one_at_a_time = cli_returns(run, sampler, seed, n, tmp_path / "one.json", "--max-parallel", "1")
    np.testing.assert_array_equal(one_at_a_time, plain)  # the same computation: bit for bit
    batched = cli_returns(run, sampler, seed, n, tmp_path / "batched.json")
    np.testing.assert_allclose(batched, plain, rtol=rtol)
    assert len(set(plain.tolist())) == n  # the episodes differ: each is compared with its own


@pytest.mark.parametrize(("stage", "sampler", "rtol"), CASES)
def test_episode_i_does_not_depend_on_the_episodes_beside_it(tiny_hopper_runs, stage, sampler, rtol):
    run = tiny_hopper_runs / stage
    task = get_task(load_planner(run, sampler).cfg.task)

    def returns(n: int, max_parallel: int) -> np.ndarray:
        policy = PlannerPolicy(load_planner(run, sampler, seed=0))
        return evaluate(policy, lambda: make_env(task), n, seed=0, max_parallel=max_parallel, progress=False).returns

    three, five, one_by_one = returns(3, 100), returns(5, 100), returns(5, 1)
    np.testing.assert_allclose(five[:3], three, rtol=rtol)
    np.testing.assert_allclose(five, one_by_one, rtol=rtol)
    np.testing.assert_array_equal(returns(5, 1), one_by_one)  # reproducible bit for bit


def test_a_maze_episode_plans_the_same_whatever_the_batch(tiny_maze_runs):
    """Maze2d plans once per episode, at its reset: episode i's plan is the same in any batch (up to rounding)."""
    run = tiny_maze_runs / "student"
    task = get_task(load_planner(run).cfg.task)

    def plans(n: int, max_parallel: int, seed: int = 0) -> list[np.ndarray]:
        policy = PlannerPolicy(load_planner(run, seed=0))
        made: list[np.ndarray] = []
        reset = policy.reset

        def recording_reset(observations, infos, env_indices):
            reset(observations, infos, env_indices)
            made.extend(policy.state[int(i)]["plan"] for i in env_indices)

        policy.reset = recording_reset  # type: ignore[method-assign]
        evaluate(policy, lambda: make_env(task), n, seed=seed, max_parallel=max_parallel, max_episode_steps=2,
                 progress=False)
        return made

    two, three, one_by_one = plans(2, 10), plans(3, 10), plans(3, 1)
    for i in range(2):
        np.testing.assert_allclose(three[i], two[i], rtol=1e-5, atol=1e-5)
    for i in range(3):
        np.testing.assert_allclose(three[i], one_by_one[i], rtol=1e-5, atol=1e-5)
    assert not np.allclose(three[0], three[1])
    # the episode reset with seed 1 is episode 1 of a run from seed 0 and episode 0 of a run from seed 1
    np.testing.assert_allclose(plans(1, 10, seed=1)[0], three[1], rtol=1e-5, atol=1e-5)


# (runs fixture, stage, sampler, controller, env kwargs): the samplers and controllers `ractd eval` offers; the
# Maze2d runs score the dense reward exp(-distance to goal), so every step of the trajectory shows in the return
DENSE = {"reward_type": "dense"}
SLOT_CASES = [("tiny_hopper_runs", "student", "one_step", "tracking", {}),
              ("tiny_hopper_runs", "student", "multistep:2", "tracking", {}),
              ("tiny_hopper_runs", "teacher", "heun:4", "tracking", {}),
              ("tiny_maze_runs", "student", "one_step", "tracking", DENSE),
              ("tiny_maze_runs", "student", "one_step", "inverse_dynamics", DENSE)]


@pytest.mark.parametrize(("runs", "stage", "sampler", "controller", "env_kwargs"), SLOT_CASES)
def test_the_batched_evaluator_with_one_env_slot_is_the_sequential_loop_bit_for_bit(request, runs, stage, sampler,
                                                                                      controller, env_kwargs):
    """evaluate(max_parallel=1) — slot refills, the vector env, the policy's per-slot arrays — gives every seed the
    returns, lengths and terminations of evaluate_sequential exactly; with 3 slots, the same up to batch rounding."""
    from ractd.evaluate import evaluate_sequential

    root = request.getfixturevalue(runs)
    inverse = root / "inverse_dynamics" if controller == "inverse_dynamics" else None
    task = get_task(load_planner(root / stage).cfg.task)

    def policy() -> PlannerPolicy:
        return PlannerPolicy(load_planner(root / stage, sampler, seed=2, inverse_dynamics=inverse), controller)

    def make():
        return make_env(task, **env_kwargs)

    kwargs = dict(n_episodes=4, seed=2, max_episode_steps=40, progress=False)
    sequential = evaluate_sequential(policy(), make, **kwargs)
    assert len(set(sequential.returns.tolist())) == 4  # the episodes differ: each is compared with its own
    one_slot = evaluate(policy(), make, max_parallel=1, **kwargs)
    for field in ("returns", "lengths", "terminated", "seeds"):
        np.testing.assert_array_equal(getattr(one_slot, field), getattr(sequential, field), err_msg=field)
    three_slots = evaluate(policy(), make, max_parallel=3, **kwargs)
    np.testing.assert_allclose(three_slots.returns, sequential.returns, rtol=1e-2, atol=1e-6)
    assert one_slot.construct_seconds > 0 and three_slots.construct_seconds > 0
