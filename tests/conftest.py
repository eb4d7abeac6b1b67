"""Shared fixtures: tiny generated datasets and tiny trained runs (seconds), isolated from the user's folders."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # 2 threads are ~10× slower than 1 on a loaded 2-core machine
os.environ.setdefault("MPLBACKEND", "Agg")

# Tiny everything: one U-Net level pair, a few dozen optimizer steps per stage.
TINY = [
    "teacher.unet.down_dims=[8,16]", "teacher.unet.time_embed_dim=8",
    "teacher.train.epochs=2", "reward.train.epochs=2", "student.train.epochs=2",
    "inverse_dynamics.train.epochs=1", "student.ctm.ode_steps_max=1",
    "teacher.train.checkpoint_every=0", "reward.train.checkpoint_every=0", "student.train.checkpoint_every=0",
    "teacher.train.tensorboard=false", "reward.train.tensorboard=false", "student.train.tensorboard=false",
    "inverse_dynamics.train.tensorboard=false",
]


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"  # the repository's scripts (not part of the package)


@pytest.fixture
def fresh_script(monkeypatch):
    """`fresh_script(name, *also)` imports scripts/<name>.py anew, with scripts/ on sys.path for this test only;
    `also` names further script modules dropped from sys.modules first, so they are imported anew too."""
    monkeypatch.syspath_prepend(str(SCRIPTS))

    def load(name: str, *also: str):
        for module in (name, *also):
            monkeypatch.delitem(sys.modules, module, raising=False)
        return importlib.import_module(name)

    return load


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A private RACTD_DATA_DIR / MINARI_DATASETS_PATH for the whole test session."""
    root = tmp_path_factory.mktemp("ractd_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RACTD_DATA_DIR", str(root / "datasets"))
    mp.setenv("MINARI_DATASETS_PATH", str(root / "minari"))
    yield root / "datasets"
    mp.undo()


@pytest.fixture(scope="session")
def tiny_maze_runs(data_root, tmp_path_factory) -> Path:
    """maze2d-umaze: a 6,000-step generated dataset and tiny teacher, reward, student, inverse-dynamics runs."""
    from ractd.data.generate.maze2d import generate_maze2d
    from ractd.presets import resolve_config
    from ractd.stages import train_stage

    generate_maze2d("maze2d-umaze", data_root / "maze2d-umaze", seed=0, steps=6000, progress=False, minari=False)
    cfg = resolve_config("maze2d-umaze", "cpu", TINY + ["data.horizon=16", "data.windows_per_epoch=128"])
    root = tmp_path_factory.mktemp("runs") / "maze2d-umaze"
    for stage in ("teacher", "reward", "student", "inverse_dynamics"):
        train_stage(cfg, stage, root, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_hopper_runs(data_root, tmp_path_factory) -> Path:
    """hopper-random: a 3,000-step random-policy dataset and tiny teacher, reward, student runs."""
    from ractd.data.generate.locomotion import generate_locomotion
    from ractd.presets import resolve_config
    from ractd.stages import train_stage

    generate_locomotion("hopper-random", data_root / "hopper-random", seed=0, steps=3000, progress=False,
                        minari=False)
    cfg = resolve_config("hopper-random", "cpu", TINY + ["data.windows_per_epoch=256"])
    root = tmp_path_factory.mktemp("runs") / "hopper-random"
    for stage in ("teacher", "reward", "student"):
        train_stage(cfg, stage, root, progress=False)
    return root
