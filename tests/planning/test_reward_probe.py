"""The reward-exploitation probe: its statistics against hand computations, and on a tiny trained student."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ractd.planning.reward_probe import probe_reward


class FixedPlanner:
    """A planner whose samples are given: `sample(cond)` returns `x_hat`."""

    def __init__(self, x_hat: np.ndarray):
        self.x_hat = torch.as_tensor(x_hat)

    def sample(self, cond: torch.Tensor) -> torch.Tensor:
        assert cond.shape[0] == self.x_hat.shape[0]
        return self.x_hat


def action_sum_reward(act_dim: int):
    """R(a, s) = Σ a: the reward model of the closed forms below (action first, as the reward model reads it)."""
    return lambda inputs: inputs[:, :act_dim].sum(dim=-1)


def windows(b=4, h=3, a=2, to=2, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.uniform(-0.4, 0.4, (b, h, a)).astype(np.float32),
            "obs": rng.uniform(-1, 1, (b, to, 5)).astype(np.float32),
            "cond": rng.uniform(-1, 1, (b, to * 5)).astype(np.float32),
            "rtg": rng.uniform(-1, 1, (b, h)).astype(np.float32)}


def test_a_planner_that_returns_the_data_scores_as_the_data():
    batch = windows()
    p = probe_reward(FixedPlanner(batch["x"]), action_sum_reward(2), batch, n_obs_steps=2)
    assert p.reward_plan == pytest.approx(p.reward_data)
    assert p.reward_data == pytest.approx(float(batch["x"][:, 1].sum(-1).mean()), abs=1e-6)  # index To − 1 = 1
    assert p.rtg == pytest.approx(float(batch["rtg"][:, 1].mean()), abs=1e-6)
    assert (p.windows, p.above_data_max, p.at_bound_plan, p.at_bound_data, p.action_gap) == (4, 0.0, 0.0, 0.0, 0.0)


def test_actions_pushed_out_of_the_data_range_count_as_exploitation():
    batch = windows()
    x_hat = batch["x"].copy()
    x_hat[:2, 1, 0] = 1.5  # two windows: one first-action component past the data's range, R = 1.5 + a_1 > 1
    x_hat[3, 1, 1] = -0.995  # and one at its edge
    x_hat[2, 0, :] = 9.0  # index 0 is not the action played (To = 2): no effect
    p = probe_reward(FixedPlanner(x_hat), action_sum_reward(2), batch, n_obs_steps=2)
    assert p.at_bound_plan == pytest.approx(3 / 8) and p.at_bound_data == 0  # 3 of 4 windows × 2 components
    assert p.above_data_max == pytest.approx(2 / 4)
    moved = np.append(1.5 - batch["x"][:2, 1, 0], -0.995 - batch["x"][3, 1, 1])
    assert p.reward_plan - p.reward_data == pytest.approx(float(moved.sum() / 4), abs=1e-6)
    assert p.action_gap == pytest.approx(float(np.sqrt((moved ** 2).sum() / 8)), abs=1e-6)
    r_plan = x_hat[:, 1].sum(-1)
    assert p.reward_plan_q90 == pytest.approx(float(np.quantile(r_plan, 0.9)), abs=1e-6)


def test_a_probe_needs_returns_to_go_and_matching_shapes():
    batch = windows()
    with pytest.raises(ValueError, match="returns-to-go"):
        probe_reward(FixedPlanner(batch["x"]), action_sum_reward(2), {k: v for k, v in batch.items() if k != "rtg"}, 2)
    with pytest.raises(ValueError, match="horizon"):
        probe_reward(FixedPlanner(batch["x"][:, :2]), action_sum_reward(2), batch, 2)


def test_the_probe_of_a_trained_student_is_reproducible_and_scores_the_data_as_its_reward_model(tiny_hopper_runs):
    from ractd.artifact import load_artifact
    from ractd.planning import load_planner
    from ractd.prepare import prepare_data, stage_windows

    student = load_artifact(tiny_hopper_runs / "student")
    reward = load_artifact(tiny_hopper_runs / "reward", expect_stage="reward").net
    cfg = student.config
    data, _ = stage_windows(cfg, prepare_data(cfg), "student")
    batch = data.get_batch(np.arange(32))
    probes = [probe_reward(load_planner(tiny_hopper_runs / "student", "one_step", seed=0), reward, batch,
                           cfg.data.n_obs_steps) for _ in range(2)]
    assert probes[0] == probes[1]
    k = cfg.data.n_obs_steps - 1
    with torch.no_grad():
        by_hand = reward(torch.cat([torch.as_tensor(batch["x"][:, k]), torch.as_tensor(batch["obs"][:, k])], -1))
    assert probes[0].reward_data == pytest.approx(float(by_hand.mean()), abs=1e-6)
    assert probes[0].windows == 32 and 0 <= probes[0].at_bound_plan <= 1 and probes[0].action_gap > 0
