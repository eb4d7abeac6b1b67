"""Inputs checked against the task before any training: a dataset of the wrong sizes, a misspelt task name
(with a did-you-mean), and a dataset whose episodes are mostly shorter than the horizon (one warning)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from ractd.cli import app
from ractd.data import OfflineDataset
from ractd.data.d4rl import write_d4rl_hdf5
from ractd.envs.registry import get_task
from ractd.prepare import prepare_data, stage_windows
from ractd.presets import resolve_config
from tests.conftest import TINY

runner = CliRunner()


def error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_dataset_of_other_sizes_than_the_task_is_refused_before_training(tiny_hopper_runs, tmp_path):
    result = runner.invoke(app, ["train", "teacher", "--task", "Walker2d-v5", "--dataset", "hopper-random",
                                 "--runs", str(tmp_path), "--size", "cpu"])
    line = error_line(result)
    assert "observations of size 11 and actions of size 3" in line
    assert "task Walker2d-v5 has an observation space of size 17 and an action space of size 6" in line
    assert "--dataset" in line and "--task" in line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [["train", "teacher", "--task", "hoper-medium-replay"], ["config", "maze2d-umze"],
                                  ["train", "reward", "--task", "Hoper-v5"]])
def test_a_misspelt_task_is_refused_with_the_closest_name(tmp_path, argv):
    result = runner.invoke(app, [*argv, *(["--runs", str(tmp_path)] if argv[0] == "train" else [])])
    line = error_line(result)
    typo = argv[-1]
    expected = {"hoper-medium-replay": "hopper-medium-replay", "maze2d-umze": "maze2d-umaze", "Hoper-v5": "Hopper-v5"}
    assert f"unknown task '{typo}' (did you mean '{expected[typo]}'?)" in line
    assert not any(tmp_path.iterdir())


def test_every_kind_of_task_name_still_resolves():
    for task in ("hopper-medium-replay", "hopper-random", "walker2d-expert", "hopper-medium-v2", "maze2d-umaze-v1",
                 "Hopper-v5", "Pendulum-v1"):
        assert resolve_config(task, "cpu").task == task
    assert get_task("Pendulum-v1") is get_task("Pendulum-v1")  # a gymnasium env is built once for its sizes
    with pytest.raises(KeyError, match=r"did you mean 'hopper-medium'\?"):
        get_task("hopper-mediun")


def short_episode_dataset(path, lengths) -> str:
    """A hopper-shaped dataset with episodes of the given lengths."""
    n = int(sum(lengths))
    rng = np.random.default_rng(0)
    ends = np.cumsum(lengths) - 1
    timeouts = np.zeros(n, bool)
    timeouts[ends] = True
    arrays = {"observations": rng.normal(size=(n, 11)).astype(np.float32),
              "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
              "rewards": rng.normal(size=n).astype(np.float32), "terminals": np.zeros(n, bool), "timeouts": timeouts}
    assert OfflineDataset.from_arrays(arrays).num_episodes == len(lengths)
    return str(write_d4rl_hdf5(path, arrays, {}))


def test_mostly_short_episodes_give_one_warning_with_the_numbers(tmp_path):
    path = short_episode_dataset(tmp_path / "short.hdf5", [10] * 36 + [17] * 4)
    cfg = resolve_config("hopper-random", "cpu", [*TINY, f'data.dataset="{path}"'])  # horizon 16
    prep = prepare_data(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train, _ = stage_windows(cfg, prep, "teacher")
        stage_windows(cfg, prep, "reward")  # one-step windows: nothing is dropped
    assert len(train) == 8 and len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message
    assert "36 of 40 training episodes (360 steps) are shorter than the horizon of 16 steps" in message
    assert "8 windows from the other 4 episodes" in message and "--set data.horizon=10" in message  # 2 levels: even

    long = short_episode_dataset(tmp_path / "long.hdf5", [10] * 10 + [40] * 30)  # a few short ones: no warning
    cfg = resolve_config("hopper-random", "cpu", [*TINY, f'data.dataset="{long}"'])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage_windows(cfg, prepare_data(cfg), "teacher")
    assert caught == []
