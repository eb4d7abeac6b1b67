"""The researcher's interface: later stages take the teacher run's dataset and say so, the Python training API
from the README runs, every command helps with examples, `ractd config` shows what `ractd train` would run, and
long work says where it stands (resume step, evaluation ETA, toy progress)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import ractd
from ractd.api import PipelineConfig, task_config
from ractd.cli import app
from ractd.io import read_json
from tests.conftest import TINY

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
TINY_SETS = [a for o in TINY for a in ("--set", o)]


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def train(stage: str, runs: Path, *args: str):
    return runner.invoke(app, ["train", stage, "--task", "Hopper-v5", "--size", "cpu", "--runs", str(runs),
                               *TINY_SETS, *args])


# ---- 4. stages inherit what they can --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hopper_file(tiny_hopper_runs, data_root) -> Path:
    """The tiny hopper-random dataset as a D4RL hdf5 file (a user's own data: the task Hopper-v5 has no dataset)."""
    path = data_root / "hopper-random" / "hopper-random.hdf5"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def own_data_runs(hopper_file, tmp_path_factory) -> Path:
    """`ractd train teacher --task Hopper-v5 --dataset FILE --set data.windows_per_epoch=64`, then reward and
    student with neither option."""
    runs = tmp_path_factory.mktemp("own_data")
    result = train("teacher", runs, "--dataset", str(hopper_file), "--set", "data.windows_per_epoch=64")
    assert result.exit_code == 0, result.output
    return runs


@pytest.mark.parametrize("stage", ["reward", "student"])
def test_later_stages_take_the_teacher_runs_dataset_and_say_so(own_data_runs, hopper_file, stage):
    if stage == "student" and not (own_data_runs / "Hopper-v5" / "reward").exists():
        assert train("reward", own_data_runs).exit_code == 0
    result = train(stage, own_data_runs)
    assert result.exit_code == 0, result.output
    teacher = own_data_runs / "Hopper-v5" / "teacher"
    assert f"using the teacher run's dataset {hopper_file} and data.windows_per_epoch=64 ({teacher})\n" \
        in result.stdout
    data = read_json(own_data_runs / "Hopper-v5" / stage / "config.json")["config"]["data"]
    assert data == read_json(teacher / "config.json")["config"]["data"]


@pytest.mark.parametrize(("args", "says"), [
    (["--dataset", "/elsewhere/other.hdf5"],
     ["data.dataset = '/elsewhere/other.hdf5' here, '{file}' in the teacher run", "drop --dataset"]),
    (["--set", "data.horizon=32"], ["data.horizon = 32 here, 16 in the teacher run", "drop --set data.horizon"]),
])
def test_a_conflicting_data_setting_for_a_later_stage_is_one_error(own_data_runs, hopper_file, args, says):
    result = train("reward", own_data_runs, "--name", "other", *args)
    line = one_line_error(result)
    teacher = own_data_runs / "Hopper-v5" / "teacher"
    assert line.startswith(f"error: {teacher} was trained on other data (") and "--runs DIR" in line, line
    for text in says:
        assert text.format(file=hopper_file) in line, line
    assert not (own_data_runs / "Hopper-v5" / "other").exists()


def test_what_a_stage_may_set_for_itself_and_two_spellings_of_one_file(own_data_runs, hopper_file, monkeypatch):
    root = own_data_runs / "Hopper-v5"
    cfg, inheritance, note = task_config("Hopper-v5", "cpu", overrides=["data.windows_per_epoch=32"]) \
        .for_stage("reward", root)
    assert cfg.data.windows_per_epoch == 32 and cfg.data.dataset == str(hopper_file)
    assert inheritance.run == root / "teacher" and note.startswith(f"using the teacher run's dataset {hopper_file}")
    monkeypatch.chdir(hopper_file.parent)
    cfg, _, _ = task_config("Hopper-v5", "cpu", dataset=hopper_file.name).for_stage("student", root)
    assert cfg.data.dataset == hopper_file.name  # the same file, spelled relative to the working folder
    assert cfg.teacher.unet.down_dims == [8, 16]  # the student also takes the teacher's network
    assert task_config("Hopper-v5", "cpu").for_stage("teacher", root)[1] is None  # the teacher takes nothing


# ---- 5. the Python training API -------------------------------------------------------------------------------
def readme_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    found = [b for b in blocks if containing in b]
    assert len(found) == 1, f"{len(found)} python blocks of README.md contain {containing!r}"
    return found[0]


def test_the_readmes_training_snippet_runs(tiny_hopper_runs, tmp_path, monkeypatch, capsys):
    """The README's block, executed as written; only `ractd.task_config` is swapped for the tiny hopper-random
    pipeline (seconds instead of hours)."""
    real = ractd.task_config

    def tiny(task, size=None, **kwargs):
        overrides = [*kwargs.pop("overrides", ()), *TINY, "data.windows_per_epoch=64"]
        return real("hopper-random", "cpu", overrides=overrides, **kwargs)

    monkeypatch.setattr(ractd, "task_config", tiny)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(readme_block("ractd.Pipeline("), namespace)  # noqa: S102 - the README's own code
    pipeline, planner = namespace["pipeline"], namespace["planner"]
    assert pipeline.folder == Path("runs") / "hopper-random"
    for run in ("teacher", "reward", "student", "ctd"):
        assert read_json(pipeline.folder / run / "meta.json")["status"] == "finished"
    assert read_json(pipeline.folder / "ctd" / "config.json")["config"]["student"]["ctm"]["reward_weight"] == 0
    assert isinstance(planner, ractd.planning.Planner) and namespace["action"].shape == (3,)
    assert "using the teacher run's dataset hopper-random (runs/hopper-random/teacher)" in capsys.readouterr().out
    assert pipeline.fit("teacher") == pipeline.folder / "teacher"  # finished: nothing to do
    assert "already finished" in capsys.readouterr().out


def test_the_api_is_the_cli(tiny_hopper_runs, tmp_path):
    """Pipeline.fit refuses what `ractd train` refuses, with the same message."""
    runs = tmp_path / "runs"
    shutil.copytree(tiny_hopper_runs / "teacher", runs / "hopper-random" / "teacher")
    pipeline = ractd.Pipeline(task_config("hopper-random", "cpu", dataset="other"), runs=runs, verbose=False)
    with pytest.raises(ValueError, match="data.dataset = 'other' here, 'hopper-random' in the teacher run") as e:
        pipeline.fit("reward")
    cli = runner.invoke(app, ["train", "reward", "--task", "hopper-random", "--runs", str(runs), "--dataset", "other"])
    assert one_line_error(cli) == f"error: {e.value}"


def test_import_ractd_is_light():
    code = "import sys, ractd; assert 'torch' not in sys.modules, 'torch'; print(ractd.__version__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == ractd.__version__, result.stderr
    assert {"task_config", "Pipeline", "load_planner"} <= set(dir(ractd))


def test_api_input_mistakes_are_user_errors():
    with pytest.raises(TypeError, match="a list of 'key=value' strings"):
        task_config("hopper-random", "cpu", overrides="seed=1")
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        task_config("hopper-random", "cpu", overrides=["teacher.train.bacth_size=3"])
    with pytest.raises(ValueError, match="unknown stage 'critic'"):
        ractd.Pipeline("hopper-random").fit("critic")


# ---- 6. help that teaches -------------------------------------------------------------------------------------
def commands(command=None, path=()):
    command = command or typer.main.get_command(app)
    yield list(path), command
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        yield from commands(sub, (*path, name))


COMMANDS = [" ".join(path) for path, _ in commands()]


def test_every_command_is_covered():
    assert {"", "train teacher", "train reward", "train student", "train inverse-dynamics", "eval", "bench",
            "export", "quickstart", "toy", "config", "data generate", "data info", "data list", "plot curves",
            "runs"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_helps_with_examples_and_describes_every_option(command):
    path = command.split()
    for flag in ("-h", "--help"):
        result = runner.invoke(app, [*path, flag], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "Examples:" in result.output and "Usage: " in result.output
    cmd = dict((" ".join(p), c) for p, c in commands())[command]
    assert [p.name for p in cmd.params if not getattr(p, "help", None)] == []


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"ractd {ractd.__version__}\n"


def config_json(*args: str) -> dict:
    result = runner.invoke(app, ["config", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_config_takes_the_options_of_train():
    cfg = config_json("hopper-random", "--size", "cpu", "--dataset", "/data/h.hdf5", "--seed", "3", "--device",
                      "cpu", "--set", "student.ctm.reward_weight=0")
    assert cfg["data"]["dataset"] == "/data/h.hdf5" and cfg["seed"] == 3 and cfg["teacher"]["train"]["seed"] == 3
    assert cfg["student"]["ctm"]["reward_weight"] == 0


def test_config_and_train_default_to_the_same_size(monkeypatch):
    import torch

    for cuda, size in ((False, "cpu"), (True, "paper")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        assert config_json("hopper-random")["size"] == size
        assert task_config("hopper-random").size == size  # what `ractd train` builds its config with


def test_a_runs_config_json_is_a_config_file(tiny_hopper_runs, tmp_path):
    header = read_json(tiny_hopper_runs / "student" / "config.json")
    assert set(header) >= {"stage", "obs_dim", "act_dim", "dataset_fingerprint", "config"}
    assert config_json("hopper-random", "--config", str(tiny_hopper_runs / "student" / "config.json")) \
        == header["config"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(header["config"]))
    assert config_json("hopper-random", "--config", str(bare)) == header["config"]
    line = one_line_error(runner.invoke(app, ["config", "hopper-medium", "--config", str(bare)]))
    assert line == f"error: {bare}: a config of task 'hopper-random', not 'hopper-medium'; give the task " \
                   "hopper-random (or remove \"task\" from the file)"


# ---- 7. feedback on long or resumed work ----------------------------------------------------------------------
def test_a_resumed_run_says_from_which_step(tiny_hopper_runs, tmp_path):
    runs = tmp_path / "runs"
    args = ["train", "teacher", "--task", "hopper-random", "--size", "cpu", "--runs", str(runs), *TINY_SETS,
            "--set", "data.windows_per_epoch=64"]
    assert runner.invoke(app, [*args, "--set", "teacher.train.max_steps=1"]).exit_code == 0
    folder = runs / "hopper-random" / "teacher"
    total = read_json(folder / "meta.json")["total_steps"]
    assert read_json(folder / "meta.json")["status"] == "stopped" and total > 1
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"resuming {folder} from step 1 of {total:,}\n" in result.stdout
    again = runner.invoke(app, args)
    assert f"{folder}: already finished (step {total})" in again.stdout


def test_the_evaluation_eta_counts_the_episode_lengths_seen_so_far():
    from ractd.evaluate.rollout import expected_steps

    assert expected_steps([], [5, 5], 10, 1000) == 12 * 1000  # nothing ended yet: the step limit
    # ended 100 and 200; running at 150 (expects 200, the mean of the longer ones) and 300 (none longer: 1000);
    # two pending at the mean of all four, 375
    assert expected_steps([100, 200], [150, 300], 2, 1000) == 100 + 200 + 200 + 1000 + 2 * 375
    assert expected_steps([20, 30, 40], [], 0, 1000) == 90  # all ended: the real total


def test_evaluation_progress_ends_at_the_real_number_of_steps(monkeypatch):
    """Hopper episodes of a random policy end early: the bar's total ends at the steps taken, not 1000 each."""
    import numpy as np

    import ractd.evaluate.rollout as rollout
    from ractd.envs import make_env

    seen = {}

    class Recorder:
        def update(self, completed=None, total=None, **kwargs):
            seen.update(completed=completed, total=total)

        def advance(self, n=1):
            raise AssertionError("the bar counts real steps")

    class Context:
        def __enter__(self):
            return Recorder()

        def __exit__(self, *exc):
            return False

    class Random:
        def reset(self, observations, infos, env_indices):
            self.rng = np.random.default_rng(0)

        def act(self, observations, env_indices):
            return self.rng.uniform(-1, 1, (len(env_indices), 3))

    monkeypatch.setattr(rollout, "progress_bar", lambda *args, **kwargs: Context())
    result = rollout.evaluate(Random(), lambda: make_env("hopper-random"), 6, max_parallel=3)
    assert seen["completed"] == seen["total"] == int(result.lengths.sum()) < 6 * 1000


def test_the_toy_shows_progress_per_optimizer_step(monkeypatch):
    import ractd.toy as toy

    calls = {"advance": 0}

    class Bar:
        def advance(self, n=1):
            calls["advance"] += n

        def update(self, **kwargs):
            pass

    class Context:
        def __init__(self, description, total, **kwargs):
            calls["total"] = total

        def __enter__(self):
            return Bar()

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(toy, "progress_bar", Context)
    cfg = toy.ToyConfig(teacher_steps=3, student_steps=2, n_data=64, n_eval=8, batch_size=16)
    toy.run_toy(cfg, progress=True)
    assert calls == {"total": 3 + 2 * 2 + 1, "advance": 3 + 2 * 2 + 1}


def test_the_pipeline_config_is_plain_data():
    cfg = task_config("hopper-random", "cpu", seed=2, dataset="x.hdf5")
    assert cfg == PipelineConfig("hopper-random", "cpu", ("seed=2", 'data.dataset="x.hdf5"'))
    assert cfg.resolve().seed == 2 and cfg.with_overrides("seed=4").resolve().seed == 4


@pytest.mark.parametrize("command", COMMANDS)
def test_help_keeps_the_extras_in_install_hints(command):
    """Rich markup must not eat `[extra]` from a `pip install 'ractd[extra]'` hint of a command's help."""
    import re

    cmd = dict((" ".join(p), c) for p, c in commands())[command]
    texts = [cmd.help or "", *(getattr(p, "help", "") or "" for p in cmd.params)]
    extras = {m for t in texts for m in re.findall(r"ractd\\?\[(\w+)\]", t)}
    out = runner.invoke(app, [*command.split(), "--help"], env={"COLUMNS": "200"}).output
    for extra in extras:
        assert f"ractd[{extra}]" in out, f"{command} --help lost [{extra}]"
