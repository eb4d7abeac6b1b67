"""The behaviour policies shipped inside the package: complete, well-formed, and behaving as recorded.

Every shipped policy (random, medium, expert and each learner snapshot of the medium-replay stand-in) is
loaded without any RL library, checked against its manifest (dimensions, observation-normalization
statistics, recipe), and rolled out on the short evaluation its training run recorded: 8 episodes cut at 100
steps from fixed reset seeds. Its deterministic action on a probe observation must match to float precision,
and its truncated return must lie within 3 standard errors of the recorded mean, a band that must exclude
the uniform random policy's recorded value for the medium and expert policies (so a policy that moves no
better than chance, e.g. with its normalization statistics lost, cannot pass).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ractd
from ractd.data.generate.policies import GaussianMLPPolicy, UniformRandomPolicy
from ractd.data.generate.ppo import CHECK, load_behaviour_policy, read_manifest, shipped_policy_dir
from ractd.data.generate.recipes import RECIPES
from ractd.data.generate.rollout import evaluate_returns

ENVS = sorted(RECIPES)


def shipped_names() -> list[tuple[str, str]]:
    """(env, policy name) of every shipped policy; a folder without a manifest gives one case that fails."""
    names = []
    for env in ENVS:
        try:
            names += [(env, name) for name in sorted(read_manifest(shipped_policy_dir(env))["policies"])]
        except (FileNotFoundError, ValueError):
            names.append((env, "expert"))
    return names


@pytest.mark.parametrize("env_id", ENVS)
def test_manifest_describes_a_complete_run_of_the_current_recipe(env_id: str) -> None:
    manifest = read_manifest(shipped_policy_dir(env_id))
    env = gym.make(env_id)
    assert manifest["env_id"] == env_id
    assert (manifest["obs_dim"], manifest["act_dim"]) == (env.observation_space.shape[0], env.action_space.shape[0])
    assert manifest["recipe"] == RECIPES[env_id].as_dict()  # retrain after changing a recipe
    assert manifest["check"] == CHECK
    policies = manifest["policies"]
    assert {"random", "medium", "expert"} <= set(policies)
    medium, expert = policies["medium"], policies["expert"]
    assert 0 < medium["timesteps"] <= expert["timesteps"] <= manifest["trained_steps"]
    # D4RL's medium: about a third of the expert's return (the first snapshot to reach it)
    assert medium["curve_return_mean"] >= expert["curve_return_mean"] / 3
    # the learner snapshots tile the steps before the medium one, in training order
    bounds = [policies[n]["replays_steps"] for n in manifest["medium_replay"]]
    assert bounds and bounds[0][0] == 0 and bounds[-1][1] == medium["timesteps"]
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(bounds, bounds[1:], strict=False))


@pytest.mark.parametrize(("env_id", "name"), shipped_names())
def test_policy_loads_and_behaves_as_recorded(env_id: str, name: str) -> None:
    folder = shipped_policy_dir(env_id)
    manifest = read_manifest(folder)
    entry = manifest["policies"][name]
    policy = load_behaviour_policy(folder, name)
    obs_dim, act_dim = manifest["obs_dim"], manifest["act_dim"]
    if entry["kind"] == "uniform":
        assert isinstance(policy, UniformRandomPolicy)
    else:
        assert isinstance(policy, GaussianMLPPolicy)
        assert policy.weights[0][0].shape[1] == obs_dim and policy.weights[-1][0].shape[0] == act_dim
        for (w, b), (w_next, _) in zip(policy.weights, policy.weights[1:], strict=False):
            assert w.shape[0] == b.shape[0] == w_next.shape[1]
        assert policy.log_std.shape == (act_dim,)
        assert policy.obs_mean is not None and policy.obs_mean.shape == (obs_dim,)
        assert policy.obs_var.shape == (obs_dim,) and np.all(policy.obs_var > 0)
        probe, _ = gym.make(env_id).reset(seed=CHECK["seed"])
        np.testing.assert_allclose(policy.mean_action(probe[None])[0], entry["probe_action"], atol=1e-5)
    returns = evaluate_returns(env_id, policy, CHECK["episodes"], CHECK["seed"], horizon=CHECK["horizon"])
    recorded = entry["truncated_return_mean"]
    tolerance = 3 * entry["truncated_return_std"] / np.sqrt(CHECK["episodes"])
    assert abs(returns.mean() - recorded) <= tolerance, (returns.mean(), recorded, tolerance)
    if name in ("medium", "expert"):
        random_value = manifest["policies"]["random"]["truncated_return_mean"]
        assert recorded - tolerance > random_value, "the check would not tell this policy from a random one"


def test_shipped_files_are_small_and_declared_as_package_data() -> None:
    package = Path(ractd.__file__).parent
    files = [p for env in ENVS for p in shipped_policy_dir(env).iterdir()]
    assert sum(p.stat().st_size for p in files) < 5_000_000
    pyproject = package.parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    tomllib = pytest.importorskip("tomllib")
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["ractd"]
    undeclared = [p for p in files if not any(fnmatch.fnmatch(p.relative_to(package).as_posix(), pat)
                                              for pat in patterns)]
    assert not undeclared, undeclared
