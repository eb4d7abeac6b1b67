"""Objectives: reward inputs and plan rewards against hand computation, each objective's loss and state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from ractd.diffusion import CTMConfig, DDPMConfig, EDMConfig, EDMDenoiser, plan_reward
from ractd.nn import ConditionalUnet1D, InverseDynamics, ResidualMLP
from ractd.train.objectives import (
    InverseDynamicsObjective,
    RewardObjective,
    StudentObjective,
    TeacherObjective,
    reward_inputs,
)


def linear_reward(weights: list[float]):
    """R(z) = z·w: every input column has its own weight, so a wrong column order changes the value."""
    w = torch.tensor(weights, dtype=torch.float64)
    return lambda z: z.double() @ w


# ---------------------------------------------------------------------------------------------- reward inputs


def test_reward_inputs_action_obs_puts_the_action_first():
    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(5, 1, 3, generator=g), "obs": torch.randn(5, 1, 11, generator=g),
             "rtg": torch.randn(5, 1, generator=g)}
    inputs, target = reward_inputs(batch, "action_obs")
    assert inputs.shape == (5, 14) and target.shape == (5,)
    for b in range(5):
        assert torch.equal(inputs[b, :3], batch["x"][b, 0]) and torch.equal(inputs[b, 3:], batch["obs"][b, 0])
        assert target[b] == batch["rtg"][b, 0]


def test_reward_inputs_states_scores_every_state_of_every_window():
    g = torch.Generator().manual_seed(1)
    batch = {"x": torch.randn(3, 16, 4, generator=g), "obs": torch.randn(3, 2, 4, generator=g),
             "rtg": torch.randn(3, 16, generator=g)}
    inputs, target = reward_inputs(batch, "states")
    assert inputs.shape == (48, 4) and target.shape == (48,)
    for b in range(3):
        for h in range(16):
            assert torch.equal(inputs[b * 16 + h], batch["x"][b, h]) and target[b * 16 + h] == batch["rtg"][b, h]


def test_reward_inputs_on_real_reward_windows(tiny_hopper_runs):
    """The pipeline's (a, s) reward windows have H = 1, whatever the planning horizon (docs/algorithm.md §2.3).

    (The Maze2d state windows are used by tests/test_pipeline.py's reward-model threshold test.)
    """
    from ractd.artifact import load_artifact
    from ractd.prepare import prepare_data, stage_windows

    cfg = load_artifact(tiny_hopper_runs / "reward").config
    assert cfg.reward.input == "action_obs" and cfg.data.horizon == 16
    train, val = stage_windows(cfg, prepare_data(cfg), "reward")
    batch = {k: torch.from_numpy(v) for k, v in train.get_batch(np.arange(8)).items()}
    assert batch["x"].shape == (8, 1, 3) and batch["obs"].shape == (8, 1, 11)
    inputs, target = reward_inputs(batch, "action_obs")
    assert inputs.shape == (8, 3 + 11) and target.shape == (8,)
    assert target.abs().max() <= 1 + 1e-6  # min-max normalized returns-to-go
    assert val is not None and len(val) > 0  # a 10 % episode split for validation


# ---------------------------------------------------------------------------------------------- plan rewards


@pytest.mark.parametrize("n_obs_steps", [1, 2, 3])
def test_plan_reward_first_action_uses_index_to_minus_one_and_action_first(n_obs_steps):
    g = torch.Generator().manual_seed(n_obs_steps)
    x_hat, obs = torch.randn(4, 8, 2, generator=g), torch.randn(4, n_obs_steps, 3, generator=g)
    w = [1.0, -2.0, 3.0, 0.5, -0.25]
    r = plan_reward(linear_reward(w), x_hat, obs, "first_action", n_obs_steps)
    k = n_obs_steps - 1
    expected = [sum(wi * zi for wi, zi in zip(w, [*x_hat[b, k].tolist(), *obs[b, k].tolist()], strict=True))
                for b in range(4)]
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-6)
    # state first, or the first action instead of index To − 1, would give other numbers
    wrong = [sum(wi * zi for wi, zi in zip(w, [*obs[b, k].tolist(), *x_hat[b, k].tolist()], strict=True))
             for b in range(4)]
    assert not np.allclose(r.numpy(), wrong)
    if k > 0:
        assert not torch.allclose(r, plan_reward(linear_reward(w), x_hat, obs, "first_action", 1))


def test_plan_reward_sum_states_sums_the_reward_of_every_predicted_state_over_h():
    g = torch.Generator().manual_seed(7)
    x_hat = torch.randn(3, 6, 4, generator=g)

    def reward(z):  # non-linear per row, so Σ_h R(s_h) ≠ R(Σ_h s_h)
        return (z**2).sum(-1) + z[:, 0]

    r = plan_reward(reward, x_hat, torch.zeros(3, 2, 4), "sum_states", 2)
    expected = [sum(float((x_hat[b, h] ** 2).sum() + x_hat[b, h, 0]) for h in range(6)) for b in range(3)]
    assert r.shape == (3,)
    np.testing.assert_allclose(r.numpy(), expected, rtol=1e-5)


def test_plan_reward_with_the_reward_mlp_shapes():
    torch.manual_seed(0)
    net = ResidualMLP(4, [8, 16])
    x_hat = torch.randn(2, 5, 4)
    r = plan_reward(net, x_hat, torch.zeros(2, 2, 4), "sum_states", 2)
    assert r.shape == (2,)
    torch.testing.assert_close(r, torch.stack([net(x_hat[b]).sum() for b in range(2)]))
    mujoco = ResidualMLP(3 + 11, [8, 16])
    assert plan_reward(mujoco, torch.randn(2, 16, 3), torch.randn(2, 1, 11), "first_action", 1).shape == (2,)


# ---------------------------------------------------------------------------------------------- objectives


def tiny_unet(n_time_inputs: int = 1, x_dim: int = 2, cond_dim: int = 3) -> ConditionalUnet1D:
    return ConditionalUnet1D(x_dim, cond_dim, 8, [8, 16], 5, 8, n_time_inputs=n_time_inputs)


def window_batch(b: int = 6, h: int = 8, x_dim: int = 2, obs_dim: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(b, h, x_dim, generator=g) * 2 - 1, "cond": torch.randn(b, obs_dim, generator=g),
            "obs": torch.randn(b, 1, obs_dim, generator=g), "rtg": torch.rand(b, h, generator=g) * 2 - 1}


def test_reward_objective_is_the_mse_to_the_normalized_return():
    torch.manual_seed(0)
    net = ResidualMLP(5, [8])
    batch = window_batch(h=1)
    obj = RewardObjective(net, "action_obs")
    loss, scalars = obj.loss(net, batch, 0)
    pred = net(torch.cat([batch["x"][:, 0], batch["obs"][:, 0]], -1))
    expected = ((pred - batch["rtg"][:, 0]) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(obj.validation_loss(net, batch), expected)
    assert scalars["loss"] is loss


def test_a_reward_aware_teacher_subtracts_the_weighted_plan_reward():
    """L = L_EDM − g·mean R(D(x_σ, σ)) with the same σ and noise (thesis Table 3.4)."""
    torch.manual_seed(0)
    net, reward = tiny_unet(), ResidualMLP(2 + 3, [8]).requires_grad_(False)
    batch = window_batch()
    plain = TeacherObjective(net, "edm", EDMConfig(), DDPMConfig())
    aware = TeacherObjective(net, "edm", EDMConfig(), DDPMConfig(), reward, 0.3, "first_action", 1)
    torch.manual_seed(1)
    l_plain, _ = plain.loss(net, batch, 0)
    torch.manual_seed(1)
    l_aware, s = aware.loss(net, batch, 0)
    torch.testing.assert_close(s["edm"], l_plain.detach())
    torch.testing.assert_close(l_aware, l_plain + 0.3 * s["reward"])  # s["reward"] = −mean R
    assert s["reward"] != 0
    l_aware.backward()
    assert all(p.grad is None for p in reward.parameters())  # the reward model stays frozen


def test_a_reward_aware_teacher_needs_edm_and_a_reward_model():
    with pytest.raises(ValueError, match="reward-aware teacher needs kind='edm' and a trained reward model"):
        TeacherObjective(tiny_unet(), "edm", EDMConfig(), DDPMConfig(), None, 0.1)
    with pytest.raises(ValueError, match="kind='edm'"):
        TeacherObjective(tiny_unet(), "ddpm", EDMConfig(), DDPMConfig(), ResidualMLP(5, [8]), 0.1)


def test_the_ddpm_teacher_logs_its_loss():
    torch.manual_seed(0)
    net = tiny_unet()
    loss, scalars = TeacherObjective(net, "ddpm", EDMConfig(), DDPMConfig()).loss(net, window_batch(), 0)
    assert loss.ndim == 0 and torch.isfinite(loss) and set(scalars) == {"loss"}


def student_objective(reward_weight: float = 1.0, target_decay: float = 0.0, reward: bool = True):
    torch.manual_seed(0)
    student, teacher = tiny_unet(2), tiny_unet(1)
    reward_net = ResidualMLP(2 + 3, [8]) if reward else None
    cfg = CTMConfig(reward_weight=reward_weight, target_decay=target_decay)
    return StudentObjective(student, EDMDenoiser(teacher, EDMConfig(sigma_data=0.4)), reward_net, cfg,
                            "first_action", 1)


def test_the_student_freezes_teacher_and_reward_and_starts_its_target_at_the_student():
    obj = student_objective()
    assert not obj.teacher.training and not any(p.requires_grad for p in obj.teacher.parameters())
    assert not any(p.requires_grad for p in obj.reward_net.parameters())
    for k, v in obj.net.state_dict().items():
        assert torch.equal(obj.target.net.state_dict()[k], v)
    assert obj.trainable() is obj.net
    assert obj.target.edm == obj.edm == EDMConfig(sigma_data=0.4)  # the teacher's constants, not the defaults


def test_the_student_loss_logs_its_three_terms_and_only_the_student_gets_gradients():
    obj = student_objective(reward_weight=0.5)
    torch.manual_seed(3)
    loss, s = obj.loss(obj.net, window_batch(), 0)
    torch.testing.assert_close(loss.detach(), s["ctm"] + s["dsm"] + 0.5 * s["reward"])
    assert s["reward"] != 0
    loss.backward()
    assert any(p.grad is not None for p in obj.net.parameters())
    for frozen in (obj.teacher, obj.target, obj.reward_net):
        assert all(p.grad is None for p in frozen.parameters())


def test_ctd_is_the_student_without_a_reward_model():
    obj = student_objective(reward_weight=0.0, reward=False)
    torch.manual_seed(3)
    loss, s = obj.loss(obj.net, window_batch(), 0)
    assert s["reward"] == 0
    torch.testing.assert_close(loss.detach(), s["ctm"] + s["dsm"])


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_the_target_net_follows_the_student_after_each_step(decay):
    obj = student_objective(target_decay=decay)
    before = copy.deepcopy(obj.target.net.state_dict())
    with torch.no_grad():
        for p in obj.net.parameters():
            p.add_(1.0)
    obj.after_optimizer_step(obj.net, 0)
    for (name, p_t), p in zip(obj.target.net.named_parameters(), obj.net.parameters(), strict=True):
        torch.testing.assert_close(p_t, decay * before[name] + (1 - decay) * p)


def test_the_target_net_survives_a_checkpoint_through_extra_state():
    obj = student_objective(target_decay=0.5)
    with torch.no_grad():
        for p in obj.target.parameters():
            p.mul_(-3.0)
    state = obj.extra_state()
    assert state and all(k.startswith("target.") for k in state)
    fresh = student_objective(target_decay=0.5)
    assert not all(torch.equal(fresh.target.net.state_dict()[k.removeprefix("target.")], v)
                   for k, v in state.items())
    fresh.load_extra_state({k: v.clone() for k, v in state.items()})
    for k, v in state.items():
        assert torch.equal(fresh.target.net.state_dict()[k.removeprefix("target.")], v)


def test_inverse_dynamics_regresses_the_first_action_from_the_transition():
    torch.manual_seed(0)
    net = InverseDynamics(4, 2, [16])
    g = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(5, 2, 2, generator=g), "obs": torch.randn(5, 2, 4, generator=g)}
    loss, _ = InverseDynamicsObjective(net).loss(net, batch, 0)
    expected = nn.functional.mse_loss(net(batch["obs"][:, 0], batch["obs"][:, 1]), batch["x"][:, 0])
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_frozen_nets_mode_decides_whether_the_teacher_and_target_see_dropout(mode):
    """eval: the teacher's Heun steps and the target's jumps are deterministic; train (the released code): not."""
    torch.manual_seed(0)
    student = ConditionalUnet1D(2, 3, 8, [8, 16], 5, 8, n_time_inputs=2, dropout=0.5)
    teacher = ConditionalUnet1D(2, 3, 8, [8, 16], 5, 8, dropout=0.5)
    obj = StudentObjective(student, EDMDenoiser(teacher, EDMConfig(sigma_data=0.4)), None, CTMConfig(),
                           "first_action", 1, frozen_nets_mode=mode)
    assert obj.teacher.training == obj.target.training == (mode == "train")
    x, cond = torch.randn(4, 8, 2), torch.randn(4, 3)
    sigma, s = torch.full((4,), 1.0), torch.full((4,), 0.002)
    with torch.no_grad():
        pairs = [(obj.teacher(x, sigma, cond), obj.teacher(x, sigma, cond)),
                 (obj.target.jump(x, sigma, s, cond), obj.target.jump(x, sigma, s, cond))]
    for a, b in pairs:
        assert torch.equal(a, b) == (mode == "eval")
    with pytest.raises(ValueError, match="frozen_nets_mode must be 'eval' or 'train'"):
        StudentObjective(student, EDMDenoiser(teacher, EDMConfig()), None, CTMConfig(), "first_action", 1,
                         frozen_nets_mode="dropout")
