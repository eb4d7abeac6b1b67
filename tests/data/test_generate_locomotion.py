"""Locomotion dataset generation: behaviour policies, rollouts, D4RL levels (tiny PPO run on Hopper-v5)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from ractd.data.d4rl import read_d4rl_hdf5
from ractd.data.dataset import OfflineDataset
from ractd.data.generate.locomotion import generate_locomotion, parse_locomotion_name
from ractd.data.generate.policies import GaussianMLPPolicy, UniformRandomPolicy
from ractd.data.generate.ppo import (
    Snapshot,
    load_behaviour_policy,
    read_manifest,
    select_snapshots,
    train_behaviour_policies,
)
from ractd.data.generate.recipes import recipe_for
from ractd.data.generate.rollout import rollout_transitions

ENV = "Hopper-v5"
TRAIN_STEPS = 2048  # four PPO updates of 2 envs x 256 steps
TINY = recipe_for(ENV).with_overrides({"n_steps": 256, "batch_size": 64}, n_envs=2, snapshot_every=512,
                                      eval_episodes=3)
TRAIN = {"total_steps": TRAIN_STEPS, "recipe": TINY, "progress": False, "log": lambda msg: None}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root whose hopper policies come from a tiny cached PPO run; Minari writes under it."""
    root = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
        train_behaviour_policies(ENV, root / "hopper-policies", seed=3, **TRAIN)
        yield root


def generate(root: Path, name: str, steps: int | None, seed: int = 0, policies: Path | None = None, **kw) -> dict:
    """Generate `name` under `root` from the tiny PPO run's policies (`policies`, default root's)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
        return generate_locomotion(name, root / name, seed, steps, progress=False, n_envs=4,
                                   policy_dir=policies or root / "hopper-policies", **kw)


def resimulate(arrays: dict[str, np.ndarray]) -> None:
    """Replay every episode from its first recorded simulator state with the recorded actions and compare
    observations, rewards, terminations, next observations and episode returns with the data."""
    env = gym.make(ENV)
    env.reset(seed=0)
    sim = env.unwrapped
    ds = OfflineDataset.from_arrays(arrays)
    assert ds.num_steps == len(arrays["rewards"]), "every step belongs to a flagged episode"
    n = ds.num_steps
    obs, next_obs, qpos = np.zeros((n, 11)), np.zeros((n, 11)), np.zeros((n, 6))
    rewards, terminals = np.zeros(n), np.zeros(n, bool)
    for start, end in zip(ds.episode_starts, ds.episode_ends, strict=True):
        sim.set_state(arrays["infos/qpos"][start], arrays["infos/qvel"][start])  # then only actions
        for t in range(start, end):
            obs[t], qpos[t] = sim._get_obs(), sim.data.qpos
            next_obs[t], rewards[t], terminals[t], _, _ = sim.step(arrays["actions"][t])
    np.testing.assert_allclose(obs, arrays["observations"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(qpos, arrays["infos/qpos"], atol=1e-9)
    np.testing.assert_allclose(next_obs, arrays["next_observations"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rewards, arrays["rewards"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(terminals, arrays["terminals"])  # terminal ⇔ the env terminated
    resimulated_returns = np.add.reduceat(rewards, ds.episode_starts)
    np.testing.assert_allclose(ds.episode_returns(), resimulated_returns, rtol=1e-5)
    assert ds.episode_lengths.max() <= 1000


def test_names_parse_and_reject() -> None:
    assert parse_locomotion_name("hopper-medium-replay") == ("hopper", "medium-replay")
    assert parse_locomotion_name("walker2d-medium-expert-v2") == ("walker2d", "medium-expert")
    with pytest.raises(ValueError, match="ant-medium.*expected <env>-<level>"):
        parse_locomotion_name("ant-medium")
    with pytest.raises(ValueError, match="hopper-good"):
        parse_locomotion_name("hopper-good")


def test_numpy_policy_matches_sb3_actor(tmp_path: Path) -> None:
    """The numpy actor + VecNormalize statistics reproduce SB3's deterministic actions; save/load is exact."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make(ENV)]))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(128)  # moves the weights and the observation statistics away from their initial values
    venv.training = False
    raw = np.random.default_rng(0).normal(size=(32, 11)) * np.array([1.0] * 5 + [3.0] * 6)
    expected, _ = model.predict(venv.normalize_obs(raw), deterministic=True)
    policy = GaussianMLPPolicy.from_sb3(model, venv)
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(policy.act(raw, rng, deterministic=True), expected, atol=1e-5)
    policy.save(tmp_path / "p")
    loaded = GaussianMLPPolicy.load(tmp_path / "p")
    np.testing.assert_array_equal(loaded.mean_action(raw), policy.mean_action(raw))
    np.testing.assert_array_equal(loaded.log_std, policy.log_std)
    # stochastic actions: N(μ, σ²) clipped to the box; the mean of unclipped draws converges to μ
    many = np.repeat(raw[:1], 20000, axis=0)
    loaded.log_std = np.full_like(loaded.log_std, -3.0)  # σ ≈ 0.05 keeps draws inside [-1, 1]
    mu = np.clip(loaded.mean_action(raw[:1])[0], -0.8, 0.8)
    loaded.weights[-1] = (loaded.weights[-1][0] * 0, mu.astype(np.float32))  # μ(s) = mu for every s
    draws = loaded.act(many, rng)
    np.testing.assert_allclose(draws.mean(0), mu, atol=3e-3)
    np.testing.assert_allclose(draws.std(0), np.exp(-3.0), rtol=0.05)


def test_rollouts_follow_the_env_and_close_every_episode() -> None:
    data = rollout_transitions(ENV, UniformRandomPolicy.for_env(ENV), 2500, seed=1, n_envs=3, progress=False)
    assert {len(v) for v in data.values()} == {2500}
    assert data["observations"].dtype == np.float32 and data["terminals"].dtype == bool
    assert data["terminals"].sum() > 50  # a random hopper falls within tens of steps
    resimulate(data)
    # one stream per env (budgets 834, 833, 833), each closed at its budget
    assert data["terminals"][833] or data["timeouts"][833]
    assert data["terminals"][-1] or data["timeouts"][-1]


def test_rollouts_are_deterministic_given_the_seed() -> None:
    policy = UniformRandomPolicy.for_env(ENV)
    a = rollout_transitions(ENV, policy, 600, seed=5, n_envs=2, progress=False)
    b = rollout_transitions(ENV, policy, 600, seed=5, n_envs=2, progress=False)
    c = rollout_transitions(ENV, policy, 600, seed=6, n_envs=2, progress=False)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["actions"], c["actions"])


def test_medium_is_the_first_snapshot_at_a_third_of_the_best() -> None:
    curve = [(0, 900.0), (1000, 300.0), (2000, 1200.0), (3000, 900.0), (4000, 3300.0), (5000, 3000.0)]
    snaps = [Snapshot(t, 0.0, np.array([r - 10, r + 10]), None) for t, r in curve]
    medium, expert = select_snapshots(snaps, 1 / 3)
    assert (medium.timesteps, expert.timesteps) == (2000, 4000)  # 1200 ≥ 3300/3 = 1100; step 0 excluded
    medium, expert = select_snapshots(snaps, 0.95)
    assert medium.timesteps == expert.timesteps == 4000
    negative = [Snapshot(t, 0.0, np.array([r]), None) for t, r in [(1, -300.0), (2, -100.0)]]
    medium, expert = select_snapshots(negative, 1 / 3)  # nothing reaches -33: medium falls back to expert
    assert medium.timesteps == expert.timesteps == 2


def test_training_cache_is_reused_and_guards_its_size(root: Path) -> None:
    manifest = train_behaviour_policies(ENV, root / "hopper-policies")  # saved: returns immediately
    assert manifest["total_steps"] == TRAIN_STEPS and manifest["seed"] == 3
    assert manifest["recipe"] == TINY.as_dict() and (manifest["obs_dim"], manifest["act_dim"]) == (11, 3)
    medium, expert = manifest["policies"]["medium"], manifest["policies"]["expert"]
    assert 0 < medium["timesteps"] <= expert["timesteps"] <= TRAIN_STEPS
    assert medium["curve_return_mean"] >= expert["curve_return_mean"] / 3
    curve = (root / "hopper-policies" / "training_curve.csv").read_text().splitlines()
    assert curve[0] == "steps,seconds,eval_return_mean,eval_return_std"
    assert [int(line.split(",")[0]) for line in curve[1:]] == [0, 512, 1024, 1536, 2048]
    # the learner snapshots before the medium one tile [0, medium step) in training order
    learner = [manifest["policies"][n] for n in manifest["medium_replay"]]
    assert [e["timesteps"] for e in learner] == list(range(0, medium["timesteps"], 512))
    assert [e["replays_steps"] for e in learner] == [[t, min(t + 512, medium["timesteps"])]
                                                     for t in range(0, medium["timesteps"], 512)]
    with pytest.raises(ValueError, match="trained for 2048 steps.*total_steps=9999"):
        train_behaviour_policies(ENV, root / "hopper-policies", total_steps=9999)
    with pytest.raises(FileNotFoundError, match="no trained behaviour policies"):
        load_behaviour_policy(root / "nowhere", "medium")
    with pytest.raises(ValueError, match="no policy 'learner-999'"):
        load_behaviour_policy(root / "hopper-policies", "learner-999")


def test_outdated_policy_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "policies.json").write_text(json.dumps({"env_id": ENV, "total_steps": 10}))
    with pytest.raises(ValueError, match="older layout.*--train-policies"):
        read_manifest(tmp_path)


def test_ppo_training_is_deterministic_given_the_seed(root: Path, tmp_path: Path) -> None:
    again = train_behaviour_policies(ENV, tmp_path / "p", seed=3, **TRAIN)
    cached = json.loads((root / "hopper-policies" / "policies.json").read_text())
    assert again["policies"] == cached["policies"] and again["medium_replay"] == cached["medium_replay"]
    a = load_behaviour_policy(root / "hopper-policies", "expert")
    b = load_behaviour_policy(tmp_path / "p", "expert")
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)
    np.testing.assert_array_equal(a.obs_mean, b.obs_mean)


def test_medium_replay_replays_the_learner_snapshots_until_the_medium_one(root: Path) -> None:
    summary = generate(root, "hopper-medium-replay", steps=None)
    manifest = read_manifest(root / "hopper-policies")
    arrays = read_d4rl_hdf5(root / "hopper-medium-replay" / "hopper-medium-replay.hdf5")
    assert summary["steps"] == len(arrays["rewards"]) == manifest["policies"]["medium"]["timesteps"]
    assert np.abs(arrays["actions"]).max() <= 1.0  # what the env executed (actions clipped to the box)
    resimulate(arrays)
    # segment j is learner snapshot j rolled out for the steps it collected in training
    first = load_behaviour_policy(root / "hopper-policies", "learner-000")
    segment = rollout_transitions(ENV, first, 512, [0, 3, 0], n_envs=4, progress=False)
    for k, v in segment.items():
        np.testing.assert_array_equal(arrays[k][:512], v, err_msg=k)
    assert not np.array_equal(arrays["actions"][512:1024], segment["actions"])  # the next snapshot's
    # a size limit keeps the earliest snapshots' transitions and closes the cut episode
    small = generate(root, "hopper-medium-replay", steps=700, minari=False)
    cut = read_d4rl_hdf5(root / "hopper-medium-replay" / "hopper-medium-replay.hdf5")
    assert small["steps"] == len(cut["rewards"]) == 700
    np.testing.assert_array_equal(cut["actions"][:512], arrays["actions"][:512])
    assert cut["terminals"][-1] or cut["timeouts"][-1]


def test_generated_dataset_files_and_layout(root: Path) -> None:
    summary = generate(root, "hopper-medium", steps=3000, seed=2)
    out = root / "hopper-medium"
    for f in ("hopper-medium.hdf5", "card.json", "returns.png", "generation.json"):
        assert (out / f).is_file(), f
    arrays = read_d4rl_hdf5(out / "hopper-medium.hdf5")
    assert set(arrays) >= {
        "observations",
        "actions",
        "rewards",
        "terminals",
        "timeouts",
        "next_observations",
        "infos/qpos",
        "infos/qvel",
    }
    ds = OfflineDataset.from_arrays(arrays)
    assert ds.num_steps == summary["steps"] == 3000 and ds.num_episodes == summary["episodes"]
    assert ds.obs_dim == 11 and ds.act_dim == 3
    returns = ds.episode_returns()
    assert summary["return_mean"] == pytest.approx(returns.mean())
    hopper_random, hopper_expert = -20.272305, 3234.3  # D4RL v2 references
    normalized = 100 * (returns.mean() - hopper_random) / (hopper_expert - hopper_random)
    assert summary["normalized_mean"] == pytest.approx(normalized)
    card = json.loads((out / "card.json").read_text())
    assert card["episodes"] == ds.num_episodes
    generation = json.loads((out / "generation.json").read_text())
    assert generation["seed"] == 2 and generation["policies"]["total_steps"] == TRAIN_STEPS
    from ractd.data.d4rl import read_d4rl_metadata

    assert read_d4rl_metadata(out / "hopper-medium.hdf5")["policies_shipped"] is False  # the tiny run's
    assert generation["behaviour_return"]["medium"] == summary["behaviour_return"]["medium"]
    # the Minari copy holds the same transitions
    from ractd.data.minari_io import load_minari

    m = load_minari("ractd/hopper-medium-v0", root=root / "minari")
    np.testing.assert_array_equal(m.actions, ds.actions)
    np.testing.assert_array_equal(m.rewards, ds.rewards)
    np.testing.assert_array_equal(m.episode_ends, ds.episode_ends)


def test_levels_compose_like_d4rl_and_are_deterministic(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """medium-expert = medium ∪ expert in equal parts; the same seed regenerates identical data."""

    def read(base: Path, name: str) -> dict[str, np.ndarray]:
        return read_d4rl_hdf5(base / name / f"{name}.hdf5")

    generate(root, "hopper-expert", steps=1000, seed=4, minari=False)
    generate(root, "hopper-medium", steps=1000, seed=4, minari=False)
    expert, medium = read(root, "hopper-expert"), read(root, "hopper-medium")
    assert not np.array_equal(expert["actions"], medium["actions"])
    # fresh rollouts (no sibling datasets under tmp_path)
    generate(
        tmp_path,
        "hopper-medium-expert",
        steps=2000,
        seed=4,
        minari=False,
        policies=root / "hopper-policies",
    )
    fresh = read(tmp_path, "hopper-medium-expert")
    for k in medium:
        np.testing.assert_array_equal(fresh[k], np.concatenate([medium[k], expert[k]]), err_msg=k)
    # next to matching medium and expert datasets, their arrays are reused: no rollout at all
    import ractd.data.generate.locomotion as locomotion

    monkeypatch.setattr(locomotion, "rollout_transitions", lambda *a, **k: pytest.fail("rolled out again"))
    generate(root, "hopper-medium-expert", steps=2000, seed=4, minari=False)
    for k in medium:
        np.testing.assert_array_equal(read(root, "hopper-medium-expert")[k], fresh[k], err_msg=k)
    monkeypatch.undo()
    generate(root, "hopper-expert", steps=1000, seed=4, minari=False)
    for k, v in read(root, "hopper-expert").items():
        np.testing.assert_array_equal(v, expert[k], err_msg=k)


def test_random_level_needs_no_policies(root: Path, tmp_path: Path) -> None:
    summary = generate(tmp_path, "hopper-random", steps=1500, minari=False)
    assert not (tmp_path / "hopper-policies").exists()
    arrays = read_d4rl_hdf5(tmp_path / "hopper-random" / "hopper-random.hdf5")
    assert summary["behaviour_return"] == {} and summary["steps"] == 1500
    # a uniform random hopper: returns near D4RL's random reference (normalized ≈ 0-3)
    assert -1.0 < summary["normalized_mean"] < 5.0
    assert np.all(np.abs(arrays["actions"]) <= 1.0) and arrays["actions"].std() > 0.5
