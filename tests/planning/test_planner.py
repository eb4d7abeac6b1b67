"""Planner and PlannerPolicy on the tiny trained runs: seeding, units, NFE per sampler, sampler/stage checks,
goal conditioning, chaining times, replanning and history, and the Maze2d controllers in the real env."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ractd.artifact import Artifact, ArtifactError, load_artifact
from ractd.config import apply_overrides
from ractd.devices import check_device
from ractd.diffusion import EDMConfig, ctm_jump, karras_sigma, multistep_sample
from ractd.envs import make_env
from ractd.evaluate import evaluate
from ractd.export import random_observations
from ractd.planning import Planner, PlannerPolicy, chain_sigmas, load_planner, tracking_action
from ractd.planning.planner import episode_generator
from ractd.prepare import prepare_data

DT = 0.01  # Maze2d: one MuJoCo step of 0.01 s per env step


@pytest.fixture(scope="module")
def hopper_data(tiny_hopper_runs):
    return prepare_data(load_artifact(tiny_hopper_runs / "student").config)


def count_forwards(planner: Planner) -> list[int]:
    """A list whose length is the number of network evaluations made since the call."""
    calls: list[int] = []
    planner.net.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


def with_config(art, *overrides: str):
    """The same artifact under an overridden config (e.g. another horizon for a stubbed plan), its denoiser
    rebuilt from the new config (e.g. teacher.kind="ddpm" wraps the same U-Net as an ε-prediction model)."""
    cfg = apply_overrides(art.config, list(overrides))
    return Artifact.from_parts(art.path, art.stage, cfg, art.net, art.normalizers, art.obs_dim, art.act_dim,
                               art.meta, art.weights)


# ---------------------------------------------------------------------------------------------- seeding and units


@pytest.mark.parametrize(("stage", "sampler"), [("student", "one_step"), ("student", "multistep:3"),
                                                ("teacher", "heun:6")])
def test_seeded_sampling_is_reproducible(tiny_hopper_runs, hopper_data, stage, sampler):
    obs = hopper_data.dataset.observations[:4]
    a, b = (load_planner(tiny_hopper_runs / stage, sampler, seed=3) for _ in range(2))
    first = a.plan(obs)
    assert np.array_equal(first, b.plan(obs))  # same seed, same plans
    assert np.array_equal(a.plan(obs), b.plan(obs))  # and the same stream afterwards
    assert not np.array_equal(first, load_planner(tiny_hopper_runs / stage, sampler, seed=4).plan(obs))


def test_act_returns_env_unit_actions_within_the_dataset_range(tiny_hopper_runs, hopper_data):
    planner = load_planner(tiny_hopper_runs / "student")
    ds = hopper_data.dataset
    lo, hi = ds.actions.min(axis=0), ds.actions.max(axis=0)
    far = ds.observations[:5] * 50.0  # far outside the data: the raw plan saturates, the clamp holds
    for obs in (ds.observations[:5], far):
        actions = planner.act_batch(obs)
        assert actions.shape == (5, 3) and actions.dtype == np.float32
        assert np.all(actions >= lo - 1e-5) and np.all(actions <= hi + 1e-5)
    one = planner.act(ds.observations[0])
    assert one.shape == (3,) and one.dtype == np.float32
    assert planner.act(ds.observations[:1]).shape == (3,)  # an observation history (To = 1, Do)


def test_plans_are_unnormalized_with_the_run_normalizer(tiny_hopper_runs, hopper_data):
    """plan = unnormalize(clamp(sample)) and act = plan[:, To − 1], conditioned on norm(s)."""
    obs = hopper_data.dataset.observations[10:13]
    a, b = load_planner(tiny_hopper_runs / "student", seed=5), load_planner(tiny_hopper_runs / "student", seed=5)
    cond = a.condition(obs)
    torch.testing.assert_close(cond, a.norm["observations"].normalize(torch.as_tensor(obs, dtype=torch.float32)))
    x = a.sample(cond)
    assert x.abs().max() <= 1
    plan = b.plan(obs)
    np.testing.assert_allclose(plan, a.norm["actions"].unnormalize(x).numpy(), rtol=1e-6, atol=1e-6)
    c = load_planner(tiny_hopper_runs / "student", seed=5)
    np.testing.assert_array_equal(c.act_batch(obs), plan[:, 0])


@pytest.mark.parametrize("init_noise_scale", [1.0, 80.0])
def test_one_step_actions_are_bitwise_the_pure_functions(tiny_hopper_runs, init_noise_scale):
    """act_batch = unnormalize(clamp(G_θ(s·x_T, σ_max, σ_min; c), −1, 1))[:, To − 1], c = norm(obs) flattened,
    x_T ~ N(0, I) from a generator with the planner's seed: bit for bit, over two successive calls."""
    art = with_config(load_artifact(tiny_hopper_runs / "student"), f"teacher.edm.init_noise_scale={init_noise_scale}")
    edm, norms, seed = art.denoiser.edm, art.normalizers, 7
    assert edm.init_noise_scale == init_noise_scale
    planner = Planner(art, "one_step", seed=seed)
    obs = random_observations(art, 5, np.random.default_rng(0))["observations"]
    assert obs.dtype == np.float32 and obs.shape == (5, planner.n_obs_steps, art.obs_dim)

    cond = torch.from_numpy(norms["observations"].normalize(obs).reshape(len(obs), -1))
    g = torch.Generator().manual_seed(seed)
    sigma_max, sigma_min = torch.tensor(edm.sigma_max), torch.tensor(edm.sigma_min)
    for _ in range(2):  # the planner's noise stream goes on from call to call
        x_T = torch.randn(len(obs), planner.horizon, planner.x_dim, generator=g)
        with torch.no_grad():
            x = ctm_jump(art.net, edm.init_noise_scale * x_T, sigma_max, sigma_min, cond, edm).clamp(-1, 1)
        plan = norms["actions"].unnormalize(x.numpy())
        assert np.array_equal(planner.act_batch(obs), plan[:, planner.n_obs_steps - 1])
    again = Planner(art, "one_step", seed=seed)
    again.act_batch(obs)
    assert np.array_equal(again.plan(obs), plan)


# ---------------------------------------------------------------------------------------------- per-row noise


def ddpm_teacher(runs) -> Artifact:
    return with_config(load_artifact(runs / "teacher"), 'teacher.kind="ddpm"')


PER_ROW = [("student", "one_step"), ("student", "multistep:3"), ("teacher", "heun:4"), ("teacher", "euler:4"),
           ("ddpm", "ddim:4")]


def planner_for(runs, stage: str, sampler: str, seed: int = 0) -> Planner:
    art = ddpm_teacher(runs) if stage == "ddpm" else load_artifact(runs / stage)
    return Planner(art, sampler, seed=seed)


@pytest.mark.parametrize(("stage", "sampler"), PER_ROW)
def test_with_a_generator_per_row_a_row_plan_does_not_depend_on_the_other_rows(tiny_hopper_runs, hopper_data,
                                                                                  stage, sampler):
    """Row b's noise (x_T, then one draw per chaining level) comes from generators[b] alone: planning the rows
    together or one by one gives the same plans, planning them in another order permutes them (up to the float
    rounding of a batched network call, ~1e-7, which 6 Heun evaluations amplify to ~2e-5)."""
    planner = planner_for(tiny_hopper_runs, stage, sampler)
    obs = hopper_data.dataset.observations[:4]

    def generators(order=range(4)):
        return [episode_generator(0, 100 + b) for b in order]

    together = planner.plan(obs, generators=generators())
    alone = np.concatenate([planner.plan(obs[b: b + 1], generators=[g]) for b, g in enumerate(generators())])
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-4)
    reverse = [3, 2, 1, 0]
    np.testing.assert_allclose(planner.plan(obs[reverse], generators=generators(reverse)), together[reverse],
                               rtol=0, atol=1e-4)
    assert not np.allclose(together[0], together[1], atol=1e-3)  # and the rows' noise differs
    with pytest.raises(ValueError, match=r"generators: expected one per row \(4\), got 3"):
        planner.plan(obs, generators=generators()[:3])


@pytest.mark.parametrize(("stage", "sampler"), PER_ROW)
def test_one_row_with_its_own_generator_is_bitwise_the_shared_generator(tiny_hopper_runs, hopper_data, stage,
                                                                        sampler):
    """At batch 1 the two noise paths draw the same numbers: a per-row generator in the state of the planner's
    one generator gives the same plan bit for bit."""
    obs = hopper_data.dataset.observations[:1]
    shared = planner_for(tiny_hopper_runs, stage, sampler, seed=9).plan(obs)
    own = planner_for(tiny_hopper_runs, stage, sampler).plan(obs, generators=[torch.Generator().manual_seed(9)])
    assert np.array_equal(shared, own)


def test_planner_chaining_is_bitwise_multistep_sample(tiny_hopper_runs, hopper_data):
    """The planner chains the student itself (to draw per row); on one generator it is `multistep_sample`."""
    planner = load_planner(tiny_hopper_runs / "student", "multistep:3", seed=4)
    cond = planner.condition(hopper_data.dataset.observations[:5])
    den = planner.denoiser
    expected = multistep_sample(lambda x, t, s: den.jump(x, t, s, cond), (5, planner.horizon, planner.x_dim),
                                chain_sigmas(3, den.edm), den.edm, torch.Generator().manual_seed(4))
    assert torch.equal(planner.sample(cond), expected)


def test_an_episode_generator_depends_on_both_seeds():
    def draw(seed, episode_seed):
        return torch.randn(8, generator=episode_generator(seed, episode_seed))

    assert torch.equal(draw(0, 5), draw(0, 5))
    assert not torch.equal(draw(0, 5), draw(0, 6))
    assert not torch.equal(draw(0, 5), draw(1, 5))
    assert not torch.equal(draw(0, 5), draw(5, 0))


def test_the_hot_path_leaves_no_inference_tensors_behind(tiny_hopper_runs, hopper_data):
    """plan() runs under inference_mode; the public tensor API and the denoiser's cached constants stay usable
    with autograd (e.g. by a student still in training)."""
    planner = load_planner(tiny_hopper_runs / "student")
    obs = hopper_data.dataset.observations[:2]
    planner.plan(obs)  # the first call caches the one-step constants
    cond = planner.condition(obs)
    assert not cond.is_inference() and not planner.sample(cond).is_inference()
    x = torch.randn(2, planner.horizon, planner.x_dim, requires_grad=True)
    planner.denoiser.one_step(x, cond).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_maze_plans_are_states_in_maze_coordinates(tiny_maze_runs):
    planner = load_planner(tiny_maze_runs / "student")
    prep_obs = load_artifact(tiny_maze_runs / "student").normalizers["observations"]
    plan = planner.plan(np.array([3.0, 1.0, 0.0, 0.0]), goal=np.array([1.0, 1.0]))
    assert plan.shape == (16, 4) and plan.dtype == np.float32
    n = prep_obs.normalize(torch.as_tensor(plan)).numpy()
    assert np.all(np.abs(n) <= 1 + 1e-5)  # within the dataset's state range
    assert np.abs(plan[:, :2]).max() > 1.0  # env units (positions up to ~3), not normalized ones
    batch = planner.plan(np.array([[3.0, 1.0, 0, 0], [3.0, 3.0, 0, 0]]), goal=np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert batch.shape == (2, 16, 4)


# ---------------------------------------------------------------------------------------------- samplers


@pytest.mark.parametrize(("stage", "sampler", "nfe"), [
    ("student", "auto", 1), ("student", "one_step", 1), ("student", "multistep", 2), ("student", "multistep:3", 3),
    ("student", "multistep:4", 4), ("teacher", "auto", 158), ("teacher", "heun:5", 8), ("teacher", "heun:2", 2),
])
def test_network_evaluations_per_plan(tiny_hopper_runs, hopper_data, stage, sampler, nfe):
    planner = load_planner(tiny_hopper_runs / stage, sampler)
    assert planner.nfe == nfe and f"NFE {nfe}" in planner.describe()
    calls = count_forwards(planner)
    planner.plan(hopper_data.dataset.observations[:3])  # one batched plan, whatever the batch size
    assert len(calls) == nfe


@pytest.mark.parametrize(("sampler", "nfe"), [("auto", 10), ("ddim:10", 10), ("ddim:4", 4)])
def test_ddim_teacher_evaluations_per_plan(tiny_hopper_runs, hopper_data, sampler, nfe):
    """A DDPM teacher (same U-Net, ε-prediction) behind the DDIM sampler: NFE = steps, clamped plans."""
    art = with_config(load_artifact(tiny_hopper_runs / "teacher"), 'teacher.kind="ddpm"')
    planner = Planner(art, sampler)
    calls = count_forwards(planner)
    plans = planner.plan(hopper_data.dataset.observations[:2])
    assert len(calls) == planner.nfe == nfe
    lo, hi = hopper_data.dataset.actions.min(axis=0), hopper_data.dataset.actions.max(axis=0)
    assert np.all(plans >= lo - 1e-5) and np.all(plans <= hi + 1e-5)


@pytest.mark.parametrize(("stage", "sampler", "message"), [
    ("student", "ddim:5", r"sampler 'ddim' needs an ε-prediction \(ddpm\) teacher, this is a student run"),
    ("teacher", "one_step", "sampler 'one_step' needs a student run, this is a teacher run"),
    ("teacher", "multistep:2", "sampler 'multistep' needs a student run, this is a teacher run"),
    ("teacher", "ddim", r"sampler 'ddim' needs an ε-prediction \(ddpm\) teacher, this is a teacher run \(edm\)"),
    ("reward", "auto", "a planner needs a teacher or student run, this is a reward run"),
])
def test_a_sampler_that_does_not_fit_the_run_is_an_artifact_error(tiny_hopper_runs, stage, sampler, message):
    with pytest.raises(ArtifactError, match=message):
        load_planner(tiny_hopper_runs / stage, sampler)


@pytest.mark.parametrize(("stage", "kind", "sampler"), [
    ("student", None, "heun:6"), ("student", None, "euler:6"), ("teacher", "ddpm", "heun:6"),
    ("teacher", "ddpm", "euler:6"), ("teacher", None, "euler:6")])
def test_the_ode_samplers_run_on_every_denoiser(tiny_hopper_runs, hopper_data, stage, kind, sampler):
    """Heun/Euler need only D(x; σ): the student through g(x, σ, σ), a DDPM teacher through EpsDenoiser."""
    art = load_artifact(tiny_hopper_runs / stage)
    art = with_config(art, f'teacher.kind="{kind}"') if kind else art
    planner = Planner(art, sampler, seed=1)
    calls = count_forwards(planner)
    plans = planner.plan(hopper_data.dataset.observations[:3])
    assert len(calls) == planner.nfe == (10 if sampler.startswith("heun") else 5)
    assert plans.shape == (3, planner.horizon, 3) and np.isfinite(plans).all()


def test_unknown_sampler_names_are_refused(tiny_hopper_runs):
    with pytest.raises(ValueError, match=r"unknown sampler 'rk4'; expected one of \('one_step', 'multistep'"):
        load_planner(tiny_hopper_runs / "student", "rk4")
    with pytest.raises(ValueError, match="weights must be one of"):
        load_planner(tiny_hopper_runs / "student", weights="latest")
    with pytest.raises(ArtifactError, match=r"best/model\.safetensors: missing"):
        load_planner(tiny_hopper_runs / "student", weights="best")  # no online selection in the tiny run


@pytest.mark.parametrize("sampler", ["multistep:0", "heun:1", "ddim:0", "multistep:x"])
def test_an_impossible_step_count_is_refused_when_loading(tiny_hopper_runs, sampler):
    stage = "student" if sampler.startswith("multistep") else "teacher"
    art = load_artifact(tiny_hopper_runs / stage)
    if sampler.startswith("ddim"):
        art = with_config(art, 'teacher.kind="ddpm"')
    with pytest.raises(ValueError, match=f"sampler {sampler!r}"):
        Planner(art, sampler)


def test_chain_sigmas_are_evenly_spaced_karras_bins():
    cfg = EDMConfig()

    def sigma(i: float) -> float:  # σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, docs/algorithm.md §3.4
        return (80 ** (1 / 7) + i / 79 * (0.02 ** (1 / 7) - 80 ** (1 / 7))) ** 7

    assert chain_sigmas(1, cfg) == []
    np.testing.assert_allclose(chain_sigmas(2, cfg), [sigma(40)], rtol=1e-5)
    np.testing.assert_allclose(chain_sigmas(3, cfg), [sigma(27), sigma(53)], rtol=1e-5)
    np.testing.assert_allclose(chain_sigmas(4, cfg), [sigma(20), sigma(40), sigma(60)], rtol=1e-5)
    assert chain_sigmas(3, cfg) == [float(karras_sigma(27, cfg)), float(karras_sigma(53, cfg))]
    assert 11 < chain_sigmas(3, cfg)[0] < 13 and chain_sigmas(3, cfg)[1] < 1  # decreasing noise
    with pytest.raises(ValueError, match="NFE must be >= 1"):
        chain_sigmas(0, cfg)


# ---------------------------------------------------------------------------------------------- goals


def test_a_goal_conditioned_planner_needs_a_goal(tiny_maze_runs):
    planner = load_planner(tiny_maze_runs / "student")
    with pytest.raises(ValueError, match=r"goal-conditioned \(data.cond='first_last'\): pass goal=\(x, y\)"):
        planner.plan(np.array([3.0, 1.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="needs an action-sequence planner"):
        planner.act(np.array([3.0, 1.0, 0.0, 0.0]))


def test_the_maze_condition_is_the_normalized_start_and_goal_state(tiny_maze_runs):
    """c = (norm(s_0), norm([g_x, g_y, 0, 0])) (docs/algorithm.md §6.2)."""
    planner = load_planner(tiny_maze_runs / "student")
    norm = planner.norm["observations"]
    s0, goal = np.array([3.0, 1.2, 0.5, -0.5], np.float32), np.array([1.0, 1.0], np.float32)
    c = planner.condition(s0[None], goal[None])
    expected = torch.cat([norm.normalize(torch.as_tensor(s0)), norm.normalize(torch.tensor([1.0, 1.0, 0.0, 0.0]))])
    torch.testing.assert_close(c[0], expected)


# ---------------------------------------------------------------------------------------------- PlannerPolicy


class PlanSpy:
    """Wraps Planner.plan: records every call's observations and returned plans."""

    def __init__(self, planner: Planner, fake: bool = False):
        self.planner, self.real, self.fake = planner, planner.plan, fake
        self.inputs: list[np.ndarray] = []
        self.outputs: list[np.ndarray] = []
        planner.plan = self  # type: ignore[method-assign]

    def __call__(self, obs, goal=None, generators=None):
        obs = np.asarray(obs)
        self.inputs.append(obs.copy())
        if self.fake:  # plan row b, step h, dim d = 1000·call + 100·b + 10·h + d
            n, p = len(self.outputs), self.planner
            out = (1000 * n + 100 * np.arange(len(obs))[:, None, None] + 10 * np.arange(p.horizon)[None, :, None]
                   + np.arange(p.x_dim)[None, None, :]).astype(np.float32)
        else:
            out = self.real(obs, goal, generators=generators)
        self.outputs.append(out)
        return out


def test_the_policy_replans_every_n_action_steps_in_one_batched_call(tiny_hopper_runs, hopper_data):
    planner = load_planner(tiny_hopper_runs / "student", n_action_steps=4)
    spy = PlanSpy(planner)
    policy = PlannerPolicy(planner)
    obs = hopper_data.dataset.observations
    envs = np.array([0, 1])
    policy.reset(obs[:2], {}, envs)
    actions = [policy.act(obs[2 * k + 2: 2 * k + 4], envs) for k in range(10)]
    assert len(spy.inputs) == 3  # steps 0, 4, 8
    assert all(x.shape == (2, 1, 11) for x in spy.inputs)  # both envs in one call, history of To = 1
    for k, a in enumerate(actions):
        assert a.shape == (2, 3)
        np.testing.assert_array_equal(a, spy.outputs[k // 4][:, k % 4])  # the plan's actions, in order
    np.testing.assert_array_equal(spy.inputs[1][:, 0], obs[2 * 4 + 2: 2 * 4 + 4])  # replanned from the latest obs


def test_the_policy_keeps_an_observation_history_of_to_steps(tiny_hopper_runs):
    """To = 2: the first plan sees (s_0, s_0), then (s_{t−1}, s_t); the executed action is index To − 1."""
    art = with_config(load_artifact(tiny_hopper_runs / "student"), "data.n_obs_steps=2")
    planner = Planner(art, "one_step", n_action_steps=1)
    spy = PlanSpy(planner, fake=True)
    policy = PlannerPolicy(planner)
    s = np.arange(5 * 11, dtype=np.float32).reshape(5, 1, 11)  # 5 steps, 1 env
    policy.reset(s[0], {}, np.array([0]))
    actions = [policy.act(s[t], np.array([0])) for t in range(5)]
    np.testing.assert_array_equal(spy.inputs[0][0], np.concatenate([s[0], s[0]]))
    for t in range(1, 5):
        np.testing.assert_array_equal(spy.inputs[t][0], np.concatenate([s[t - 1], s[t]]))
    for t, a in enumerate(actions):
        np.testing.assert_array_equal(a[0], spy.outputs[t][0, 1])  # index To − 1 = 1


def test_the_policy_plans_only_for_envs_whose_queue_is_empty(tiny_hopper_runs):
    planner = load_planner(tiny_hopper_runs / "student", n_action_steps=3)
    spy = PlanSpy(planner, fake=True)
    policy = PlannerPolicy(planner)
    obs = np.zeros((3, 11), np.float32)
    policy.reset(obs[:2], {}, np.array([0, 1]))
    policy.act(obs[:2], np.array([0, 1]))
    policy.reset(obs[2:], {}, np.array([2]))  # env 2 starts one step later
    policy.act(obs, np.array([0, 1, 2]))
    assert [len(x) for x in spy.inputs] == [2, 1]  # env 2 alone; envs 0 and 1 still have queued actions


def test_tracking_action_hand_values():
    state = np.array([[1.0, 2.0, 0.5, -0.5], [0.0, 0.0, 0.0, 0.0]])
    waypoint = np.array([[2.0, 2.0, 0.0, 0.0], [0.3, -0.1, 1.0, 2.0]])
    np.testing.assert_allclose(tracking_action(state, waypoint), [[0.5, 0.5], [1.3, 1.9]])


def straight_line(start: np.ndarray, goal: np.ndarray, horizon: int) -> np.ndarray:
    """H states from start to goal at constant velocity (positions move by v·dt per env step)."""
    pos = start[:2] + np.linspace(0.0, 1.0, horizon)[:, None] * (goal[:2] - start[:2])
    vel = np.broadcast_to((goal[:2] - start[:2]) / ((horizon - 1) * DT), (horizon, 2))
    return np.concatenate([pos, vel], axis=1).astype(np.float32)


def drive(policy: PlannerPolicy, reset_cell: tuple[int, int], steps: int = 300):
    """One Maze2d-umaze episode from `reset_cell` with the evaluator's protocol (reset, then act each step)."""
    env = make_env("maze2d-umaze")
    try:
        obs, info = env.reset(seed=0, options={"reset_cell": reset_cell})
        policy.reset(obs[None], {"goal": info["goal"][None]}, np.array([0]))
        states, total = [obs], 0.0
        for _ in range(steps):
            action = policy.act(obs[None], np.array([0]))[0]
            obs, reward, terminated, truncated, info = env.step(action)
            states.append(obs)
            total += reward
            if terminated or truncated:
                break
        return np.array(states), total, info["goal"]
    finally:
        env.close()


@pytest.mark.parametrize("horizon", [128, 16])
def test_the_tracking_controller_drives_the_point_mass_along_a_straight_plan(tiny_maze_runs, monkeypatch, horizon):
    """Start in cell (1, 3) of the U-maze's top corridor, goal (1, 1) at its end: follow a straight plan."""
    art = with_config(load_artifact(tiny_maze_runs / "student"), f"data.horizon={horizon}")
    plans = []

    def plan(self, obs, goal=None):
        plans.append(np.stack([straight_line(o, g, self.horizon) for o, g in zip(obs, goal, strict=True)]))
        return plans[-1]

    monkeypatch.setattr(Planner, "plan", plan)
    states, total, goal = drive(PlannerPolicy(Planner(art), "tracking"), reset_cell=(1, 3))
    assert len(plans) == 1 and len(states) == 301  # one plan per episode, 300 steps (D4RL's umaze length)
    assert np.linalg.norm(states[-1, :2] - goal) < 0.5
    assert total > 0
    assert np.abs(states[:, 0] - 1.0).max() < 0.3  # stayed in the corridor (cells span x in [0.3, 1.3])
    if horizon == 128:  # slow enough to follow: the ball stays on the plan while it lasts
        assert np.abs(states[:horizon, :2] - plans[0][0, :, :2]).max() < 0.15


def test_without_a_moving_plan_the_ball_does_not_reach_the_goal(tiny_maze_runs, monkeypatch):
    """Control for the test above: a plan that stays at the start earns nothing."""
    art = load_artifact(tiny_maze_runs / "student")
    monkeypatch.setattr(Planner, "plan",
                        lambda self, obs, goal=None: np.stack([straight_line(o, o, self.horizon) for o in obs]))
    states, total, goal = drive(PlannerPolicy(Planner(art), "tracking"), reset_cell=(1, 3))
    assert total == 0 and np.linalg.norm(states[-1, :2] - goal) > 1.5


def test_after_the_plan_the_controller_holds_the_last_waypoint_at_rest(tiny_maze_runs):
    planner = load_planner(tiny_maze_runs / "student")
    spy = PlanSpy(planner, fake=True)
    policy = PlannerPolicy(planner, "tracking")
    s = np.array([[0.5, 0.7, 0.1, -0.2]], np.float32)
    policy.reset(s, {"goal": np.array([[1.0, 1.0]])}, np.array([0]))
    plan = spy.outputs[0][0]
    for k in range(planner.horizon + 3):
        a = policy.act(s, np.array([0]))
        w = plan[k + 1] if k < planner.horizon - 1 else np.r_[plan[-1, :2], 0.0, 0.0]
        np.testing.assert_allclose(a, tracking_action(s, w[None]), rtol=1e-6)


def test_the_inverse_dynamics_controller_runs(tiny_maze_runs):
    planner = load_planner(tiny_maze_runs / "student", inverse_dynamics=tiny_maze_runs / "inverse_dynamics")
    policy = PlannerPolicy(planner, "inverse_dynamics")
    env = make_env("maze2d-umaze")
    try:
        obs, info = env.reset(seed=1)
        policy.reset(obs[None], {"goal": info["goal"][None]}, np.array([0]))
        plan = policy.state[0]["plan"]
        for k in range(20):
            action = policy.act(obs[None], np.array([0]))
            assert action.shape == (1, 2) and np.all(np.isfinite(action))
            if k == 0:  # a = unnormalize(f(norm(s_0), norm(plan[1])))
                n = planner.norm["observations"]
                with torch.no_grad():
                    f = planner.inverse_dynamics(n.normalize(torch.as_tensor(obs[None], dtype=torch.float32)),
                                                 n.normalize(torch.as_tensor(plan[1][None])))
                np.testing.assert_allclose(action, planner.norm["actions"].unnormalize(f).numpy(), rtol=1e-5)
            obs, *_ = env.step(action[0])
    finally:
        env.close()


def test_a_controller_must_exist_and_inverse_dynamics_needs_its_model(tiny_maze_runs):
    planner = load_planner(tiny_maze_runs / "student")
    with pytest.raises(ValueError, match="controller must be 'tracking' or 'inverse_dynamics', got 'pid'"):
        PlannerPolicy(planner, "pid")
    with pytest.raises(ValueError, match="needs a planner loaded with an inverse_dynamics run"):
        PlannerPolicy(planner, "inverse_dynamics")
    with pytest.raises(ArtifactError, match="expected a inverse_dynamics artifact, found a reward artifact"):
        load_planner(tiny_maze_runs / "student", inverse_dynamics=tiny_maze_runs / "reward")


# ---------------------------------------------------------------------------------------------- refused inputs


def test_n_action_steps_must_fit_in_a_plan(tiny_hopper_runs, tiny_maze_runs):
    """1 ≤ n_action_steps ≤ H − To + 1: the plan's actions from the first executed one (index To − 1) on."""
    art = load_artifact(tiny_hopper_runs / "student")
    assert Planner(art, n_action_steps=16).n_action_steps == 16
    for bad in (0, 17, -1):
        with pytest.raises(ValueError, match=rf"--n-action-steps must be between 1 and 16, .*got {bad}"):
            Planner(art, n_action_steps=bad)
    to_2 = with_config(art, "data.n_obs_steps=2")
    with pytest.raises(ValueError, match=r"between 1 and 15, .*\(horizon 16, To = 2\), got 16"):
        Planner(to_2, n_action_steps=16)
    with pytest.raises(ValueError, match="eval.n_action_steps must be between 1 and 16, .*got 17"):
        Planner(with_config(art, "eval.n_action_steps=17"))  # a config edited by hand
    with pytest.raises(ValueError, match=r"--n-action-steps applies to action-sequence planners \(MuJoCo\)"):
        load_planner(tiny_maze_runs / "student", n_action_steps=2)


def test_an_unknown_or_absent_device_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match="--device foo: not a device; expected cpu, cuda, cuda:N or mps"):
        load_planner(tmp_path / "no-run", device="foo")  # refused before looking for the run
    with pytest.raises(ValueError, match="--device meta: not supported"):
        check_device("meta")
    assert check_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"--device cuda: CUDA is not available on this machine .*--device cpu"):
            load_planner(tmp_path / "no-run", device="cuda")
        with pytest.raises(ValueError, match="--device cuda:1: CUDA is not available"):
            check_device("cuda:1")


def nan_copy(run, tmp_path, file: str = "model.safetensors"):
    """A copy of a run folder with one floating-point tensor of `file` set to NaN."""
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    tensors = load_file(copy / file)
    name = sorted(k for k, t in tensors.items() if t.is_floating_point())[0]
    tensors[name][...] = float("nan")
    save_file(tensors, copy / file)
    return copy, name


@pytest.mark.parametrize("file", ["model.safetensors", "normalizer.safetensors"])
def test_non_finite_weights_are_refused_when_loading_naming_the_file(tiny_hopper_runs, tmp_path, file):
    run, name = nan_copy(tiny_hopper_runs / "student", tmp_path, file)
    assert load_artifact(run)  # the artifact itself loads ...
    with pytest.raises(ArtifactError, match=rf"{run / file}: tensor '.*' holds NaN or inf values"):
        load_planner(run)  # ... but is no planner


def test_a_non_finite_plan_stops_the_evaluation(tiny_hopper_runs, tmp_path):
    """An in-memory student whose weights went NaN (no load-time check) is refused at its first plan."""
    art = load_artifact(tiny_hopper_runs / "student")
    with torch.no_grad():
        next(art.net.parameters()).fill_(float("nan"))
    policy = PlannerPolicy(Planner(art, "one_step"))
    with pytest.raises(ValueError, match=r"the one_step plan for the episode reset with seed 4 holds NaN or inf "
                                         r"values \(from a finite observation\); refusing to score it"):
        evaluate(policy, lambda: make_env("hopper-random"), 2, seed=4, progress=False)


def test_an_env_of_other_sizes_is_refused_naming_the_run_and_both_sizes(tiny_hopper_runs):
    planner = load_planner(tiny_hopper_runs / "student")
    with pytest.raises(ArtifactError, match=rf"{tiny_hopper_runs / 'student'}: the run was trained with obs_dim=11, "
                                            r"act_dim=3, but the env Walker2d-v5 \(task hopper-random\) has "
                                            r"obs_dim=17, act_dim=6"):
        evaluate(PlannerPolicy(planner), lambda: make_env("walker2d-medium"), 1, progress=False)


def test_a_maze_controller_is_refused_for_an_action_planner(tiny_hopper_runs):
    with pytest.raises(ValueError, match="--controller inverse_dynamics applies to state planners"):
        PlannerPolicy(load_planner(tiny_hopper_runs / "student"), "inverse_dynamics")
