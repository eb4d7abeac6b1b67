"""The `ractd` command line on tiny trained runs: eval (with the legacy metric), config errors, config print."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
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


def one_line_error(result) -> str:
    """The CLI's answer to a user error: exit 2 and exactly one line on stderr."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_eval_names_its_result_by_what_produced_it_and_never_replaces_one(tiny_hopper_runs, tiny_maze_runs,
                                                                         tmp_path):
    hopper = tmp_path / "hopper"
    shutil.copytree(tiny_hopper_runs / "student", hopper)
    args = ["eval", str(hopper), "-n", "2", "--seed", "3"]
    assert runner.invoke(app, args).exit_code == 0
    path = hopper / "eval-last-one_step1-n2-seed3.json"  # no controller: a MuJoCo planner acts itself
    assert json.loads(path.read_text())["seeds"] == [3, 4]
    before = path.read_bytes()
    message = one_line_error(runner.invoke(app, args))
    assert message == f"error: {path}: a result file is already there; pass --overwrite to replace it, or --out " \
                      "to write elsewhere"
    assert path.read_bytes() == before
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    maze = tmp_path / "maze"
    shutil.copytree(tiny_maze_runs / "student", maze)
    assert runner.invoke(app, ["eval", str(maze), "-n", "1", "--sampler", "multistep:2"]).exit_code == 0
    assert (maze / "eval-last-multistep2-tracking-n1-seed0.json").exists()  # Maze2d: the controller too


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "/proc/x/eval.json"], "error: /proc/x/eval.json: cannot write there (No such file or "
                                     "directory); choose another --out"),
    (["--device", "foo"], "error: --device foo: not a device; expected cpu, cuda, cuda:N or mps"),
    (["--n-action-steps", "0"], "error: --n-action-steps must be between 1 and 16, the actions of a plan from the "
                                "first executed one on (horizon 16, To = 1), got 0"),
    (["--n-action-steps", "17"], "error: --n-action-steps must be between 1 and 16, the actions of a plan from the "
                                 "first executed one on (horizon 16, To = 1), got 17"),
    (["--controller", "inverse_dynamics"], "error: RUN: --controller inverse_dynamics applies to state planners "
                                           "(Maze2d); this run plans actions"),
])
def test_eval_refuses_bad_values_in_one_line_before_evaluating(tiny_hopper_runs, tmp_path, monkeypatch, args,
                                                                message):
    import ractd.evaluate

    def no_evaluation(*args, **kwargs):
        raise AssertionError("evaluated")

    monkeypatch.setattr(ractd.evaluate, "evaluate", no_evaluation)
    run = tiny_hopper_runs / "student"
    result = runner.invoke(app, ["eval", str(run), "-n", "1", "--out", str(tmp_path / "eval.json"), *args])
    assert one_line_error(result) == message.replace("RUN", str(run))
    assert not (tmp_path / "eval.json").exists()


def test_eval_refuses_an_absent_cuda_and_an_out_folder(tiny_hopper_runs, tmp_path):
    run = tiny_hopper_runs / "student"
    if not torch.cuda.is_available():
        message = one_line_error(runner.invoke(app, ["eval", str(run), "-n", "1", "--device", "cuda"]))
        assert message.startswith("error: --device cuda: CUDA is not available on this machine")
    message = one_line_error(runner.invoke(app, ["eval", str(run), "-n", "1", "--out", str(tmp_path)]))
    assert message == f"error: {tmp_path}: is a folder; give --out a file name such as {tmp_path / 'eval.json'}"


def test_eval_refuses_nan_weights_naming_the_file(tiny_hopper_runs, tmp_path):
    from safetensors.torch import load_file, save_file

    run = tmp_path / "student"
    shutil.copytree(tiny_hopper_runs / "student", run)
    tensors = load_file(run / "model.safetensors")
    name = sorted(tensors)[0]
    tensors[name][...] = float("nan")
    save_file(tensors, run / "model.safetensors")
    message = one_line_error(runner.invoke(app, ["eval", str(run), "-n", "1"]))
    assert message == (f"error: {run / 'model.safetensors'}: tensor {name!r} holds NaN or inf values (did the "
                       "training diverge?); evaluate other weights (--weights) or retrain")
    assert not list(run.glob("eval-*.json"))


def test_eval_refuses_a_run_whose_task_has_other_sizes(tiny_hopper_runs, tmp_path):
    """The run's config decides the env: a hopper run whose config names walker2d is refused, not crashed."""
    run = tmp_path / "student"
    shutil.copytree(tiny_hopper_runs / "student", run)
    header = json.loads((run / "config.json").read_text())
    header["config"]["task"] = "walker2d-medium"
    (run / "config.json").write_text(json.dumps(header))
    message = one_line_error(runner.invoke(app, ["eval", str(run), "-n", "1"]))
    assert message == (f"error: {run}: the run was trained with obs_dim=11, act_dim=3, but the env Walker2d-v5 "
                       "(task walker2d-medium) has obs_dim=17, act_dim=6")


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
