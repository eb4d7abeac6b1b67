"""Re-running `ractd train` into an existing run folder: the folder changes only when a fresh run starts or a
compatible run resumes; any other re-run is one error line naming the differing fields, and the folder stays
byte-identical (every file under it hashed before and after)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ractd.artifact import load_artifact
from ractd.cli import app
from ractd.io import read_json
from ractd.runfolder import header_differences
from tests.conftest import TINY

runner = CliRunner()
HOPPER = [*TINY, "data.windows_per_epoch=256"]  # exactly the settings of the `tiny_hopper_runs` fixture
ESCAPES = "--name NEW", "--restart"


def train(stage: str, runs: Path, *args: str, overrides: tuple[str, ...] = ()):
    argv = ["train", stage, "--task", "hopper-random", "--runs", str(runs), "--size", "cpu", *args]
    for o in (*HOPPER, *overrides):
        argv += ["--set", o]
    return runner.invoke(app, argv)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def datasets(tiny_hopper_runs, tmp_path_factory) -> dict[str, Path]:
    """Another hopper-random (same shape, other seed) and a Maze2d dataset (other sizes), as hdf5 files."""
    from ractd.data.generate.locomotion import generate_locomotion
    from ractd.data.generate.maze2d import generate_maze2d

    root = tmp_path_factory.mktemp("other_data")
    generate_locomotion("hopper-random", root / "hopper", seed=1, steps=3000, progress=False, minari=False)
    generate_maze2d("maze2d-umaze", root / "maze", seed=0, steps=600, progress=False, minari=False)
    return {"same shape": root / "hopper" / "hopper-random.hdf5", "other sizes": root / "maze" / "maze2d-umaze.hdf5"}


@pytest.fixture()
def runs(tiny_hopper_runs, tmp_path) -> Path:
    """A copy of the finished tiny teacher, reward and student runs, as RUNS/hopper-random/<stage>."""
    root = tmp_path / "runs"
    shutil.copytree(tiny_hopper_runs, root / "hopper-random")
    return root


def test_the_same_command_says_the_run_is_finished_and_changes_nothing(runs):
    for stage in ("teacher", "reward", "student"):
        folder = runs / "hopper-random" / stage
        before = snapshot(folder)
        result = train(stage, runs)
        assert result.exit_code == 0, result.output
        assert f"{folder}: already finished" in result.stdout and all(e in result.stdout for e in ESCAPES)
        assert result.stderr == "" and snapshot(folder) == before


REFUSED = {
    "other dataset, same shape": ("teacher", ["--dataset", "{same shape}"], [],
                                  ["data.dataset = '{same shape}' here, 'hopper-random' in the run",
                                   "dataset_fingerprint = "]),
    "other reward weight": ("student", [], ["student.ctm.reward_weight=0"],
                            ["student.ctm.reward_weight = 0.0 here, 0.5 in the run"]),
    "other network": ("teacher", [], ["teacher.unet.down_dims=[8,16,32]"],
                      ["teacher.unet.down_dims = [8, 16, 32] here, [8, 16] in the run"]),
    "other loop setting": ("reward", [], ["reward.train.lr=0.01"], ["reward.train.lr = 0.01 here, 0.001 in the run"]),
    "other observation size": ("teacher", ["--dataset", "{other sizes}"], [],
                               ["observations of size 4 and actions of size 2",
                                "observation space of size 11 and an action space of size 3"]),
    "cuda without CUDA": ("teacher", ["--device", "cuda"], [],
                          ["--device cuda: CUDA is not available on this machine", "--device cpu"]),
    "restart refused by a check": ("teacher", ["--device", "cuda", "--restart"], [], ["--device cpu"]),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_rerun_that_does_not_fit_is_one_error_and_writes_nothing(runs, datasets, monkeypatch, case):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stage, args, overrides, expected = REFUSED[case]
    args = [a.format(**datasets) for a in args]
    folder = runs / "hopper-random" / stage
    before = snapshot(folder)
    result = train(stage, runs, *args, overrides=tuple(overrides))
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    for text in expected:
        assert text.format(**datasets) in line, line
    if "holds another run" in line:
        assert all(e in line for e in ESCAPES), line
    assert snapshot(folder) == before
    assert sorted(p.name for p in (runs / "hopper-random").iterdir()) == ["reward", "student", "teacher"]


def test_a_new_name_trains_a_new_run_next_to_the_old_one(runs):
    before = snapshot(runs / "hopper-random" / "student")
    result = train("student", runs, "--name", "ctd", overrides=("student.ctm.reward_weight=0",))
    assert result.exit_code == 0, result.output
    ctd = load_artifact(runs / "hopper-random" / "ctd")
    assert ctd.config.student.ctm.reward_weight == 0 and ctd.meta["status"] == "finished"
    assert snapshot(runs / "hopper-random" / "student") == before


def test_restart_starts_the_run_over_with_the_new_config(runs):
    folder = runs / "hopper-random" / "teacher"
    (folder / "eval-last-heun79-tracking-seed0.json").write_text("{}")  # a result of the old weights
    result = train("teacher", runs, "--restart", overrides=("teacher.unet.down_dims=[8,16,32]",))
    assert result.exit_code == 0, result.output
    art = load_artifact(folder)
    assert art.config.teacher.unet.down_dims == [8, 16, 32] and art.meta["status"] == "finished"
    assert "resumes" not in art.meta and not (folder / "eval-last-heun79-tracking-seed0.json").exists()


def test_an_unfinished_run_resumes_with_other_bookkeeping_but_not_with_other_settings(runs):
    folder = runs / "hopper-random" / "partial"
    result = train("teacher", runs, "--name", "partial", overrides=("teacher.train.max_steps=1",))
    assert result.exit_code == 0, result.output
    assert read_json(folder / "meta.json")["status"] == "stopped"

    before = snapshot(folder)
    result = train("teacher", runs, "--name", "partial", overrides=("teacher.train.batch_size=32",))
    assert result.exit_code == 2
    assert "teacher.train.batch_size = 32 here, 256 in the run" in one_error_line(result)
    assert snapshot(folder) == before

    result = train("teacher", runs, "--name", "partial", overrides=("teacher.train.log_every=1",))
    assert result.exit_code == 0, result.output
    meta = read_json(folder / "meta.json")
    assert meta["status"] == "finished" and [r["step"] for r in meta["resumes"]] == [1]
    assert json.loads((folder / "config.json").read_text())["config"]["teacher"]["train"]["log_every"] == 1


def test_a_folder_that_is_not_a_run_is_left_alone(runs):
    folder = runs / "hopper-random" / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("keep me")
    for args in (["--name", "notes"], ["--name", "notes", "--restart"]):
        result = train("teacher", runs, *args)
        assert result.exit_code == 2 and "not a ractd run folder" in one_error_line(result)
        assert snapshot(folder) == {"todo.txt": hashlib.sha256(b"keep me").hexdigest()}


def test_the_comparison_ignores_bookkeeping_and_other_stages_settings(tiny_hopper_runs):
    saved = read_json(tiny_hopper_runs / "teacher" / "config.json")
    new = json.loads(json.dumps(saved))
    train_cfg = new["config"]["teacher"]["train"]
    train_cfg.update(log_every=1, checkpoint_every=5, tensorboard=True, max_steps=3, device="cuda")
    new["config"].update(device="cuda", size="paper")
    new["config"]["student"]["ctm"]["reward_weight"] = 0.0  # the teacher does not read the student's settings
    new["config"]["reward"]["dims"] = [4]
    assert header_differences(saved, new) == []
    new["config"]["teacher"]["reward_guidance"] = 0.1  # a reward-guided teacher reads the student's reward run
    new["config"]["student"]["reward_run"] = "other"
    new["obs_dim"] = 12
    assert header_differences(saved, new) == [
        "student.reward_run = 'other' here, 'reward' in the run",
        "teacher.reward_guidance = 0.1 here, 0.0 in the run",
        "obs_dim = 12 here, 11 in the run",
    ]
