"""The roundabout diffusion planner end to end on tiny sizes: expert-style data of both training combinations, a
composition-conditioned plan model trained through the ordinary teacher stage (`ooc-roundabout` preset), and the
model driving in mixed traffic through `evaluate_no_crash`, reproducibly, with true and random kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ractd.data.generate import roundabout as rb
from ractd.envs.roundabout_traffic import BICYCLE, CAR, EGO, NULL, composition_tokens
from ractd.planning.driving import DiffusionDriver, load_driver, random_kinds
from ractd.prepare import PlanWindows, prepare_data
from ractd.presets import resolve_config
from ractd.stages import train_stage

pytest.importorskip("highway_env")
torch.set_num_threads(1)

TINY = ["teacher.unet.down_dims=[8, 16, 32]", "teacher.unet.time_embed_dim=8", "teacher.train.epochs=1",
        "data.windows_per_epoch=256", "teacher.train.batch_size=32", "teacher.ddpm.num_train_steps=6",
        "teacher.train.checkpoint_every=0", "teacher.train.tensorboard=false"]


@pytest.fixture(scope="module")
def roundabout_data(data_root):
    path = data_root / "roundabout-experts"
    if not (path / "roundabout-experts.hdf5").exists():
        rb.generate_roundabout_expert_data(path, "roundabout-experts",
                                           {"car": rb.ConstantPolicy(), "bicycle": rb.ConstantPolicy()},
                                           episodes_per_combination=3, seed=0, log=lambda _: None)
    return path


@pytest.fixture(scope="module")
def runs(roundabout_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("roundabout_runs")
    for name, extra in (("xattn", []), ("none", ["conditioning.kind=none"]), ("concat", ["conditioning.kind=concat"])):
        train_stage(resolve_config("ooc-roundabout", "cpu", [*TINY, *extra]), "teacher", root, name=name,
                    progress=False)
    return root


def test_training_windows_carry_the_kinds_of_their_first_observation(roundabout_data):
    cfg = resolve_config("ooc-roundabout", "cpu", TINY)
    prep = prepare_data(cfg)
    windows = PlanWindows(cfg, prep)
    idx = np.arange(len(windows))
    batch = windows.get_batch(idx)
    steps = windows.windows.steps(windows.index[idx])
    assert batch["x"].shape == (len(idx), 8, 5 + 30) and batch["cond"].dtype == torch.int64
    assert np.array_equal(batch["cond"].numpy(), composition_tokens(prep.dataset.observations[steps[:, 0]]))
    kinds = set(np.unique(batch["cond"].numpy()[:, 1:]))
    assert kinds <= {NULL, CAR, BICYCLE} and {CAR, BICYCLE} <= kinds  # both training combinations


@pytest.mark.parametrize("name", ["xattn", "none", "concat"])
def test_a_trained_model_drives_reproducibly(runs, name):
    driver = load_driver(runs / name)
    first = rb.evaluate_no_crash(driver, "mixed", episodes=2, seed=0)
    assert first["episodes"] == 2 and 0.0 <= first["no_crash_rate"] <= 1.0 and first["length_mean"] > 0
    assert rb.evaluate_no_crash(driver, "mixed", episodes=2, seed=0) == first  # the episode seeds fix the noise
    actions = driver.act(np.zeros((3, 30), np.float32), [np.random.default_rng(i) for i in range(3)])
    assert actions.shape == (3,) and actions.dtype == np.int64 and ((actions >= 0) & (actions < 5)).all()
    with pytest.raises(ValueError, match="one generator for a batch of 3 rows"):
        driver.act(np.zeros((3, 30), np.float32), np.random.default_rng(0))


@pytest.mark.parametrize("kinds", ["true", "random"])
def test_episodes_driven_together_equal_episodes_driven_alone(runs, kinds):
    """One batched planner call per step for several episodes gives each episode the plans it gets alone (its noise
    and random kinds come from its own generator)."""
    driver = load_driver(runs / "xattn", kinds=kinds)
    seeds = rb.episode_seeds(4, 0, 3)
    alone = rb.run_episodes(driver, "mixed", seeds)
    together = rb.run_episodes(driver, "mixed", seeds, batch=3)
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a.actions, b.actions) and np.array_equal(a.observations, b.observations)


def test_guidance_and_random_kinds(runs):
    art_driver = load_driver(runs / "xattn")
    assert art_driver.guidance == 1.0 and art_driver.network_calls_per_action == 6
    rng = np.random.default_rng(0)
    kinds = np.array([[EGO, CAR, CAR, NULL, BICYCLE]] * 200)
    drawn = random_kinds(kinds, rng)
    assert (drawn[:, 0] == EGO).all() and (drawn[:, 3] == NULL).all()
    assert set(np.unique(drawn[:, [1, 2, 4]])) == {CAR, BICYCLE}  # both kinds drawn
    control = load_driver(runs / "xattn", kinds="random", guidance=0.0)
    assert "random kinds" in control.describe() and control.guidance == 0.0
    assert rb.evaluate_no_crash(control, "mixed", episodes=1, seed=0)["episodes"] == 1
    with pytest.raises(ValueError, match="kinds must be one of"):
        load_driver(runs / "xattn", kinds="swapped")


def test_only_a_roundabout_plan_model_drives(tiny_maze_runs):
    from ractd.artifact import load_artifact

    with pytest.raises(ValueError, match="not a roundabout plan-diffusion run"):
        DiffusionDriver(load_artifact(tiny_maze_runs / "teacher"))


def test_ractd_eval_drives_a_roundabout_run(runs, tmp_path):
    import json

    from typer.testing import CliRunner

    from ractd.cli import app

    out = tmp_path / "eval.json"
    r = CliRunner().invoke(app, ["eval", str(runs / "xattn"), "-n", "2", "--eval-seeds", "2", "--traffic", "mixed",
                                 "--traffic", "bicycles-3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert set(result["traffic"]) == {"mixed", "bicycles-3"} and result["seeds"] == [0, 1]
    mixed = result["traffic"]["mixed"]
    crashes = [100 * s["crashes"] / 2 for s in mixed["per_seed"]]
    assert mixed["crashes_per_100"]["mean"] == pytest.approx(np.mean(crashes))
    assert mixed["success"]["mean"] == pytest.approx(1 - np.mean(crashes) / 100)
    counts = {k: sum(s["action_counts"][k] for s in mixed["per_seed"]) for k in rb.ACTION_NAMES}
    assert mixed["action_fractions"] == pytest.approx({k: v / sum(counts.values()) for k, v in counts.items()})
    assert "crashes per 100 episodes" in r.output
    again = CliRunner().invoke(app, ["eval", str(runs / "xattn"), "-n", "2", "--out", str(out)])
    assert again.exit_code != 0 and "already there" in again.output  # never overwritten silently
    bad = CliRunner().invoke(app, ["eval", str(runs / "xattn"), "--traffic", "trucks", "--out", str(tmp_path / "b")])
    assert bad.exit_code != 0 and "unknown roundabout traffic 'trucks'" in bad.output


def test_bc_baseline_learns_the_expert_action_and_drives(roundabout_data, tmp_path):
    """The BC-MLP baseline trained through the training loop on a rule that depends on the observation reaches the
    rule on the training observations, reloads from safetensors + JSON, and drives with the experts' signature."""
    from ractd.data.d4rl import load_d4rl
    from ractd.loop_config import LoopConfig
    from ractd.planning.driving import load_bc_driver
    from ractd.train.bc import train_bc_policy

    data = load_d4rl(roundabout_data / "roundabout-experts.hdf5")
    obs = data.observations
    rule = np.where(obs[:, 6 + 1] > obs[:, 1], 3, 4)  # FASTER when the nearest road user is east of the ego
    assert 0.1 < (rule == 3).mean() < 0.9
    cfg = LoopConfig(epochs=60, batch_size=32, lr=3e-3, warmup_steps=0, weight_decay=0.0, ema=False,
                     checkpoint_every=0, tensorboard=False, log_every=10)
    result = train_bc_policy(obs, np.eye(5)[rule], tmp_path / "bc", cfg, hidden=(32, 32), progress=False)
    driver = load_bc_driver(result.run_dir)
    assert driver.num_parameters == 30 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5
    rngs = [np.random.default_rng(i) for i in range(len(obs))]
    assert (driver.act(obs, rngs) == rule).mean() >= 0.9
    assert rb.evaluate_no_crash(driver, "mixed", episodes=2, seed=0, batch=2)["episodes"] == 2
    with pytest.raises(ValueError, match="not a BC policy run"):
        load_bc_driver(runs_dir_without_bc(tmp_path))


def runs_dir_without_bc(tmp_path):
    d = tmp_path / "other"
    d.mkdir()
    (d / "meta.json").write_text("{}")
    return d
