"""`ractd data generate roundabout-experts` through the installed entry point: tiny experts (128 PPO steps, the
recipe shrunk with --recipe), their successful episodes as a dataset, the experts reused on a second run, and the
clear errors (an expert below its no-crash threshold collects nothing; --steps; a malformed override)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ractd.data.d4rl import load_d4rl
from ractd.data.generate.roundabout_dataset import recipe_overrides

from .test_generate_levels_cli import run_ractd

pytest.importorskip("highway_env")
pytest.importorskip("stable_baselines3")

TINY = ["--train-steps", "128", "--recipe", "ppo.n_steps=64", "--recipe", "ppo.n_epochs=1",
        "--recipe", "vec_env=dummy", "--recipe", "eval_episodes=2", "--no-progress"]


def test_experts_then_their_successful_episodes_and_the_experts_reused(tmp_path: Path) -> None:
    r = run_ractd(tmp_path, "data", "generate", "roundabout-experts", *TINY, "--recipe", "min_no_crash=0",
                  "--episodes", "3")
    assert r.returncode == 0, r.stderr
    ds = load_d4rl(tmp_path / "data" / "roundabout-experts" / "roundabout-experts.hdf5")
    assert ds.num_episodes == 6 and ds.observations.shape[1] == 30
    assert np.bincount(ds.extras["infos/combination"][ds.episode_starts]).tolist() == [3, 3]  # car, bicycle
    policies = tmp_path / "data" / "roundabout-policies"
    stamps = {p.name: p.stat().st_mtime_ns for p in policies.iterdir()}
    assert set(stamps) == {"car.json", "car.safetensors", "bicycle.json", "bicycle.safetensors"}
    again = run_ractd(tmp_path, "data", "generate", "roundabout-experts", *TINY, "--recipe", "min_no_crash=0",
                      "--episodes", "3")
    assert again.returncode == 2 and "already exists" in again.stderr  # never replaced silently
    again = run_ractd(tmp_path, "data", "generate", "roundabout-experts", *TINY, "--recipe", "min_no_crash=0",
                      "--episodes", "4", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in policies.iterdir()} == stamps  # experts reused, not retrained
    assert load_d4rl(tmp_path / "data" / "roundabout-experts" / "roundabout-experts.hdf5").num_episodes == 8


def test_an_expert_below_its_threshold_stops_before_any_data(tmp_path: Path) -> None:
    r = run_ractd(tmp_path, "data", "generate", "roundabout-experts", *TINY, "--recipe", "min_no_crash=1.01",
                  "--episodes", "2")
    assert r.returncode == 1 and "below the no-crash threshold 1.01" in r.stderr
    assert not (tmp_path / "data" / "roundabout-experts").exists()


def test_bad_options_are_named(tmp_path: Path) -> None:
    r = run_ractd(tmp_path, "data", "generate", "roundabout-experts", "--steps", "100")
    assert r.returncode == 2 and "--episodes" in r.stderr
    r = run_ractd(tmp_path, "data", "generate", "roundabout-experts", "--recipe", "n_stepz")
    assert r.returncode == 2 and "KEY=VALUE" in r.stderr
    r = run_ractd(tmp_path, "data", "generate", "roundabout-experts", "--recipe", "no_such_field=1")
    assert r.returncode == 2 and "no_such_field" in r.stderr


def test_recipe_overrides_parse_json_and_sub_keys() -> None:
    assert recipe_overrides(["ppo.n_steps=64", "vec_env=dummy", "net.pi=[128, 128]", "min_no_crash=0.9"]) == {
        "ppo": {"n_steps": 64}, "vec_env": "dummy", "net": {"pi": [128, 128]}, "min_no_crash": 0.9}
    with pytest.raises(ValueError, match="only ppo"):
        recipe_overrides(["traffic.x=1"])
