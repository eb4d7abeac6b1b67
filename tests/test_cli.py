"""The `ractd` command line on tiny trained runs: eval (with the legacy metric), config errors, config print."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ractd.cli import app

runner = CliRunner()


def test_eval_writes_seeded_result_with_legacy_metric(tiny_hopper_runs, tmp_path):
    out = tmp_path / "eval.json"
    args = ["eval", str(tiny_hopper_runs / "student"), "-n", "3", "--seed", "5", "--legacy-running-max",
            "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["seeds"] == [5, 6, 7] and d["n_episodes"] == 3
    true, legacy = np.array(d["returns"]), np.array(d["legacy_running_max_returns"])
    assert np.all(legacy >= true - 1e-9)  # Σ_t max_{τ≤t} r_τ ≥ Σ_t r_t
    # the same seeds give the same returns
    again = tmp_path / "again.json"
    assert runner.invoke(app, [*args[:-1], str(again)]).exit_code == 0
    assert json.loads(again.read_text())["returns"] == d["returns"]


def test_eval_maze_with_inverse_dynamics_and_teacher_heun(tiny_maze_runs, tmp_path):
    out = tmp_path / "maze.json"
    result = runner.invoke(app, ["eval", str(tiny_maze_runs / "teacher"), "-n", "2", "--sampler", "heun:5",
                                 "--controller", "inverse_dynamics", "--out", str(out)])
    assert result.exit_code == 0, result.output
    d = json.loads(out.read_text())
    assert d["lengths"] == [300, 300]  # Maze2d never terminates early
    assert "(NFE 8)" in d["policy_description"]


def test_a_config_typo_fails_before_any_work_naming_the_field(tmp_path):
    result = runner.invoke(app, ["train", "teacher", "--task", "hopper-medium-replay", "--runs", str(tmp_path),
                                 "--set", "teacher.train.bacth_size=3"])
    assert result.exit_code == 2
    assert "teacher.train.bacth_size" in result.output and "batch_size" in result.output
    assert not any(tmp_path.iterdir())  # nothing written


def test_wrong_sampler_for_a_stage_is_a_clear_error(tiny_hopper_runs):
    result = runner.invoke(app, ["eval", str(tiny_hopper_runs / "teacher"), "--sampler", "one_step", "-n", "1"])
    assert result.exit_code == 2
    assert "needs a student run" in result.output


def test_config_prints_the_resolved_preset():
    result = runner.invoke(app, ["config", "maze2d-large", "--size", "paper"])
    assert result.exit_code == 0, result.output
    cfg = json.loads(result.output)
    assert cfg["data"]["horizon"] == 384 and cfg["teacher"]["unet"]["down_dims"] == [256, 512, 1024, 2048]
