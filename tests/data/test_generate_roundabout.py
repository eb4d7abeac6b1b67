"""Roundabout experts and expert data: PPO's size, the saved numpy expert against stable-baselines3, and datasets
that hold only episodes that did not crash, with the composition tokens of their observations."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("highway_env")

from ractd.data.d4rl import load_d4rl  # noqa: E402
from ractd.data.generate import roundabout as rb  # noqa: E402
from ractd.data.generate.extras import MissingExtraError  # noqa: E402
from ractd.envs.roundabout import composition_tokens, make_roundabout_env  # noqa: E402


def sb3_ppo(traffic: str = "car", seed: int = 0):
    sb3 = pytest.importorskip("stable_baselines3")
    recipe = rb.expert_recipe(traffic)
    return sb3.PPO("MlpPolicy", make_roundabout_env(traffic), seed=seed, device="cpu",
                   policy_kwargs={"net_arch": {"pi": recipe.net["pi"], "vf": recipe.net["vf"]}}, **recipe.ppo)


def idle_observations(n_episodes: int = 3) -> np.ndarray:
    """Observations met by an IDLE driver in mixed traffic (varied scenes, not only the first one)."""
    episodes = rb.run_episodes(rb.ConstantPolicy(), "mixed", rb.episode_seeds(5, 0, n_episodes))
    return np.concatenate([e.observations for e in episodes])


def test_recipes_are_highway_envs_ppo_example_at_the_two_budgets() -> None:
    recipes = rb.expert_recipes("cpu")
    assert list(recipes) == ["car", "bicycle", "train"]
    car = recipes["car"]
    assert car.ppo == {"n_steps": 768, "batch_size": 64, "n_epochs": 10, "learning_rate": 5e-4, "gamma": 0.8}
    assert (car.total_steps, car.n_envs, car.net["pi"], car.net["vf"]) == (50_000, 2, [256, 256], [256, 256])
    assert rb.expert_recipe("bicycle", "paper").total_steps == 200_000
    assert rb.ExpertRecipe.from_dict(car.as_dict()) == car
    with pytest.raises(ValueError, match="unknown roundabout traffic 'truck'"):
        rb.expert_recipe("truck")
    with pytest.raises(ValueError, match="unknown scale 'gpu'"):
        rb.expert_recipe("car", "gpu")


def test_ppo_policy_has_148998_parameters_and_its_numpy_copy_matches_it() -> None:
    """Table sizes: SB3's MlpPolicy with 256-256 actor and critic on the 5 × 6 observation and 5 actions."""
    import torch

    model = sb3_ppo()
    assert sum(p.numel() for p in model.policy.parameters()) == 148_998
    policy = rb.CategoricalMLPPolicy.from_sb3(model)
    assert policy.num_parameters == 148_998
    obs = idle_observations()
    with torch.no_grad():
        t_obs = torch.as_tensor(obs.reshape(-1, 5, 6))
        probs = model.policy.get_distribution(t_obs).distribution.probs.numpy()
        values = model.policy.predict_values(t_obs).numpy()[:, 0]
    logits = policy.logits(obs)
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), probs, atol=1e-6)
    np.testing.assert_allclose(policy.value(obs), values, atol=1e-5)
    sb3_actions, _ = model.predict(obs.reshape(-1, 5, 6), deterministic=True)
    assert np.array_equal(policy.act(obs, np.random.default_rng(0)), sb3_actions)
    assert len(set(sb3_actions.tolist())) > 1  # an untrained net: the comparison covers several actions


def test_saved_expert_reproduces_its_actions_exactly(tmp_path: Path) -> None:
    model = sb3_ppo(seed=3)
    policy = rb.CategoricalMLPPolicy.from_sb3(model, info={"note": "round trip"})
    policy.save(tmp_path / "expert")
    loaded = rb.load_expert(tmp_path / "expert")
    assert loaded.info == {"note": "round trip"} and loaded.activation == "tanh"
    for (w, b), (w2, b2) in zip(policy.weights + policy.value_weights, loaded.weights + loaded.value_weights,
                                strict=True):
        assert np.array_equal(w, w2) and np.array_equal(b, b2)
    obs = idle_observations()
    assert np.array_equal(loaded.act(obs, np.random.default_rng(0)), policy.act(obs, np.random.default_rng(0)))
    sampled = [p.act(obs, np.random.default_rng(7), deterministic=False) for p in (policy, loaded)]
    assert np.array_equal(*sampled)
    assert np.array_equal(loaded.value(obs), policy.value(obs))
    (tmp_path / "expert.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="expert.safetensors: file not found"):
        rb.load_expert(tmp_path / "expert")


def test_sampled_actions_follow_the_softmax() -> None:
    w = np.zeros((5, 30), np.float32)
    b = np.log(np.array([0.1, 0.2, 0.3, 0.25, 0.15], np.float32))
    policy = rb.CategoricalMLPPolicy(weights=[(w, b)], activation="tanh")
    draws = policy.act(np.zeros((20_000, 30), np.float32), np.random.default_rng(0), deterministic=False)
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / 20_000, np.exp(b), atol=0.01)


def test_tiny_ppo_expert_trains_saves_and_is_reused(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    recipe = rb.expert_recipe("car", total_steps=128, vec_env="dummy", eval_episodes=2,
                              ppo={"n_steps": 64, "batch_size": 64, "n_epochs": 1})
    info = rb.train_expert(recipe, tmp_path / "car", seed=0, log=lambda _: None)
    assert info["trained_steps"] == 128 and info["recipe"] == recipe.as_dict()
    assert info["evaluation"]["episodes"] == 2 and info["passed"] == (info["evaluation"]["no_crash_rate"] >= 0.85)
    expert = rb.load_expert(tmp_path / "car")
    assert expert.num_parameters == 148_998
    # the numpy copy read back from disk acts as stable-baselines3's predict did before saving
    assert rb.probe_actions(expert, expert.info).tolist() == info["probe"]["actions"]
    assert rb.train_expert(recipe, tmp_path / "car", seed=0) == info  # saved: not retrained
    with pytest.raises(ValueError, match="another recipe or seed"):
        rb.train_expert(recipe, tmp_path / "car", seed=1)


def test_training_without_stable_baselines3_names_the_extra(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # what `import` sees when it is not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'ractd\[generate\]'"):
        rb.train_expert(rb.expert_recipe("car"), tmp_path / "car")


def replay_crashes(traffic: str, seed: int, actions: np.ndarray) -> tuple[bool, np.ndarray]:
    """Re-run an episode from its reset seed with its recorded actions: (crashed, observations)."""
    env = make_roundabout_env(traffic)
    obs, _ = env.reset(seed=int(seed))
    observations, crashed = [obs.reshape(-1)], False
    for a in actions:
        obs, _, terminated, _, info = env.step(int(a))
        observations.append(obs.reshape(-1))
        crashed = crashed or terminated or info["crashed"]
    return crashed, np.stack(observations)


def test_expert_data_keeps_only_episodes_that_did_not_crash() -> None:
    """An IDLE driver among bicycles crashes in about half of its episodes: those are discarded, and every kept
    episode replays without a crash, has at most 11 steps (12 observations) and the tokens r(o) of its
    observations."""
    data = rb.collect_successful_episodes(rb.ConstantPolicy(), "bicycle", 3, seed=0)
    a, stats = data.arrays, data.stats
    assert stats["episodes"] == 3 and stats["crashed"] >= 1 and stats["attempted"] == 3 + stats["crashed"]
    assert not a["terminals"].any()
    ends = np.flatnonzero(a["timeouts"]) + 1
    assert len(ends) == 3 and ends[-1] == len(a["rewards"])
    starts = np.concatenate([[0], ends[:-1]])
    for s, e in zip(starts, ends, strict=True):
        assert e - s <= 11  # ≤ 11 transitions = ≤ 12 observations
        assert np.array_equal(a["observations"][s + 1:e], a["next_observations"][s:e - 1])
        seed = a["infos/episode_seed"][s]
        assert (a["infos/episode_seed"][s:e] == seed).all()
        crashed, replayed = replay_crashes("bicycle", seed, a["infos/action"][s:e])
        assert not crashed
        assert np.array_equal(replayed[:-1], a["observations"][s:e])
        assert np.array_equal(replayed[-1], a["next_observations"][e - 1])
    assert np.array_equal(a["infos/composition"], composition_tokens(a["observations"]))
    assert set(np.unique(a["infos/composition"][:, 1:])) <= {0, 3}  # only bicycles or nobody around the ego
    assert np.array_equal(a["actions"], np.eye(5, dtype=np.float32)[a["infos/action"]])
    assert (a["infos/action"] == rb.IDLE).all()


def test_collection_fails_clearly_when_every_episode_crashes() -> None:
    with pytest.raises(RuntimeError, match=r"only 0 of 2 episodes .* did not crash"):
        rb.collect_successful_episodes(rb.ConstantPolicy(rb.ACTION_NAMES.index("FASTER")), "car", 1, seed=0,
                                       max_attempts=2)


def test_generated_dataset_combines_the_combinations_and_reads_back(tmp_path: Path) -> None:
    experts = {"car": rb.ConstantPolicy(), "bicycle": rb.ConstantPolicy()}
    saved = rb.generate_roundabout_expert_data(tmp_path, "rb-test", experts, episodes_per_combination=2, seed=0,
                                               log=lambda _: None)
    ds = load_d4rl(tmp_path / "rb-test.hdf5")
    assert ds.num_episodes == 4 and not ds.terminals.any()
    assert ds.fingerprint() == saved.dataset.fingerprint()
    combination = ds.extras["infos/combination"]
    tokens = ds.extras["infos/composition"]
    assert np.array_equal(tokens, composition_tokens(ds.observations))
    assert set(np.unique(tokens[combination == 0][:, 1:])) <= {0, 2}  # car episodes: cars only
    assert set(np.unique(tokens[combination == 1][:, 1:])) <= {0, 3}  # bicycle episodes: bicycles only
    assert ds.metadata["combinations"] == ["car", "bicycle"]
    assert (tmp_path / "card.json").is_file()


def test_a_saved_expert_below_its_threshold_or_for_another_traffic_is_refused(tmp_path: Path) -> None:
    recipe = rb.expert_recipe("car")
    w = np.zeros((5, 30), np.float32)
    b = np.eye(5, dtype=np.float32)[rb.IDLE]
    info = {"recipe": recipe.as_dict(), "passed": False, "evaluation": {"no_crash_rate": 0.5, "episodes": 100}}
    rb.CategoricalMLPPolicy([(w, b)], "tanh", info=info).save(tmp_path / "weak")
    with pytest.raises(ValueError, match=r"weak.json: no-crash rate 0.5 over 100 episodes is below .* 0.85"):
        rb.generate_roundabout_expert_data(tmp_path, "x", {"car": tmp_path / "weak"}, 1, log=lambda _: None)
    with pytest.raises(ValueError, match="trained on traffic 'car', not 'bicycle'"):
        rb.generate_roundabout_expert_data(tmp_path, "x", {"bicycle": tmp_path / "weak"}, 1, log=lambda _: None)
    saved = rb.generate_roundabout_expert_data(tmp_path, "x", {"car": tmp_path / "weak"}, 1, require_passed=False,
                                               log=lambda _: None)
    assert saved.dataset.num_episodes == 1 and (saved.dataset.extras["infos/action"] == rb.IDLE).all()


def test_evaluation_counts_crashes_as_the_episodes_show() -> None:
    seeds = rb.episode_seeds(11, 0, 4)
    episodes = rb.run_episodes(rb.ConstantPolicy(), "bicycle", seeds)
    result = rb.evaluate_no_crash(rb.ConstantPolicy(), "bicycle", episodes=4, seed=11)
    crashes = sum(e.crashed for e in episodes)
    assert result["crashes"] == crashes and result["no_crash_rate"] == 1 - crashes / 4
    steps = sum(e.length for e in episodes)
    assert result["action_counts"] == {"LANE_LEFT": 0, "IDLE": steps, "LANE_RIGHT": 0, "FASTER": 0, "SLOWER": 0}
    assert result["return_mean"] == pytest.approx(np.mean([e.rewards.sum() for e in episodes]))
    assert all(e.length <= 11 and (e.length == 11 or e.crashed) for e in episodes)


@pytest.mark.slow
def test_episodes_do_not_depend_on_the_number_of_workers() -> None:
    one = rb.collect_successful_episodes(rb.ConstantPolicy(), "bicycle", 3, seed=1, workers=1)
    two = rb.collect_successful_episodes(rb.ConstantPolicy(), "bicycle", 3, seed=1, workers=2)
    assert one.stats["attempted"] == two.stats["attempted"]
    assert all(np.array_equal(one.arrays[k], two.arrays[k]) for k in one.arrays)
    assert rb.evaluate_no_crash(rb.ConstantPolicy(), "mixed", 4, seed=3, workers=2) == \
        rb.evaluate_no_crash(rb.ConstantPolicy(), "mixed", 4, seed=3, workers=1)


def test_sampled_actions_with_one_generator_per_row_match_row_by_row_draws() -> None:
    w = np.random.default_rng(1).normal(size=(5, 30)).astype(np.float32)
    policy = rb.CategoricalMLPPolicy(weights=[(w, np.zeros(5, np.float32))], activation="tanh")
    obs = np.random.default_rng(2).normal(size=(4, 30)).astype(np.float32)
    batched = policy.act(obs, [np.random.default_rng([s, 1]) for s in range(4)], deterministic=False)
    alone = [policy.act(obs[i:i + 1], np.random.default_rng([i, 1]), deterministic=False)[0] for i in range(4)]
    assert batched.tolist() == alone
    with pytest.raises(ValueError, match="3 generators for a batch of 4"):
        policy.act(obs, [np.random.default_rng(0)] * 3, deterministic=False)


def test_lockstep_episodes_equal_one_at_a_time() -> None:
    """Episodes stepped together (one act call for all per step) are the episodes stepped alone: sampled actions
    draw from each episode's own generator, and episodes of different lengths (crashes) leave the batch early."""
    w = np.random.default_rng(3).normal(size=(5, 30)).astype(np.float32)
    policy = rb.CategoricalMLPPolicy(weights=[(w, np.zeros(5, np.float32))], activation="tanh")
    seeds = rb.episode_seeds(7, 0, 5)
    alone = rb.run_episodes(policy, "mixed", seeds, deterministic=False)
    together = rb.run_episodes(policy, "mixed", seeds, deterministic=False, batch=3)
    assert [e.seed for e in together] == seeds
    assert len({e.length for e in alone}) > 1  # the batch really holds episodes that end at different steps
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a.actions, b.actions) and np.array_equal(a.observations, b.observations)
        assert np.array_equal(a.rewards, b.rewards) and a.crashed == b.crashed
    assert rb.evaluate_no_crash(policy, "mixed", 5, seed=7, deterministic=False, batch=4) == \
        rb.evaluate_no_crash(policy, "mixed", 5, seed=7, deterministic=False)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        rb.run_episodes(policy, "mixed", seeds, batch=0)
