"""The Maze2d out-of-combination benchmark end to end through the CLI: generate data, train tiny conditioned and
unconditioned plan-diffusion models for a few dozen steps, evaluate a handful of ID and OOC tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ractd.cli import app
from ractd.data.ooc_maze2d import HELD_OUT_PAIRS, PAIR_NAMES, pair_ids, quarter_point_waypoints

runner = CliRunner()
TASK = "ooc-maze2d-medium"
TINY = ["data.horizon=96", "data.max_dataset_steps=30000", "data.windows_per_epoch=256",
        "teacher.unet.down_dims=[8,16]", "teacher.unet.time_embed_dim=8", "teacher.ddpm.num_train_steps=8",
        "teacher.train.epochs=6", "teacher.train.checkpoint_every=0", "teacher.train.tensorboard=false",
        "ooc.test_run_steps=30000", "ooc.n_tasks=6"]
HELD_OUT = {PAIR_NAMES[i] for i in pair_ids(HELD_OUT_PAIRS)}


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


@pytest.fixture(scope="module")
def ooc_runs(data_root, tmp_path_factory):
    """A 30,000-step maze2d-medium dataset, and tiny cross-attention and unconditioned runs trained by the CLI."""
    result = runner.invoke(app, ["data", "generate", "maze2d-medium", "--steps", "30000", "--no-minari",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    runs = tmp_path_factory.mktemp("ooc_runs")
    for name, extra in (("xattn", []), ("none", ["conditioning.kind=none"])):
        result = runner.invoke(app, ["train", "teacher", "--task", TASK, "--size", "cpu", "--runs", str(runs),
                                     "--name", name, *sets(TINY + extra)])
        assert result.exit_code == 0, result.output
    return runs / TASK


def test_training_records_the_split_and_keeps_no_held_out_window(ooc_runs):
    meta = json.loads((ooc_runs / "xattn" / "meta.json").read_text())
    split = meta["ooc_split"]
    assert split["horizon"] == 96 and split["held_out_windows"] > 0 and split["training_windows"] > 0
    assert sorted(split["held_out_pairs"]) == sorted(HELD_OUT)
    assert split["windows"] == split["training_windows"] + split["held_out_windows"]
    assert split["held_out_windows"] == sum(split["windows_per_pair"][p] for p in HELD_OUT)
    assert meta["status"] == "finished"
    rows = (ooc_runs / "xattn" / "train.csv").read_text().strip().splitlines()
    assert len(rows) > 1


def test_plan_windows_give_actions_states_and_waypoint_tokens(ooc_runs):
    """A training batch: x = [norm(actions), norm(states)], tokens = γ(norm(quarter-point states)), and only
    windows of training pairs."""
    from ractd.conditioning import condition_tokens
    from ractd.prepare import PlanWindows, prepare_data
    from ractd.presets import resolve_config

    cfg = resolve_config(TASK, "cpu", TINY)
    prep = prepare_data(cfg)
    assert prep.dataset.num_episodes == 1  # one continuous run (data.join_episodes)
    windows = PlanWindows(cfg, prep)
    idx = np.arange(0, len(windows), max(1, len(windows) // 50))
    batch = windows.get_batch(idx)
    assert batch["x"].shape == (idx.size, 96, 6) and batch["cond"].shape == (idx.size, 3, 84)
    steps = windows.windows.steps(windows.index[idx])
    norm = prep.normalizers
    assert np.allclose(batch["x"][..., :2], norm["actions"].normalize(prep.dataset.actions[steps]), atol=1e-6)
    assert np.allclose(batch["x"][..., 2:], norm["observations"].normalize(prep.dataset.observations[steps]),
                       atol=1e-6)
    wp = norm["observations"].normalize(quarter_point_waypoints(prep.dataset.observations, steps))
    assert torch.allclose(batch["cond"], condition_tokens(torch.as_tensor(wp, dtype=torch.float32),
                                                          cfg.conditioning), atol=1e-5)
    kept = windows.split.pairs[windows.index]
    assert not np.isin(kept, pair_ids(HELD_OUT_PAIRS)).any()


def test_eval_scores_id_and_ooc_tasks_per_pair_with_a_plot(ooc_runs, tmp_path):
    out = tmp_path / "xattn.json"
    args = ["eval", str(ooc_runs / "xattn"), "--split", "both", "--tasks", "4", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["conditioning"] == "cross_attention" and d["guidance"] == 1.3 and d["waypoints"] == "true"
    for split in ("id", "ooc"):
        s = d["splits"][split]
        assert s["summary"]["n"] == 4 and len(s["per_plan"]["plan_success"]) == 4
        assert s["summary"]["reaches_goal"] == 1.0  # the goal state is inpainted: the plan ends on it
        assert "closed_loop_success" in s["summary"] and 0 <= s["summary"]["plan_success"] <= 1
        pairs = set(s["per_pair"])
        assert pairs <= HELD_OUT if split == "ooc" else not pairs & HELD_OUT
        assert sum(p["n"] for p in s["per_pair"].values()) == 4
    png = out.with_suffix(".png")
    assert png.is_file() and png.stat().st_size > 10_000
    # the same seed gives the same plans; the task set is shared by every model of the task
    again = tmp_path / "again.json"
    assert runner.invoke(app, [*args[:-1], str(again), "--no-closed-loop"]).exit_code == 0
    d2 = json.loads(again.read_text())
    assert d2["splits"]["ooc"]["per_plan"]["waypoint_hits"] == d["splits"]["ooc"]["per_plan"]["waypoint_hits"]
    assert d2["tasks"] == d["tasks"] and (ooc_runs / "ooc-tasks").is_dir()
    assert runner.invoke(app, args).exit_code == 2  # never replaces a result without --overwrite


def test_eval_controls_random_waypoints_guidance_and_the_unconditioned_model(ooc_runs, tmp_path):
    result = runner.invoke(app, ["eval", str(ooc_runs / "xattn"), "--split", "ooc", "--tasks", "3", "--guidance",
                                 "0", "--waypoints", "random", "--no-closed-loop"])
    assert result.exit_code == 0, result.output
    d = json.loads((ooc_runs / "xattn" / "ooc-eval-model-ooc-random-g0-n3-seed0.json").read_text())
    assert d["guidance"] == 0.0 and list(d["splits"]) == ["ooc"]
    none = tmp_path / "none.json"
    result = runner.invoke(app, ["eval", str(ooc_runs / "none"), "--tasks", "3", "--out", str(none),
                                 "--no-closed-loop"])
    assert result.exit_code == 0, result.output
    d = json.loads(none.read_text())
    assert d["conditioning"] == "none" and d["guidance"] is None and set(d["splits"]) == {"id", "ooc"}


@pytest.mark.parametrize(("args", "message"), [
    (["--split", "test"], "--split must be id, ooc or both"),
    (["--waypoints", "none"], "waypoints must be one of"),
    (["--weights", "best"], "last or ema weights"),
    (["--guidance", "-1"], "guidance scale must be >= 0"),
])
def test_eval_refuses_bad_options_in_one_line(ooc_runs, args, message):
    result = runner.invoke(app, ["eval", str(ooc_runs / "xattn"), *args])
    assert result.exit_code == 2 and message in result.stderr, result.output


def test_the_planner_imposes_start_and_goal_exactly(ooc_runs):
    from ractd.planning.plan_diffusion import load_plan_planner

    planner = load_plan_planner(ooc_runs / "xattn", guidance=1.3)
    rng = np.random.default_rng(0)
    start = np.array([[1.0, 1.0, 0.1, -0.2], [5.0, 6.0, 0.0, 0.0]])
    goal = np.array([[3.0, 2.0, 0.0, 0.0], [1.0, 1.0, 0.3, 0.3]])
    plans = planner.plan(start, goal, rng.uniform(1, 5, size=(2, 3, 4)))
    assert plans.states.shape == (2, 96, 4) and plans.actions.shape == (2, 96, 2)
    assert np.allclose(plans.states[:, 0], start, atol=1e-5) and np.allclose(plans.states[:, -1], goal, atol=1e-5)
    with pytest.raises(ValueError, match="needs waypoints"):
        planner.plan(start, goal)
