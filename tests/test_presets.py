"""Task presets as data: 12 tasks × {cpu, paper} in JSON files, the generic preset, adding a task, ablations."""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from pathlib import Path

import pytest

from ractd.config import RunConfig, apply_overrides, from_dict, to_dict, upgrade_config_dict
from ractd.presets import (
    GENERIC,
    PACKAGE_DIR,
    PRESET_PATH_ENV,
    SIZES,
    TASKS,
    generic_preset,
    preset,
    preset_file,
    read_preset_file,
    resolve_config,
    task_names,
)

LOCOMOTION = [f"{e}-{m}" for e in ("hopper", "walker2d", "halfcheetah") for m in ("medium-replay", "medium",
                                                                                   "medium-expert")]
MAZES = ["maze2d-umaze", "maze2d-medium", "maze2d-large"]
OOC = ["ooc-maze2d-medium", "ooc-maze2d-large", "ooc-roundabout"]  # out of combination (tests/test_ooc_presets.py)
ALL = [(t, s) for t in LOCOMOTION + MAZES for s in ("cpu", "paper")]
GOLDEN = Path(__file__).with_name("presets_golden.json")


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_the_twelve_tasks_and_two_sizes():
    assert sorted(TASKS) == sorted(LOCOMOTION + MAZES + OOC)
    assert SIZES == ("cpu", "paper")
    assert sorted(p.stem for p in PACKAGE_DIR.glob("*.json")) == sorted([*TASKS, GENERIC])


# ------------------------------------------------------------------------------------- the golden file

# tests/presets_golden.json is `to_dict(preset(task, size))` of all 24 presets as the Python presets built them
# before they became JSON files. Later schema changes are applied to it here, never by editing it:
# `upgrade_config_dict` drops the keys retired since (what an old run's config.json goes through), and
IGNORED = {"student.ctm.edm"}  # the student takes its teacher's EDM constants (absent from every preset file)
MOVED = {"student.ctm.init_noise_scale": "teacher.edm.init_noise_scale"}  # applied where the new schema moved it
# sections and fields added since (conditioned plan diffusion; the frozen nets' mode): absent from the golden file,
# at their defaults here
ADDED = ("conditioning", "guidance", "planning", "ooc", "teacher.ddpm.prediction", "teacher.ddpm.action_weight",
         "data.join_episodes", "data.plan_pad_after", "student.frozen_nets_mode", "student.ctm.reward_scale")
# values changed since by measurement, per (task, size): the cpu σ_r of hopper-medium-replay (docs/presets.md)
CHANGED = {("hopper-medium-replay", "cpu"): {"student.ctm.reward_weight": 0.1}}


def _comparable(golden: dict, new: dict) -> tuple[dict, dict]:
    g, n = flatten(upgrade_config_dict(golden)), flatten(new)
    for old_key, new_key in MOVED.items():
        if old_key in g and old_key not in n and new_key in n:
            g[new_key] = g.pop(old_key)
    for d in (g, n):
        for key in [k for k in d if any(k == i or k.startswith(i + ".") for i in IGNORED)]:
            del d[key]
    defaults = flatten(to_dict(RunConfig()))
    for key in [k for k in n if any(k == a or k.startswith(a + ".") for a in ADDED)]:
        assert key not in g and n.pop(key) == defaults[key], key
    return g, n


@pytest.mark.parametrize(("task", "size"), ALL)
def test_every_preset_resolves_to_the_golden_config(task, size):
    golden = json.loads(GOLDEN.read_text())[task][size]
    g, n = _comparable(golden, to_dict(preset(task, size)))
    g.update(CHANGED.get((task, size), {}))
    assert n.keys() == g.keys(), f"only golden: {sorted(g.keys() - n.keys())}, only new: {sorted(n.keys() - g.keys())}"
    assert {k: v for k, v in n.items() if v != g[k]} == {}


def test_the_golden_file_still_has_the_retired_keys_the_upgrade_drops():
    """The comparison above really exercises `upgrade_config_dict` on configs an older ractd wrote."""
    golden = json.loads(GOLDEN.read_text())
    old = flatten(golden["maze2d-umaze"]["paper"])
    assert old["inverse_dynamics.enabled"] is True and old["eval.max_parallel"] == 100
    assert "inverse_dynamics.enabled" not in flatten(upgrade_config_dict(golden["maze2d-umaze"]["paper"]))


# ------------------------------------------------------------------------------------- the files are the presets


@pytest.mark.parametrize("name", [*LOCOMOTION, *MAZES, GENERIC])
def test_each_file_is_a_complete_delta_per_size(name):
    """The preset is the file: merged over the RunConfig defaults it gives the preset, nothing is computed."""
    path = PACKAGE_DIR / f"{name}.json"
    raw = json.loads(path.read_text())
    assert set(raw) == {"description", "paper", "cpu"} and raw["description"]
    for size in SIZES:
        delta = raw[size]
        assert not {"task", "size"} & set(delta)
        built = from_dict(RunConfig, {**delta, "task": name, "size": size,
                                      "data": {**delta["data"], "dataset": name}})
        assert built == (preset(name, size) if name != GENERIC else generic_preset(name, size))
        assert "student" in delta and "reward_weight" in delta["student"]["ctm"]  # σ_r is always explicit


@pytest.mark.parametrize(("task", "size"), ALL)
def test_every_preset_round_trips_through_json(task, size):
    cfg = preset(task, size)
    assert (cfg.task, cfg.size, cfg.data.dataset) == (task, size, task)
    text = json.dumps(cfg.to_dict())
    again = from_dict(RunConfig, json.loads(text))
    assert again == cfg
    assert json.dumps(again.to_dict()) == text


def test_an_unknown_size_is_refused():
    with pytest.raises(ValueError, match=r"size must be one of \('cpu', 'paper'\), got 'gpu'"):
        preset("hopper-medium", "gpu")
    with pytest.raises(ValueError, match=r"size must be one of"):
        preset("Hopper-v5", "gpu")


# ------------------------------------------------------------------------------------- the generic preset


def test_any_other_task_gets_the_generic_preset():
    cfg = preset("Hopper-v5", "cpu")
    assert cfg.task == "Hopper-v5" and cfg.data.dataset == "Hopper-v5"
    assert (cfg.data.x_key, cfg.data.cond, cfg.reward.input) == ("actions", "history", "action_obs")
    assert cfg == generic_preset("Hopper-v5", "cpu")
    g = generic_preset("Walker2d-v5", "paper", dataset="/data/walker.hdf5")
    assert g.data.dataset == "/data/walker.hdf5" and g.teacher.unet.down_dims == [512, 1024, 2048]
    path = preset("/data/my file.hdf5", "paper")  # a path is never a preset name
    assert path.data.dataset == path.task == "/data/my file.hdf5"
    assert preset("Hopper-Medium-Replay").student.ctm.reward_weight == 0.5  # names are exact, as before


def test_the_generic_loss_weights_are_neutral():
    """α = β = 1 (every task's) and σ_r = 0.5, the median of the nine locomotion presets' σ_r."""
    for size in SIZES:
        ctm = generic_preset("Ant-v5", size).student.ctm
        assert (ctm.alpha, ctm.beta, ctm.reward_weight) == (1.0, 1.0, 0.5)
        assert ctm.reward_weight == statistics.median(preset(t, size).student.ctm.reward_weight for t in LOCOMOTION)


@pytest.mark.parametrize("size", SIZES)
def test_every_other_generic_value_is_the_most_common_one_of_the_locomotion_presets(size):
    generic = flatten(to_dict(generic_preset("Ant-v5", size)))
    tasks = [flatten(to_dict(preset(t, size))) for t in LOCOMOTION]
    for key, value in generic.items():
        if key in ("task", "data.dataset", "student.ctm.reward_weight"):
            continue
        counts = Counter(json.dumps(t[key]) for t in tasks).most_common()
        assert json.dumps(value) == counts[0][0] and (len(counts) == 1 or counts[0][1] > counts[1][1]), key


# ------------------------------------------------------------------------------------- adding a task

NEW_TASK = {
    "description": "a user's task",
    "paper": {"data": {"dataset": "/data/ant.hdf5"}, "student": {"ctm": {"reward_weight": 0.25}}},
    "cpu": {"teacher": {"unet": {"down_dims": [8, 16], "time_embed_dim": 8}},
            "student": {"ctm": {"reward_weight": 0.125}}},
}


@pytest.fixture
def extra_dir(tmp_path):
    (tmp_path / "ant-medium.json").write_text(json.dumps(NEW_TASK))
    return tmp_path


def test_adding_a_task_is_adding_a_file(extra_dir):
    assert "ant-medium" in task_names([extra_dir]) and "ant-medium" not in TASKS
    cpu = preset("ant-medium", "cpu", preset_dirs=[extra_dir])
    assert (cpu.task, cpu.size, cpu.data.dataset, cpu.student.ctm.reward_weight) == (
        "ant-medium", "cpu", "ant-medium", 0.125)
    assert cpu.teacher.unet.down_dims == [8, 16]
    assert cpu.student.train.batch_size == RunConfig().student.train.batch_size  # the defaults fill the rest
    paper = resolve_config("ant-medium", "paper", ["seed=3"], preset_dirs=[extra_dir])
    assert (paper.data.dataset, paper.student.ctm.reward_weight, paper.seed) == ("/data/ant.hdf5", 0.25, 3)
    assert preset("ant-medium", "cpu").student.ctm.reward_weight == 0.5  # not on the path: generic


def test_the_preset_path_environment_variable_adds_directories(extra_dir, tmp_path_factory, monkeypatch):
    empty = tmp_path_factory.mktemp("empty")
    monkeypatch.setenv(PRESET_PATH_ENV, f"{empty}{os.pathsep}{extra_dir}")
    assert preset_file("ant-medium") == extra_dir / "ant-medium.json"
    assert preset("ant-medium", "cpu").student.ctm.reward_weight == 0.125
    assert "ant-medium" in task_names() and preset("hopper-medium", "paper").student.train.epochs == 700


def test_an_earlier_directory_shadows_a_shipped_preset(tmp_path):
    (tmp_path / "hopper-medium.json").write_text(json.dumps(NEW_TASK))
    assert preset("hopper-medium", "paper", preset_dirs=[tmp_path]).student.ctm.reward_weight == 0.25
    assert preset("hopper-medium", "paper").student.ctm.reward_weight == 1.0


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", r"cannot read preset"),
    ("[1, 2]", r"a preset is a JSON object"),
    (json.dumps({"paper": {}}), r"missing: \['cpu'\]"),
    (json.dumps({"paper": {}, "cpu": {}, "gpu": {}}), r"unknown: \['gpu'\]"),
    (json.dumps({"paper": {}, "cpu": 3}), r"\[cpu\]: expected an object, got int"),
    (json.dumps({"paper": {"task": "x"}, "cpu": {}}), r"\[paper\]: remove \['task'\]: the task is the file name"),
    (json.dumps({"paper": {}, "cpu": {"student": {"ctm": {"reward_wieght": 1}}}}),
     r"\[cpu\]: student\.ctm\.reward_wieght: unknown key \(did you mean 'reward_weight'\?\)"),
    (json.dumps({"paper": {}, "cpu": {"eval": {"episodes": 10}}}), r"\[cpu\]: eval\.episodes: unknown key"),
])
def test_a_bad_preset_file_names_the_file_the_size_and_the_field(tmp_path, content, message):
    path = tmp_path / "bad-task.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        preset("bad-task", "cpu", preset_dirs=[tmp_path])
    assert str(info.value).startswith(str(path))


def test_read_preset_file_returns_the_sizes(extra_dir):
    sizes = read_preset_file(extra_dir / "ant-medium.json")
    assert sizes == {"cpu": NEW_TASK["cpu"], "paper": NEW_TASK["paper"]}


# ------------------------------------------------------------------------------------- paper size values

# σ_r of the released configs (docs/algorithm.md §10.3, "σ_r code"), student epochs and the rollout period
STUDENT = {
    "hopper-medium-replay": (1.0, 400, 10), "hopper-medium": (1.0, 700, 10), "hopper-medium-expert": (0.5, 400, 5),
    "walker2d-medium-replay": (0.5, 700, 10), "walker2d-medium": (0.4, 700, 10),
    "walker2d-medium-expert": (0.2, 700, 10),
    "halfcheetah-medium-replay": (1.0, 400, 5), "halfcheetah-medium": (0.5, 400, 5),
    "halfcheetah-medium-expert": (0.0, 400, 5),
    "maze2d-umaze": (1e-4, 400, 5), "maze2d-medium": (1e-4, 400, 5), "maze2d-large": (1e-5, 400, 5),
}
MAZE_SHAPES = {  # H, down_dims, student batch (docs/algorithm.md §10.1, §10.3)
    "maze2d-umaze": (128, [256, 512, 1024], 1400),
    "maze2d-medium": (256, [512, 1024, 2048], 320),
    "maze2d-large": (384, [256, 512, 1024, 2048], 320),
}


def test_hopper_medium_replay_paper_values():
    c = preset("hopper-medium-replay", "paper")
    assert (c.data.horizon, c.data.n_obs_steps, c.data.x_key, c.data.cond) == (16, 1, "actions", "history")
    assert (c.data.discount, c.data.termination_penalty) == (0.99, 0.0)
    t = c.teacher
    assert (t.kind, t.unet.down_dims, t.unet.time_embed_dim, t.unet.kernel_size, t.unet.n_groups) == (
        "edm", [512, 1024, 2048], 128, 5, 8)
    assert (t.train.batch_size, t.train.epochs, t.train.lr, t.train.weight_decay, t.train.warmup_steps) == (
        1024, 1000, 1e-4, 1e-6, 2000)
    assert (t.train.ema, t.train.ema_power, t.train.ema_max_decay, t.train.betas) == (True, 0.75, 0.9999,
                                                                                      (0.95, 0.999))
    s = c.student
    assert (s.train.batch_size, s.train.epochs, s.train.lr, s.train.weight_decay, s.train.warmup_steps) == (
        4800, 400, 1e-4, 1e-4, 500)
    assert (s.ctm.reward_weight, s.ctm.alpha, s.ctm.beta, s.ctm.ode_steps_max, s.ctm.target_decay) == (
        1.0, 1.0, 1.0, 1, 0.0)
    assert (s.ctm.reward_on, s.ctm.dsm_on, s.unet_dropout) == ("dsm_pred", "jump_to_sigma_min", 0.2)
    assert (s.reward_aggregate, s.teacher_weights, s.eval_every_epochs, s.top_k) == ("first_action", "online", 10, 5)
    r = c.reward
    assert (r.input, r.dims, r.val_ratio) == ("action_obs", [64, 128, 256], 0.1)
    assert (r.train.batch_size, r.train.epochs, r.train.lr, r.train.weight_decay, r.train.warmup_steps) == (
        64, 50, 2e-4, 1e-3, 20)
    assert (r.train.select_metric, r.train.select_mode, r.train.export) == ("val_loss", "min", "online")
    assert c.eval.n_action_steps == 1


def test_maze2d_large_paper_values():
    c = preset("maze2d-large", "paper")
    assert (c.data.horizon, c.data.n_obs_steps, c.data.x_key, c.data.cond, c.data.goal_resegment) == (
        384, 2, "observations", "first_last", True)
    assert c.teacher.unet.down_dims == [256, 512, 1024, 2048] and c.teacher.unet.time_embed_dim == 256
    assert (c.teacher.train.epochs, c.teacher.train.weight_decay, c.teacher.train.warmup_steps) == (400, 1e-4, 500)
    assert (c.student.ctm.reward_weight, c.student.reward_aggregate, c.student.top_k) == (1e-5, "sum_states", 3)
    assert (c.student.train.batch_size, c.student.train.weight_decay) == (320, 1e-6)
    assert (c.reward.input, c.reward.train.epochs, c.reward.train.batch_size, c.reward.train.lr) == (
        "states", 100, 64, 2e-4)
    assert c.eval.maze_controller == "tracking"


@pytest.mark.parametrize("task", LOCOMOTION + MAZES)
def test_student_weights_epochs_and_rollout_period_per_task(task):
    s = preset(task, "paper").student
    assert (s.ctm.reward_weight, s.train.epochs, s.eval_every_epochs) == STUDENT[task]


@pytest.mark.parametrize("task", LOCOMOTION)
def test_locomotion_teacher_and_reward_per_task(task):
    """docs/algorithm.md §10.1 (9 identical teacher configs) and §10.2 (halfcheetah: batch 32; -medium: 100
    epochs, lr 1e-4)."""
    c = preset(task, "paper")
    assert c.teacher.unet.down_dims == [512, 1024, 2048] and c.teacher.train.batch_size == 1024
    assert c.student.train.batch_size == 4800
    cheetah = task.startswith("halfcheetah")
    r = c.reward.train
    assert r.batch_size == (32 if cheetah else 64)
    assert (r.epochs, r.lr) == ((100, 1e-4) if task == "halfcheetah-medium" else (50, 2e-4))
    assert (r.weight_decay, r.warmup_steps) == (1e-3, 20)


@pytest.mark.parametrize("task", MAZES)
def test_maze_shapes_per_task(task):
    c = preset(task, "paper")
    horizon, dims, batch = MAZE_SHAPES[task]
    assert (c.data.horizon, c.teacher.unet.down_dims, c.student.train.batch_size) == (horizon, dims, batch)
    assert c.teacher.train.batch_size == 1024 and c.reward.train.epochs == 100


# ------------------------------------------------------------------------------------- cpu size

# What `cpu` may change: sizes, schedules and bookkeeping. Everything else is the paper's code path.
CPU_MAY_CHANGE = {
    "size", "data.horizon", "data.windows_per_epoch",
    "teacher.unet.down_dims", "teacher.unet.time_embed_dim",
    "student.ctm.ode_steps_max", "student.ctm.dsm_on",  # the two objective knobs the cpu presets pick
    "student.eval_every_epochs", "student.eval_episodes", "student.top_k",
}
SCHEDULE = {"epochs", "batch_size", "lr", "warmup_steps", "checkpoint_every", "log_every"}


@pytest.mark.parametrize("task", [*LOCOMOTION, *MAZES, GENERIC])
def test_cpu_presets_change_only_sizes_and_schedules(task):
    cpu, paper = flatten(preset(task, "cpu").to_dict()), flatten(preset(task, "paper").to_dict())
    measured = CHANGED.get((task, "cpu"), {})  # σ_r chosen by the seed statistics at the cpu size
    changed = {k for k in paper if cpu[k] != paper[k]}
    unexpected = {k for k in changed - CPU_MAY_CHANGE - measured.keys()
                  if not (".train." in k and k.rsplit(".", 1)[1] in SCHEDULE)}
    assert not unexpected, f"{task}: cpu changes {sorted(unexpected)}"
    assert cpu["student.ctm.reward_weight"] == measured.get("student.ctm.reward_weight",
                                                            paper["student.ctm.reward_weight"])


@pytest.mark.parametrize("task", [*LOCOMOTION, *MAZES, GENERIC])
def test_cpu_presets_are_small(task):
    c = preset(task, "cpu")
    assert max(c.teacher.unet.down_dims) <= 128
    assert c.data.windows_per_epoch is not None
    steps = c.teacher.train.epochs * -(-c.data.windows_per_epoch // c.teacher.train.batch_size)
    assert steps <= 5000  # a step budget, independent of the dataset size
    assert c.data.horizon % 2 ** (len(c.teacher.unet.down_dims) - 1) == 0


@pytest.mark.parametrize("task", MAZES)
def test_cpu_maze_presets_plan_half_the_paper_horizon(task):
    assert preset(task, "cpu").data.horizon * 2 == preset(task, "paper").data.horizon


# ------------------------------------------------------------------------------------- ablations are configs


@pytest.mark.parametrize("size", SIZES)
def test_ablations_are_overrides_of_a_preset(size):
    base = preset("hopper-medium", size)
    ctd = apply_overrides(base, ["student.ctm.reward_weight=0"])
    one_step = apply_overrides(base, ['student.ctm.reward_on="one_step"'])
    aware = apply_overrides(base, ["teacher.reward_guidance=0.1"])
    ddpm = apply_overrides(base, ['teacher.kind="ddpm"'])
    ema = apply_overrides(base, ['student.teacher_weights="ema"'])
    assert ctd.student.ctm.reward_weight == 0.0
    assert one_step.student.ctm.reward_on == "one_step"
    assert aware.teacher.reward_guidance == 0.1
    assert ddpm.teacher.kind == "ddpm" and ema.student.teacher_weights == "ema"
    # each differs from the base in exactly the one field
    b = flatten(to_dict(base))
    for cfg, key in ((ctd, "student.ctm.reward_weight"), (one_step, "student.ctm.reward_on"),
                     (aware, "teacher.reward_guidance"), (ddpm, "teacher.kind"),
                     (ema, "student.teacher_weights")):
        f = flatten(to_dict(cfg))
        assert {k for k in b if b[k] != f[k]} == {key}
