"""`ractd data generate` at every generation level, through the installed entry point in a subprocess.

Tiny sizes: a few hundred steps per dataset, rolled out from the shipped behaviour policies, and one
2,048-step PPO run (`--train-steps`, which retrains) shared by the retrained hopper levels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ractd.data.d4rl import read_d4rl_hdf5

TRAIN_STEPS = "2048"  # one PPO rollout of SB3's default 2,048 steps


def ractd_command() -> list[str]:
    """The `ractd` console script next to this interpreter (else `python -m ractd`)."""
    script = Path(sys.executable).parent / "ractd"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "ractd"]


def run_ractd(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"RACTD_DATA_DIR": str(root / "data"), "MINARI_DATASETS_PATH": str(root / "minari")}
    return subprocess.run(
        [*ractd_command(), *args], env=env, cwd=root, capture_output=True, text=True, timeout=300
    )


def assert_generated(root: Path, name: str, steps: int | None) -> dict:
    result_folder = root / "data" / name
    arrays = read_d4rl_hdf5(result_folder / f"{name}.hdf5")
    if steps is not None:
        assert len(arrays["rewards"]) == steps
    assert arrays["terminals"][-1] or arrays["timeouts"][-1]  # the last episode is closed
    for f in ("card.json", "returns.png"):
        assert (result_folder / f).is_file(), f
    return arrays


@pytest.fixture(scope="module")
def hopper_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root where `hopper-medium` was generated first with retrained policies, progress bars on (SB3's
    needs tqdm): this trains and saves the PPO behaviour policies every other hopper level here reuses."""
    root = tmp_path_factory.mktemp("cli-levels")
    result = run_ractd(root, "data", "generate", "hopper-medium", "--steps", "400", "--train-steps", TRAIN_STEPS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "data" / "hopper-policies" / "policies.json").is_file()
    return root


def test_maze2d_umaze(tmp_path: Path) -> None:
    result = run_ractd(tmp_path, "data", "generate", "maze2d-umaze", "--steps", "1000", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "success_rate" in result.stdout
    assert_generated(tmp_path, "maze2d-umaze", 1000)
    assert (tmp_path / "minari" / "ractd" / "maze2d-umaze-v0").is_dir()


def test_hopper_random(tmp_path: Path) -> None:
    result = run_ractd(tmp_path, "data", "generate", "hopper-random", "--steps", "300", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_generated(tmp_path, "hopper-random", 300)
    assert not (tmp_path / "data" / "hopper-policies").exists()  # random needs no behaviour policies


def test_walker2d_medium_expert_from_the_shipped_policies(tmp_path: Path) -> None:
    result = run_ractd(tmp_path, "data", "generate", "walker2d-medium-expert", "--steps", "400", "--no-progress",
                       "--no-minari")
    assert result.returncode == 0, result.stdout + result.stderr
    arrays = assert_generated(tmp_path, "walker2d-medium-expert", 400)
    assert arrays["observations"].shape == (400, 17) and arrays["actions"].shape == (400, 6)
    assert not (tmp_path / "data" / "walker2d-policies").exists()  # nothing trained
    again = run_ractd(tmp_path, "data", "generate", "walker2d-medium-expert", "--steps", "400", "--no-progress",
                      "--no-minari", "--overwrite")
    assert again.returncode == 0, again.stdout + again.stderr
    same = read_d4rl_hdf5(tmp_path / "data" / "walker2d-medium-expert" / "walker2d-medium-expert.hdf5")
    for k, v in arrays.items():
        assert (v == same[k]).all(), k  # the same seed, the same dataset


def test_hopper_medium(hopper_root: Path) -> None:
    assert_generated(hopper_root, "hopper-medium", 400)
    assert (hopper_root / "minari" / "ractd" / "hopper-medium-v0").is_dir()


@pytest.mark.parametrize(("name", "steps"), [("hopper-expert", 300), ("hopper-medium-expert", 600)])
def test_hopper_rollout_levels(hopper_root: Path, name: str, steps: int) -> None:
    result = run_ractd(hopper_root, "data", "generate", name, "--steps", str(steps), "--train-steps", TRAIN_STEPS,
                       "--no-minari", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_generated(hopper_root, name, steps)
    assert "eval return" not in result.stdout  # the cached policies were reused, not retrained


def test_hopper_medium_replay(hopper_root: Path) -> None:
    """Without --steps, medium-replay is everything the learner collected before the medium snapshot."""
    result = run_ractd(hopper_root, "data", "generate", "hopper-medium-replay", "--train-steps", TRAIN_STEPS,
                       "--no-minari", "--no-progress")
    assert result.returncode == 0, result.stdout + result.stderr
    arrays = assert_generated(hopper_root, "hopper-medium-replay", None)
    assert 0 < len(arrays["rewards"]) <= int(TRAIN_STEPS)
