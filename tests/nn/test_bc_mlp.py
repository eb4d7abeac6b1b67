"""The BC-MLP baseline: its size, its input shapes, and its cross-entropy objective learning a discrete rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ractd.nn.mlp import BCPolicyMLP
from ractd.train.bc import BCObjective, action_indices, bc_cross_entropy
from ractd.train.protocols import check_objective


def test_bc_mlp_has_the_baselines_75013_parameters() -> None:
    net = BCPolicyMLP()
    assert sum(p.numel() for p in net.parameters()) == 75_013  # 30·256+256 + 256·256+256 + 256·5+5
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(30, 256), (256, 256), (256, 5)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net.modules()) == 2


def test_bc_mlp_accepts_rows_of_features_and_refuses_other_shapes() -> None:
    torch.manual_seed(0)
    net = BCPolicyMLP()
    obs = torch.randn(4, 5, 6)
    assert torch.equal(net(obs), net(obs.reshape(4, 30)))
    assert net.act(obs).shape == (4,)
    with pytest.raises(ValueError, match=r"30 numbers .*got shape \(4, 29\)"):
        net(torch.randn(4, 29))


def test_cross_entropy_is_minus_log_softmax_of_the_expert_action_for_ids_and_one_hot() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0, 0.0]])
    ids = torch.tensor([1, 0])
    expected = (math.log(5) + (-2.0 + math.log(math.exp(2) + 4))) / 2
    assert bc_cross_entropy(logits, ids).item() == pytest.approx(expected, rel=1e-6)
    one_hot = torch.nn.functional.one_hot(ids, 5).float()
    assert bc_cross_entropy(logits, one_hot).item() == pytest.approx(expected, rel=1e-6)
    assert torch.equal(action_indices(2 * one_hot - 1), ids)  # a min-max-normalized one-hot still names the action
    with pytest.raises(ValueError, match="do not match logits"):
        bc_cross_entropy(logits, torch.tensor([1, 0, 2]))


def test_bc_objective_learns_a_discrete_rule_from_transitions_and_from_windows() -> None:
    """The expert's action is the argmax of the first five observation numbers; 300 Adam steps of cross-entropy
    must imitate it on fresh observations."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        obs = torch.as_tensor(rng.standard_normal((n, 30)), dtype=torch.float32)
        return obs, obs[:, :5].argmax(dim=1)

    net = BCPolicyMLP()
    objective = BCObjective(net, obs_key="observations", action_key="actions")
    check_objective(objective)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for step in range(300):
        obs, act = data(128)
        loss, scalars = objective.loss(net, {"observations": obs, "actions": act}, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    obs, act = data(2000)
    assert (net.act(obs) == act).float().mean().item() > 0.9
    assert scalars["accuracy"].item() > 0.8

    # windows as WindowDataset makes them: obs (B, To, D), x = normalized one-hot actions (B, H, K)
    window = {"obs": obs[:, None], "x": 2 * torch.nn.functional.one_hot(act, 5).float()[:, None].repeat(1, 4, 1) - 1}
    windowed = BCObjective(net).validation_loss(net, window)
    assert windowed.item() == pytest.approx(bc_cross_entropy(net(obs), act).item(), rel=1e-6)
    with pytest.raises(KeyError, match="needs batch key 'obs'"):
        BCObjective(net).loss(net, {"observations": obs, "x": act}, 0)


def test_bc_objective_runs_in_the_training_loop(tmp_path) -> None:
    """The one training loop trains the BC-MLP from a batch source of observations and integer action ids."""
    from ractd.loop_config import LoopConfig
    from ractd.train import train

    rng = np.random.default_rng(1)
    obs = rng.standard_normal((512, 30)).astype(np.float32)
    actions = obs[:, :5].argmax(axis=1).astype(np.int64)

    class Transitions:
        def __len__(self) -> int:
            return len(obs)

        def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
            return {"observations": obs[indices], "actions": actions[indices]}

    torch.manual_seed(0)
    net = BCPolicyMLP()
    before = bc_cross_entropy(net(torch.as_tensor(obs)), torch.as_tensor(actions)).item()
    cfg = LoopConfig(epochs=8, batch_size=64, lr=1e-3, warmup_steps=1, checkpoint_every=0, ema=False,
                     tensorboard=False)
    result = train(BCObjective(net, "observations", "actions"), Transitions(), cfg, tmp_path, progress=False)
    after = bc_cross_entropy(net(torch.as_tensor(obs)), torch.as_tensor(actions)).item()
    assert result.finished and after < 0.5 * before
    assert 0.0 <= result.last_scalars["accuracy"] <= 1.0
