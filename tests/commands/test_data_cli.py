"""`ractd data` CLI: generate, info, list through typer's CliRunner (tiny Maze2d datasets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ractd.commands.data import app

runner = CliRunner()


@pytest.fixture()
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RACTD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_generate_info_list(roots: Path) -> None:
    args = ["generate", "maze2d-umaze", "--steps", "2000", "--seed", "3", "--no-progress"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    folder = roots / "data" / "maze2d-umaze"
    assert (folder / "maze2d-umaze.hdf5").is_file() and (folder / "returns.png").is_file()
    card = json.loads((folder / "card.json").read_text())
    assert card["steps"] == 2000 and card["generation"]["seed"] == 3
    assert "success_rate" in result.output and "episodes" in result.output
    assert (roots / "minari" / "ractd" / "maze2d-umaze-v0").is_dir()

    result = runner.invoke(app, ["info", "maze2d-umaze"])
    assert result.exit_code == 0, result.output
    assert "2,000" in result.output and "normalized" in result.output and "min 23.85" in result.output
    assert (roots / "maze2d-umaze-returns.png").is_file()

    result = runner.invoke(app, ["info", "ractd/maze2d-umaze-v0", "--plot", str(roots / "m.png")])
    assert result.exit_code == 0, result.output
    assert f"{card['episodes']:,}" in result.output and (roots / "m.png").is_file()

    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "maze2d-umaze" in result.output and "2,000 steps" in result.output
    assert "ractd/maze2d-umaze-v0" in result.output


def test_generate_to_explicit_out_dir(roots: Path) -> None:
    out = roots / "elsewhere"
    result = runner.invoke(app, ["generate", "maze2d-medium-v1", "--steps", "600", "--out", str(out),
                                 "--no-minari", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "maze2d-medium.hdf5").is_file()
    assert not (roots / "minari").exists()


def test_errors_are_clear(roots: Path) -> None:
    result = runner.invoke(app, ["generate", "hopper-mediun", "--no-progress"])
    assert result.exit_code != 0 and "unknown task" in result.output
    result = runner.invoke(app, ["generate", "Pendulum-v1", "--no-progress"])
    assert result.exit_code != 0 and "not a dataset" in result.output
    result = runner.invoke(app, ["info", "nothing-here"])
    assert result.exit_code == 1 and "nothing-here: dataset not found" in result.output
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "no generated datasets" in result.output


def test_regenerating_an_existing_dataset_needs_overwrite(roots: Path) -> None:
    """Runs are fingerprinted on a dataset's contents: replacing it takes --overwrite."""
    args = ["generate", "maze2d-umaze", "--steps", "600", "--no-progress", "--no-minari"]
    assert runner.invoke(app, args).exit_code == 0
    hdf5 = roots / "data" / "maze2d-umaze" / "maze2d-umaze.hdf5"
    before = hdf5.read_bytes()
    result = runner.invoke(app, [*args, "--seed", "1"])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert lines[0] == (f"error: {hdf5}: dataset maze2d-umaze already exists (runs trained on it would no longer "
                        "match its contents); pass --overwrite to replace it")
    assert hdf5.read_bytes() == before
    result = runner.invoke(app, [*args, "--seed", "1", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert hdf5.read_bytes() != before


def test_an_existing_minari_copy_also_needs_overwrite(roots: Path) -> None:
    assert runner.invoke(app, ["generate", "maze2d-umaze", "--steps", "600", "--no-progress"]).exit_code == 0
    (roots / "data" / "maze2d-umaze" / "maze2d-umaze.hdf5").unlink()
    result = runner.invoke(app, ["generate", "maze2d-umaze", "--steps", "600", "--no-progress"])
    assert result.exit_code == 2 and "ractd/maze2d-umaze-v0" in result.stderr and "--overwrite" in result.stderr
    result = runner.invoke(app, ["generate", "maze2d-umaze", "--steps", "600", "--no-progress", "--no-minari"])
    assert result.exit_code == 0, result.output  # not writing Minari: nothing to replace
