"""The out-of-combination roundabout: traffic options, bicycle attributes, the typed 5 x 6 observation, r(o),
episode length, bicycles meeting the ego, model sizes on its spaces, and the fast path equal to the stock code."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ractd.envs import roundabout as rb

HAS_HIGHWAY = importlib.util.find_spec("highway_env") is not None
needs_highway = pytest.mark.skipif(not HAS_HIGHWAY, reason="highway-env (the `ooc` extra) is not installed")
IDLE = 1


def make(traffic: str = "mixed", **knobs):
    return rb.make_roundabout_env(traffic=traffic, **knobs)


def rollout(env, seed: int, actions) -> tuple[np.ndarray, np.ndarray, list[bool], list[bool]]:
    """Observations (reset included), rewards, crash flags and terminated flags until the episode ends."""
    obs, _ = env.reset(seed=seed)
    observations, rewards, crashed, terminated = [obs], [], [], []
    for action in actions:
        obs, reward, term, trunc, info = env.step(int(action))
        observations.append(obs)
        rewards.append(reward)
        crashed.append(bool(info["crashed"]))
        terminated.append(bool(term))
        if term or trunc:
            break
    return np.array(observations), np.array(rewards), crashed, terminated


# --- r(o): pure, no highway-env needed ----------------------------------------------------------------------


def observation(rows: list[tuple[float, float]]) -> np.ndarray:
    """A 5 x 6 observation with the given (presence, type) per row and arbitrary kinematics."""
    obs = np.zeros((rb.OBS_ROWS, len(rb.OBS_FEATURES)), dtype=np.float32)
    rng = np.random.default_rng(0)
    for i, (presence, kind) in enumerate(rows):
        if presence:
            obs[i] = [1.0, *rng.uniform(-1, 1, 4), kind]
    return obs


def test_composition_tokens_reads_presence_and_type():
    obs = observation([(1, 0), (1, 1), (1, 0), (0, 0), (0, 0)])
    assert rb.composition_tokens(obs).tolist() == [rb.EGO, rb.BICYCLE, rb.CAR, rb.NULL, rb.NULL]
    assert [rb.COMPOSITION_CLASSES[t] for t in rb.composition_tokens(obs)] == ["ego", "bicycle", "car", "null", "null"]
    # An absent row is null whatever its other entries hold; flattened and batched inputs give the same tokens.
    stale = obs.copy()
    stale[4, rb.TYPE] = 1.0
    assert rb.composition_tokens(stale)[4] == rb.NULL
    batch = np.stack([obs, observation([(1, 0)] * 5)])
    expected = [[rb.EGO, rb.BICYCLE, rb.CAR, rb.NULL, rb.NULL], [rb.EGO, rb.CAR, rb.CAR, rb.CAR, rb.CAR]]
    assert rb.composition_tokens(batch).tolist() == expected
    assert rb.composition_tokens(batch.reshape(2, -1)).tolist() == expected
    assert rb.composition_tokens(batch).dtype == np.int64


def test_composition_tokens_refuses_other_shapes():
    with pytest.raises(ValueError, match="shape"):
        rb.composition_tokens(np.zeros(7))
    with pytest.raises(ValueError, match="shape"):
        rb.composition_tokens(np.zeros((5, 5)))


def test_missing_highway_env_names_the_extra(monkeypatch):
    real_import = rb.importlib.import_module

    def fake_import(name, *args):
        if name == "highway_env":
            raise ImportError("No module named 'highway_env'")
        return real_import(name, *args)

    monkeypatch.setattr(rb.importlib, "import_module", fake_import)
    with pytest.raises(rb.MissingHighwayEnvError, match=r"ractd\[ooc\]"):
        rb.make_roundabout_env(traffic="car")


def test_unknown_traffic_is_refused_with_the_options():
    with pytest.raises(ValueError, match="bicycle, train, mixed"):
        rb.make_roundabout_env(traffic="trucks")


# --- the environment -----------------------------------------------------------------------------------------


@needs_highway
def test_registered_id_makes_the_env():
    import gymnasium as gym

    env = gym.make(rb.ENV_ID, traffic="bicycle")
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.vehicle_kinds() == ["bicycle"] * 4
    assert obs.shape == (5, 6) and env.observation_space.shape == (5, 6) and env.action_space.n == 5


@needs_highway
@pytest.mark.parametrize("traffic", ["car", "bicycle"])
def test_single_class_traffic_has_only_that_class(traffic):
    env = make(traffic)
    for seed in range(10):
        obs, _ = env.reset(seed=seed)
        assert env.unwrapped.vehicle_kinds() == [traffic] * 4
        present = obs[1:, rb.PRESENCE] == 1
        assert np.all(obs[1:, rb.TYPE][present] == rb.VEHICLE_TYPES[traffic])


@needs_highway
def test_mixed_traffic_always_has_both_classes_and_the_named_mixtures_are_as_stated():
    env = make("mixed")
    seen = set()
    for seed in range(40):
        env.reset(seed=seed)
        kinds = env.unwrapped.vehicle_kinds()
        assert set(kinds) == {"car", "bicycle"}
        seen.add(tuple(kinds))
    assert len(seen) >= 8  # the draw is random over the 14 mixed assignments, not one fixed pattern
    env.reset(seed=0, options={"config": {"traffic": "test-1"}})
    assert env.unwrapped.vehicle_kinds() == ["bicycle", "car", "car", "car"]
    env.reset(seed=0, options={"config": {"traffic": "test-2"}})
    assert env.unwrapped.vehicle_kinds() == ["car", "bicycle", "bicycle", "bicycle"]
    for k in (1, 2, 3):
        for seed in range(5):
            env.reset(seed=seed, options={"config": {"traffic": f"bicycles-{k}"}})
            assert env.unwrapped.vehicle_kinds().count("bicycle") == k
    train = set()
    for seed in range(20):
        env.reset(seed=seed, options={"config": {"traffic": "train"}})
        kinds = env.unwrapped.vehicle_kinds()
        assert len(set(kinds)) == 1
        train.add(kinds[0])
    assert train == {"car", "bicycle"}


@needs_highway
def test_bicycle_and_car_attributes():
    from highway_env.vehicle.behavior import IDMVehicle

    from ractd.envs.roundabout_env import Bicycle, Car

    assert (Bicycle.LENGTH, Bicycle.WIDTH, Bicycle.ACC_MAX, Bicycle.COMFORT_ACC_MAX) == (2.0, 1.0, 2.0, 1.0)
    assert Bicycle.MAX_SPEED == 6.0
    # The car is highway-env's vehicle unchanged.
    assert (Car.LENGTH, Car.WIDTH, Car.ACC_MAX, Car.COMFORT_ACC_MAX) == (5.0, 2.0, 6.0, 3.0)
    assert (Car.LENGTH, Car.WIDTH, Car.ACC_MAX, Car.MAX_SPEED) == (
        IDMVehicle.LENGTH, IDMVehicle.WIDTH, IDMVehicle.ACC_MAX, IDMVehicle.MAX_SPEED
    )
    env = make("bicycle")
    for seed in range(5):
        env.reset(seed=seed)
        for v in env.unwrapped.road.vehicles[1:]:
            assert isinstance(v, Bicycle) and 4.0 <= v.speed <= 6.0 and v.target_speed == v.speed
            assert v.diagonal == pytest.approx(np.hypot(2.0, 1.0))
    env = make("car", car_speed="table")
    env.reset(seed=0)
    assert all(23.0 <= v.speed <= 25.0 for v in env.unwrapped.road.vehicles[1:])
    with pytest.raises(ValueError, match="car_speed"):
        make("car", car_speed="fast").reset(seed=0)


@needs_highway
def test_observation_is_5x6_with_type_one_exactly_on_bicycle_rows():
    from ractd.envs.roundabout_env import Bicycle

    env = make("mixed")
    rng = np.random.default_rng(1)
    checked_bicycle_rows = checked_car_rows = 0
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        done = False
        while True:
            assert obs.shape == (5, 6) and obs.dtype == np.float32
            assert obs[0, rb.PRESENCE] == 1 and obs[0, rb.TYPE] == 0  # the ego, a car
            vehicles = env.unwrapped.road.vehicles
            for row in obs[1:]:
                if row[rb.PRESENCE] == 0:
                    assert np.all(row == 0)
                    continue
                # The row's vehicle: the one at its (normalized) position.
                pos = np.array([[np.clip(v.position / 100.0, -1, 1)] for v in vehicles]).reshape(-1, 2)
                match = vehicles[int(np.argmin(np.linalg.norm(pos - row[1:3], axis=1)))]
                assert row[rb.TYPE] == float(isinstance(match, Bicycle))
                checked_bicycle_rows += isinstance(match, Bicycle)
                checked_car_rows += not isinstance(match, Bicycle)
            if done:
                break
            obs, _, term, trunc, _ = env.step(int(rng.integers(5)))
            done = term or trunc
    assert checked_bicycle_rows > 0 and checked_car_rows > 0


@needs_highway
def test_composition_of_real_observations_is_null_exactly_on_absent_rows():
    env = make("mixed")
    absent_seen = 0
    for seed in range(4):
        observations, _, _, _ = rollout(env, seed, [IDLE] * 11)
        tokens = rb.composition_tokens(observations)
        present = observations[..., rb.PRESENCE] == 1
        assert np.array_equal(tokens == rb.NULL, ~present)
        assert np.all(tokens[:, 0] == rb.EGO)
        assert np.array_equal(tokens[:, 1:] == rb.BICYCLE, present[:, 1:] & (observations[:, 1:, rb.TYPE] == 1))
        absent_seen += int((~present).sum())
    assert absent_seen > 0


@needs_highway
def test_episodes_last_at_most_11_steps():
    env = make("mixed")
    lengths, truncated_at = [], []
    for seed in range(6):
        env.reset(seed=seed)
        for step in range(1, 30):
            _, _, term, trunc, _ = env.step(IDLE)
            if term or trunc:
                lengths.append(step)
                if trunc and not term:
                    truncated_at.append(step)
                break
    assert max(lengths) <= 11 and truncated_at and set(truncated_at) == {11}


def interaction_fraction(traffic: str, episodes: int, radius: float = 10.0) -> float:
    """Fraction of IDLE-policy episodes in which some environment vehicle comes within `radius` m of the ego
    (checked after every step)."""
    env = make(traffic)
    hits = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        ego, met, done = env.unwrapped.vehicle, False, False
        while not done:
            _, _, term, trunc, _ = env.step(IDLE)
            done = term or trunc
            met |= any(np.linalg.norm(v.position - ego.position) < radius for v in env.unwrapped.road.vehicles[1:])
        hits += met
    return hits / episodes


@needs_highway
def test_bicycles_meet_the_ego_about_as_often_as_cars():
    car, bicycle = interaction_fraction("car", 20), interaction_fraction("bicycle", 20)
    assert car >= 0.5  # the check is meaningful: cars do meet the ego
    assert bicycle >= 0.8 * car


# --- model sizes on this env's spaces ------------------------------------------------------------------------


@needs_highway
def test_ppo_and_bc_parameter_counts():
    sb3 = pytest.importorskip("stable_baselines3")
    from torch import nn

    from ractd.nn import count_parameters

    env = make("mixed")
    ppo = sb3.PPO("MlpPolicy", env, policy_kwargs={"net_arch": {"pi": [256, 256], "vf": [256, 256]}}, device="cpu")
    assert count_parameters(ppo.policy) == 148_998
    obs_dim, n_actions = int(np.prod(env.observation_space.shape)), int(env.action_space.n)
    assert (obs_dim, n_actions) == (30, 5)
    bc = nn.Sequential(nn.Linear(obs_dim, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, n_actions))
    assert count_parameters(bc) == 75_013


# --- the fast path equals the stock computation --------------------------------------------------------------


@needs_highway
def test_closest_lane_lookup_equals_stock_on_random_and_boundary_poses():
    from highway_env.road.lane import CircularLane
    from highway_env.road.road import RoadNetwork

    env = make("car")
    env.reset(seed=0)
    network = env.unwrapped.road.network
    lanes = [lane for to_dict in network.graph.values() for ls in to_dict.values() for lane in ls]
    rng = np.random.default_rng(0)
    poses = [(rng.uniform(-80, 80, 2), rng.uniform(-np.pi, np.pi)) for _ in range(300)]
    for lane in lanes:  # lane ends and junctions, where two lanes score nearly the same
        for s in (0.0, 1e-9, lane.length / 2, lane.length - 1e-9, lane.length):
            for lateral in (0.0, 1e-12, 2.0, -2.0):
                poses.append((lane.position(s, lateral), lane.heading_at(s) + rng.normal(0, 0.05)))
        if isinstance(lane, CircularLane):  # the seam opposite the start, where the arc coordinate wraps
            poses.append((lane.center + lane.radius * np.array([-np.cos(lane.start_phase), -np.sin(lane.start_phase)]),
                          0.3))
    fast = network.closest_lane_indexes(np.array([p for p, _ in poses]), np.array([h for _, h in poses]))
    for (position, heading), got in zip(poses, fast, strict=True):
        assert got == RoadNetwork.get_closest_lane_index(network, position, heading)
        assert network.get_closest_lane_index(position, heading) == got


@needs_highway
@pytest.mark.parametrize("traffic", ["car", "bicycle", "mixed"])
def test_fast_trajectories_equal_stock_trajectories(traffic):
    fast, stock = make(traffic), make(traffic, fast=False)
    assert type(stock.unwrapped.observation_type).__name__ == "KinematicObservation"
    rng = np.random.default_rng(7)
    for seed in range(3):
        actions = rng.integers(0, 5, 11)
        a, b = rollout(fast, seed, actions), rollout(stock, seed, actions)
        assert np.array_equal(a[0], b[0])  # observations, bit for bit
        assert np.array_equal(a[1], b[1])  # rewards
        assert a[2] == b[2] and a[3] == b[3]  # crashes, terminations
        lanes = [v.lane_index for v in fast.unwrapped.road.vehicles]
        assert lanes == [v.lane_index for v in stock.unwrapped.road.vehicles]


@needs_highway
def test_car_traffic_is_the_unmodified_roundabout_plus_a_type_column():
    import gymnasium as gym
    import highway_env  # noqa: F401  (registers roundabout-v0)

    ours, library = make("car"), gym.make("roundabout-v0")
    rng = np.random.default_rng(3)
    crashes = 0
    for seed in range(4):
        actions = rng.integers(0, 5, 11)
        a, b = rollout(ours, seed, actions), rollout(library, seed, actions)
        assert np.array_equal(a[0][..., :5], b[0]) and np.all(a[0][..., 5] == 0)
        assert np.array_equal(a[1], b[1]) and a[2] == b[2]
        crashes += any(a[2])
    assert crashes < 4  # not every episode ends at the first step's crash: the comparison covers driving


def test_importing_ractd_envs_registers_the_roundabout_id_in_a_fresh_process():
    import subprocess
    import sys

    code = ("import gymnasium as gym, ractd.envs; from ractd.envs.roundabout import ENV_ID; "
            "assert ENV_ID in gym.registry; import sys; assert 'highway_env' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
