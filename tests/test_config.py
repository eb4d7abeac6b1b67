"""RunConfig: strict dict → dataclass conversion, one clear error per bad key/type/value, JSON overrides."""

from __future__ import annotations

import json
import re

import pytest

from ractd.config import (
    DataConfig,
    RunConfig,
    apply_overrides,
    from_dict,
    merge,
    parse_override,
    to_dict,
    upgrade_config_dict,
)
from ractd.presets import preset


@pytest.fixture(scope="module")
def cpu_hopper() -> RunConfig:
    return preset("hopper-medium-replay", "cpu")


def config_error(cfg: RunConfig, *overrides: str) -> str:
    """The message of the single error the overrides raise; it must be one line and not chained."""
    with pytest.raises((ValueError, TypeError)) as info:
        apply_overrides(cfg, list(overrides))
    e = info.value
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__), "one error, not a chain"
    msg = str(e)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(("override", "path", "suggestion"), [
    ("studnet.train.epochs=3", "studnet", "student"),
    ("student.ctm.reward_wieght=0.5", "student.ctm.reward_wieght", "reward_weight"),
    ("teacher.unet.down_dim=[8,16]", "teacher.unet.down_dim", "down_dims"),
    ("teacher.train.batchsize=8", "teacher.train.batchsize", "batch_size"),
    ("data.horizn=32", "data.horizn", "horizon"),
])
def test_a_typo_key_names_the_field_and_suggests_the_right_one(cpu_hopper, override, path, suggestion):
    msg = config_error(cpu_hopper, override)
    assert msg.startswith(f"{path}: unknown key")
    assert f"did you mean {suggestion!r}" in msg


def test_an_unknown_key_lists_the_known_keys_of_its_section():
    msg = str(pytest.raises(ValueError, from_dict, RunConfig, {"data": {"zzz": 1}}).value)
    assert msg.startswith("data.zzz: unknown key")
    for name in ("horizon", "n_obs_steps", "x_key", "cond", "discount"):
        assert name in msg


def test_a_typo_in_a_json_config_file_fails_the_same_way(tmp_path):
    from ractd.presets import resolve_config

    path = tmp_path / "my.json"
    path.write_text(json.dumps({"student": {"ctm": {"reward_wieght": 0.1}}}))
    with pytest.raises(ValueError, match=r"student\.ctm\.reward_wieght: unknown key \(did you mean 'reward_weight'"):
        resolve_config("hopper-medium-replay", "cpu", config_file=str(path))


# ---------------------------------------------------------------------------------------------- types and values


@pytest.mark.parametrize(("override", "expected"), [
    ('teacher.train.batch_size="big"', r"^teacher\.train\.batch_size: expected an integer, got 'big'$"),
    ("teacher.train.epochs=2.5", r"^teacher\.train\.epochs: expected an integer, got 2\.5$"),
    ("student.train.ema=1", r"^student\.train\.ema: expected true or false, got 1$"),
    ("student.ctm.reward_weight=[1]", r"^student\.ctm\.reward_weight: expected a number"),
    ('teacher.unet.down_dims=[8,"a"]', r"^teacher\.unet\.down_dims\[1\]: expected an integer, got 'a'$"),
    ("teacher.unet.down_dims=8", r"^teacher\.unet\.down_dims: expected a list"),
    ('data.max_dataset_steps="all"', r"^data\.max_dataset_steps: expected int \| None"),
    ("data=3", r"^data: expected a mapping"),
])
def test_a_wrong_type_names_the_field_and_the_expected_type(cpu_hopper, override, expected):
    assert re.search(expected, config_error(cpu_hopper, override))


@pytest.mark.parametrize("section", ["teacher", "reward", "student", "inverse_dynamics"])
@pytest.mark.parametrize("value", [-5, 0])
def test_a_non_positive_batch_size_is_refused_naming_the_stage(cpu_hopper, section, value):
    msg = config_error(cpu_hopper, f"{section}.train.batch_size={value}")
    assert re.search(rf"^{section}\.train\W+batch_size\b", msg), msg
    assert "positive integer" in msg and str(value) in msg


@pytest.mark.parametrize(("down_dims", "horizon", "multiple"), [
    ([16, 32, 64], 18, 4), ([16, 32, 64], 30, 4), ([8, 16, 32, 64], 36, 8), ([8, 16], 15, 2),
])
def test_a_horizon_not_divisible_by_two_to_the_levels_minus_one_is_refused(cpu_hopper, down_dims, horizon, multiple):
    msg = config_error(cpu_hopper, f"teacher.unet.down_dims={json.dumps(down_dims)}", f"data.horizon={horizon}")
    assert f"data.horizon={horizon}" in msg and f"2^(levels-1) = {multiple}" in msg
    assert "teacher.unet.down_dims" in msg
    # the next multiple is accepted
    ok = apply_overrides(cpu_hopper, [f"teacher.unet.down_dims={json.dumps(down_dims)}",
                                      f"data.horizon={horizon + multiple - horizon % multiple}"])
    assert ok.data.horizon % multiple == 0


def test_changing_the_levels_rechecks_the_horizon(cpu_hopper):
    """horizon 16 is fine for 3 levels (multiple 4) and 5 levels (16) but not for 6 levels (32)."""
    assert apply_overrides(cpu_hopper, ["teacher.unet.down_dims=[8,8,8,8,8]"]).data.horizon == 16
    msg = config_error(cpu_hopper, "teacher.unet.down_dims=[8,8,8,8,8,8]")
    assert "data.horizon=16" in msg and "= 32" in msg


@pytest.mark.parametrize(("override", "field", "allowed"), [
    ('data.x_key="states"', "data.x_key", ["actions", "observations", "actions_observations"]),
    ('data.cond="goal"', "data.cond", ["history", "first_last", "none"]),
    ('teacher.kind="ddim"', "teacher.kind", ["edm", "ddpm"]),
    ('reward.input="obs"', "reward.input", ["action_obs", "states"]),
    ('student.ctm.reward_on="sample"', "student.ctm.reward_on", ["dsm_pred", "one_step"]),
    ('student.teacher_weights="EMA"', "student.teacher_weights", ["online", "ema"]),
    ('student.reward_aggregate="mean"', "student.reward_aggregate", ["first_action", "sum_states"]),
    ('eval.maze_controller="pid"', "eval.maze_controller", ["tracking", "inverse_dynamics"]),
])
def test_a_literal_violation_lists_the_allowed_values(cpu_hopper, override, field, allowed):
    msg = config_error(cpu_hopper, override)
    assert msg.startswith(f"{field}: expected one of {allowed}")


@pytest.mark.parametrize(("override", "names"), [
    ("data.horizon=0", ["data.horizon"]),
    ("data.n_obs_steps=32", ["data.n_obs_steps", "data.horizon"]),
    ("data.discount=1.5", ["data.discount"]),
    ("teacher.unet.down_dims=[12,24]", ["unet.down_dims", "n_groups"]),
    ("teacher.unet.mid_dropout=1.0", ["unet.mid_dropout"]),
    ("student.ctm.reward_weight=-1", ["student.ctm", "reward_weight"]),
    ("student.ctm.target_decay=1", ["student.ctm", "target_decay"]),
    ("teacher.edm.sigma_max=0.01", ["teacher.edm", "sigma_max"]),
    ("teacher.train.lr=0", ["teacher.train", "lr"]),
    ("reward.train.betas=[0.9]", ["reward.train", "betas"]),
    ('student.train.export="ema"', ["student.train", "export", "ema"]),  # the student has no EMA to export
])
def test_an_impossible_value_is_refused_naming_the_field(cpu_hopper, override, names):
    msg = config_error(cpu_hopper, override)
    for name in names:
        assert name in msg, msg


def test_a_validation_ratio_outside_0_1_is_refused(cpu_hopper):
    msg = config_error(cpu_hopper, "reward.val_ratio=2")
    assert "reward.val_ratio" in msg


def test_the_same_value_passes_where_it_is_possible(cpu_hopper):
    """Controls for the refusals above: the teacher has EMA on, so it may export it."""
    assert apply_overrides(cpu_hopper, ['teacher.train.export="ema"']).teacher.train.export == "ema"
    assert apply_overrides(cpu_hopper, ["data.n_obs_steps=16"]).data.n_obs_steps == 16


# ---------------------------------------------------------------------------------------------- overrides


@pytest.mark.parametrize(("text", "expected"), [
    ("student.ctm.reward_weight=0.5", {"student": {"ctm": {"reward_weight": 0.5}}}),
    ("student.ctm.reward_weight=1e-5", {"student": {"ctm": {"reward_weight": 1e-5}}}),
    ("teacher.unet.down_dims=[8, 16]", {"teacher": {"unet": {"down_dims": [8, 16]}}}),
    ("teacher.train.tensorboard=false", {"teacher": {"train": {"tensorboard": False}}}),
    ("data.max_dataset_steps=null", {"data": {"max_dataset_steps": None}}),
    ('data.x_key="observations"', {"data": {"x_key": "observations"}}),
    ("data.x_key=observations", {"data": {"x_key": "observations"}}),  # not JSON: kept as a string
    ("data.dataset=/data/my file.hdf5", {"data": {"dataset": "/data/my file.hdf5"}}),
    ("data.dataset=a=b", {"data": {"dataset": "a=b"}}),  # only the first '=' splits
    ("seed=7", {"seed": 7}),
    ('teacher={"kind": "ddpm"}', {"teacher": {"kind": "ddpm"}}),
])
def test_override_values_parse_as_json(text, expected):
    assert parse_override(text) == expected


def test_an_override_without_equals_sign_is_refused():
    with pytest.raises(ValueError, match=r"override 'student\.ctm\.reward_weight': expected KEY=VALUE"):
        parse_override("student.ctm.reward_weight")


def test_apply_overrides_sets_typed_values_and_keeps_everything_else(cpu_hopper):
    cfg = apply_overrides(cpu_hopper, ["student.ctm.reward_weight=1", "teacher.unet.down_dims=[8,16]",
                                       "teacher.train.epochs=3.0", "seed=5"])
    assert cfg.student.ctm.reward_weight == 1.0 and isinstance(cfg.student.ctm.reward_weight, float)
    assert cfg.teacher.unet.down_dims == [8, 16]
    assert cfg.teacher.train.epochs == 3 and isinstance(cfg.teacher.train.epochs, int)
    assert cfg.seed == 5
    # every other field is untouched
    a, b = to_dict(cpu_hopper), to_dict(cfg)
    for d in (a, b):
        d["student"]["ctm"].pop("reward_weight")
        d["teacher"]["unet"].pop("down_dims")
        d["teacher"]["train"].pop("epochs")
        d.pop("seed")
        for stage in ("teacher", "reward", "student", "inverse_dynamics"):
            assert d[stage]["train"].pop("seed") == (0 if d is a else 5)  # each stage follows the run seed
    assert a == b
    assert cpu_hopper.student.ctm.reward_weight == 0.1 and cpu_hopper.seed == 0  # the input is not mutated


def test_later_overrides_win(cpu_hopper):
    cfg = apply_overrides(cpu_hopper, ["student.ctm.reward_weight=0.2", "student.ctm.reward_weight=0.7"],
                          extra={"seed": 3})
    assert cfg.student.ctm.reward_weight == 0.7 and cfg.seed == 3


def test_a_config_file_is_layered_over_the_preset(tmp_path):
    from ractd.presets import resolve_config

    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"student": {"ctm": {"reward_weight": 0.3}}, "seed": 11}))
    cfg = resolve_config("walker2d-medium", "paper", config_file=str(path))
    assert cfg.student.ctm.reward_weight == 0.3 and cfg.seed == 11  # the file beats the preset (0.4, 0)
    assert cfg.student.train.epochs == 700  # the preset fills the rest


def test_a_command_line_override_beats_the_config_file(tmp_path):
    from ractd.presets import resolve_config

    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"student": {"ctm": {"reward_weight": 0.3}}}))
    cfg = resolve_config("walker2d-medium", "paper", ["student.ctm.reward_weight=0.9"], str(path))
    assert cfg.student.ctm.reward_weight == 0.9


def test_every_stage_trains_with_the_run_seed_and_device(cpu_hopper):
    cfg = apply_overrides(cpu_hopper, ["seed=7", 'device="cuda:1"'])
    for stage in (cfg.teacher, cfg.reward, cfg.student, cfg.inverse_dynamics):
        assert (stage.train.seed, stage.train.device) == (7, "cuda:1")


@pytest.mark.parametrize("override", ["teacher.train.seed=3", 'student.train.device="cuda"'])
def test_a_stage_seed_or_device_that_would_be_ignored_is_refused(cpu_hopper, override):
    stage, _, key = override.split("=")[0].split(".")
    assert config_error(cpu_hopper, override) == (
        f"override {override!r}: {stage}.train.{key} follows the run's top-level {key!r}; set {key}=... instead")


def test_a_saved_config_is_a_valid_config_file_and_a_contradicting_one_is_not(tmp_path):
    from ractd.presets import resolve_config

    saved = resolve_config("hopper-medium-replay", "cpu", ["seed=5"]).to_dict()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    assert resolve_config("hopper-medium-replay", "cpu", config_file=str(path)).teacher.train.seed == 5
    saved["reward"]["train"]["seed"] = 6
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"the config file: reward.train.seed follows the run's top-level 'seed'"):
        resolve_config("hopper-medium-replay", "cpu", config_file=str(path))


@pytest.mark.parametrize("content", [None, "{not json"])
def test_an_unreadable_config_file_names_the_file(tmp_path, content):
    from ractd.presets import resolve_config

    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        resolve_config("hopper-medium", "cpu", config_file=str(path))


# ---------------------------------------------------------------------------------------------- dict round trips


def test_a_partial_section_keeps_its_own_defaults():
    cfg = from_dict(RunConfig, {"student": {"ctm": {"reward_weight": 0.5}}})
    assert cfg.student.ctm.reward_weight == 0.5
    assert cfg.student.ctm.ode_steps_max == 1 and cfg.student.train.batch_size == 4800
    assert cfg.reward.train.select_metric == "val_loss"  # RewardConfig's own default loop, not LoopConfig's


def test_defaults_round_trip_through_json():
    cfg = RunConfig()
    again = from_dict(RunConfig, json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert isinstance(again.teacher.train.betas, tuple)  # JSON lists become the declared tuple again


def test_from_dict_accepts_a_dataclass_and_merge_is_recursive():
    d = DataConfig(horizon=32, n_obs_steps=2)
    assert from_dict(DataConfig, d) == d
    assert merge({"a": {"b": 1, "c": 2}, "d": 0}, {"a": {"c": 3}}) == {"a": {"b": 1, "c": 3}, "d": 0}


# ---------------------------------------------------------------------------------------------- retired keys

RETIRED = {"eval": {"episodes": 100, "max_parallel": 100, "legacy_running_max": False},
           "inverse_dynamics": {"enabled": True}}


def test_retired_keys_are_unknown_to_the_strict_parser():
    for section, keys in RETIRED.items():
        for key, value in keys.items():
            msg = str(pytest.raises(ValueError, from_dict, RunConfig, {section: {key: value}}).value)
            assert msg.startswith(f"{section}.{key}: unknown key")


def test_an_old_saved_config_loads_after_the_upgrade(cpu_hopper):
    """What an older ractd wrote into config.json: the current dict plus the retired keys."""
    old = merge(to_dict(cpu_hopper), RETIRED)
    snapshot = json.dumps(old)
    assert from_dict(RunConfig, upgrade_config_dict(old)) == cpu_hopper
    assert json.dumps(old) == snapshot  # the input is not modified


@pytest.mark.parametrize("d", [{}, {"seed": 3}, {"eval": {"seed": 1}}, {"eval": 3}, {"inverse_dynamics": None}])
def test_the_upgrade_leaves_everything_else_as_it_is(d):
    assert upgrade_config_dict(d) == d
    assert upgrade_config_dict(None) is None


def test_an_old_saved_config_is_still_a_valid_config_file(tmp_path):
    from ractd.presets import resolve_config

    path = tmp_path / "config.json"
    path.write_text(json.dumps(merge(resolve_config("maze2d-umaze", "cpu", ["seed=2"]).to_dict(), RETIRED)))
    assert resolve_config("maze2d-umaze", "cpu", config_file=str(path)) == resolve_config(
        "maze2d-umaze", "cpu", ["seed=2"])
    with pytest.raises(ValueError, match=r"^eval\.max_parallel: unknown key"):  # not on the command line
        resolve_config("maze2d-umaze", "cpu", ["eval.max_parallel=4"])


def test_a_config_file_that_is_not_an_object_is_refused(tmp_path):
    from ractd.presets import resolve_config

    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"the config file: expected a JSON object, got list"):
        resolve_config("hopper-medium", "cpu", config_file=str(path))


def test_eval_n_action_steps_must_be_positive(cpu_hopper):
    assert config_error(cpu_hopper, "eval.n_action_steps=0") == "eval.n_action_steps must be >= 1, got 0"
