"""The training pipeline end to end on tiny runs: artifacts, loading, compatibility checks, warm start,
exact resume and determinism of whole stages, and a reward model that beats predicting the mean."""

from __future__ import annotations

import json
import math
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ractd.artifact import ArtifactError, build_network, check_compatible, load_artifact
from ractd.config import RunConfig, apply_overrides, from_dict
from ractd.diffusion import ctm_g, ctm_jump, edm_denoise
from ractd.io import read_json
from ractd.nn import insert_zero_time_columns
from ractd.prepare import prepare_data, stage_windows
from ractd.presets import resolve_config
from ractd.stages import train_stage
from ractd.train.objectives import reward_inputs
from tests.conftest import TINY

MAZE_OVERRIDES = [*TINY, "data.horizon=16", "data.windows_per_epoch=128"]  # as tests/conftest.py
HOPPER_OVERRIDES = [*TINY, "data.windows_per_epoch=256"]
STAGES = {"maze": ("teacher", "reward", "student", "inverse_dynamics"), "hopper": ("teacher", "reward", "student")}
EMA_ON = {"teacher": True, "reward": True, "student": False, "inverse_dynamics": False}


def hopper_config(*extra: str) -> RunConfig:
    return resolve_config("hopper-random", "cpu", [*HOPPER_OVERRIDES, *extra])


def run_folders(maze: Path, hopper: Path):
    for root, key in ((maze, "maze"), (hopper, "hopper")):
        for stage in STAGES[key]:
            yield key, stage, root / stage


# ---------------------------------------------------------------------------------------------- artifacts


def test_every_stage_writes_a_self_describing_folder(tiny_maze_runs, tiny_hopper_runs):
    configs = {"maze": resolve_config("maze2d-umaze", "cpu", MAZE_OVERRIDES),
               "hopper": resolve_config("hopper-random", "cpu", HOPPER_OVERRIDES)}
    fingerprints = {k: prepare_data(c).dataset.fingerprint() for k, c in configs.items()}
    for key, stage, run in run_folders(tiny_maze_runs, tiny_hopper_runs):
        for name in ("model.safetensors", "normalizer.safetensors", "config.json", "meta.json", "train.csv"):
            assert (run / name).is_file(), f"{run}: no {name}"
        assert (run / "ema.safetensors").is_file() == EMA_ON[stage], f"{run}: ema.safetensors"

        header = read_json(run / "config.json")
        assert header["stage"] == stage
        assert (header["obs_dim"], header["act_dim"]) == ((4, 2) if key == "maze" else (11, 3))
        assert from_dict(RunConfig, header["config"]) == configs[key]  # the resolved config is saved
        assert header["dataset_fingerprint"] == fingerprints[key]

        meta = read_json(run / "meta.json")
        assert meta["status"] == "finished" and meta["seed"] == 0 and meta["stage"] == stage
        assert meta["dataset_fingerprint"] == fingerprints[key]
        assert meta["versions"]["torch"] == torch.__version__ and meta["versions"]["numpy"] == np.__version__
        assert {"python", "ractd"} <= set(meta["versions"])
        assert re.fullmatch(r"[0-9a-f]{40}", meta["git"]["commit"])  # tests run from the checkout
        net = load_artifact(run).net
        assert meta["parameters"]["total"] == sum(p.numel() for p in net.parameters()) > 0

        lines = (run / "train.csv").read_text().splitlines()
        header_row = lines[0].split(",")
        assert header_row[:2] == ["step", "epoch"] and "loss" in header_row and len(lines) >= 2
        last = dict(zip(header_row, lines[-1].split(","), strict=True))
        assert int(last["step"]) == meta["step"] and math.isfinite(float(last["loss"]))
        if stage == "reward":  # selected by validation loss on held-out episodes
            assert "val_loss" in header_row and meta["best"]["metric"] == "val_loss"


def test_no_run_folder_holds_a_pickle(tiny_maze_runs, tiny_hopper_runs):
    """Only safetensors, JSON and CSV (TensorBoard is off in the tiny runs); no pickle or torch.save zip."""
    files = [p for root in (tiny_maze_runs, tiny_hopper_runs) for p in root.rglob("*") if p.is_file()]
    assert len(files) > 30
    for path in files:
        assert path.suffix in {".safetensors", ".json", ".csv"}, path
        head = path.read_bytes()[:4]
        assert not head.startswith(b"\x80") and head != b"PK\x03\x04", f"{path} looks like a pickle"
        if path.suffix == ".safetensors":
            load_file(str(path))  # a real safetensors file


def test_loading_never_unpickles(tiny_maze_runs, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading an artifact")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    for stage in STAGES["maze"]:
        load_artifact(tiny_maze_runs / stage)


@pytest.mark.parametrize("weights", ["model", "ema"])
def test_load_artifact_round_trips_the_weights_exactly(tiny_maze_runs, tiny_hopper_runs, weights):
    for _, stage, run in run_folders(tiny_maze_runs, tiny_hopper_runs):
        if weights == "ema" and not EMA_ON[stage]:
            continue
        art = load_artifact(run, weights=weights)
        saved = load_file(str(run / f"{weights}.safetensors"))
        state = art.net.state_dict()
        assert set(state) == set(saved)
        for k, v in saved.items():
            assert torch.equal(state[k], v), f"{run}/{weights}: {k}"
        assert art.stage == stage and not art.net.training
        assert art.normalizers.equals(load_artifact(run).normalizers)


def test_ema_and_online_weights_are_different_files(tiny_maze_runs):
    """4 optimizer steps: the EMA (decay 0 for the first two updates, docs/algorithm.md §3.5) has left the online
    weights."""
    assert read_json(tiny_maze_runs / "teacher" / "meta.json")["step"] == 4
    online = load_artifact(tiny_maze_runs / "teacher").net.state_dict()
    ema = load_artifact(tiny_maze_runs / "teacher", weights="ema").net.state_dict()
    assert any(not torch.equal(online[k], ema[k]) for k in online)


def test_asking_a_finished_run_for_weights_it_never_kept_says_so(tiny_maze_runs):
    with pytest.raises(ArtifactError, match=r"student training is finished but this run kept no EMA copy "
                                            r"\(train.ema=false\) \(weights here: model\)"):
        load_artifact(tiny_maze_runs / "student", weights="ema")


def test_load_artifact_refuses_what_is_not_a_finished_run(tiny_hopper_runs, tmp_path):
    with pytest.raises(ArtifactError, match=r"not a ractd run folder \(no config.json\)"):
        load_artifact(tmp_path)
    with pytest.raises(ArtifactError, match="expected a student artifact, found a teacher artifact"):
        load_artifact(tiny_hopper_runs / "teacher", expect_stage="student")
    with pytest.raises(ArtifactError, match=r"online\.safetensors: missing"):
        load_artifact(tiny_hopper_runs / "teacher", weights="online")
    run = tmp_path / "teacher"
    shutil.copytree(tiny_hopper_runs / "teacher", run)
    header = read_json(run / "config.json")
    del header["obs_dim"]
    (run / "config.json").write_text(json.dumps(header))
    with pytest.raises(ArtifactError, match=r"config\.json: missing key 'obs_dim'"):
        load_artifact(run)


def test_weights_of_another_shape_are_refused_naming_the_file_and_key(tiny_hopper_runs, tmp_path):
    run = tmp_path / "teacher"
    shutil.copytree(tiny_hopper_runs / "teacher", run)
    header = read_json(run / "config.json")
    header["config"]["teacher"]["unet"]["down_dims"] = [8, 32]
    (run / "config.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"model\.safetensors: key '[\w.]+' has shape .* the model expects"):
        load_artifact(run)


def test_a_bad_key_in_a_saved_config_names_the_file(tiny_hopper_runs, tmp_path):
    run = tmp_path / "teacher"
    shutil.copytree(tiny_hopper_runs / "teacher", run)
    header = read_json(run / "config.json")
    header["config"]["teacher"]["unet"]["down_dim"] = header["config"]["teacher"]["unet"].pop("down_dims")
    (run / "config.json").write_text(json.dumps(header))
    with pytest.raises(ArtifactError) as info:
        load_artifact(run)
    assert "teacher.unet.down_dim" in str(info.value)
    assert "config.json" in str(info.value)


# ---------------------------------------------------------------------------------------------- compatibility


def test_a_teacher_of_other_dimensions_gives_one_clear_error(tiny_maze_runs, tiny_hopper_runs):
    prep = prepare_data(resolve_config("maze2d-umaze", "cpu", MAZE_OVERRIDES))
    hopper_teacher = load_artifact(tiny_hopper_runs / "teacher")
    with pytest.raises(ArtifactError) as info:
        check_compatible(hopper_teacher, prep.obs_dim, prep.act_dim, prep.normalizers, "teacher")
    msg = str(info.value)
    assert str(tiny_hopper_runs / "teacher") in msg
    assert "obs_dim=11, act_dim=3" in msg and "obs_dim=4, act_dim=2" in msg
    check_compatible(load_artifact(tiny_maze_runs / "teacher"), prep.obs_dim, prep.act_dim, prep.normalizers,
                     "teacher")  # the matching one passes


def test_a_student_refuses_a_teacher_trained_on_another_task_before_writing_anything(
        tiny_maze_runs, tiny_hopper_runs, tmp_path):
    shutil.copytree(tiny_hopper_runs / "teacher", tmp_path / "teacher")
    shutil.copytree(tiny_maze_runs / "reward", tmp_path / "reward")
    with pytest.raises(ArtifactError, match=r"obs_dim=11, act_dim=3, but the dataset has obs_dim=4, act_dim=2"):
        train_stage(resolve_config("maze2d-umaze", "cpu", MAZE_OVERRIDES), "student", tmp_path, progress=False)
    assert not (tmp_path / "student").exists()


def test_a_normalizer_mismatch_is_refused(tiny_hopper_runs, tmp_path):
    """Same task and dims, other data (the first 1,500 steps only): the normalizers differ (docs/algorithm.md §4.7)."""
    cfg = hopper_config("data.max_dataset_steps=1500")
    prep = prepare_data(cfg)
    teacher = load_artifact(tiny_hopper_runs / "teacher")
    assert (prep.obs_dim, prep.act_dim) == (teacher.obs_dim, teacher.act_dim)
    with pytest.raises(ArtifactError, match="the teacher's normalizer differs from this dataset's"):
        check_compatible(teacher, prep.obs_dim, prep.act_dim, prep.normalizers, "teacher")
    for stage in ("teacher", "reward"):
        shutil.copytree(tiny_hopper_runs / stage, tmp_path / stage)
    with pytest.raises(ArtifactError, match="normalizer differs"):
        train_stage(cfg, "student", tmp_path, progress=False)


# ---------------------------------------------------------------------------------------------- warm start


class Captured(Exception):
    """Raised by a stand-in for the training loop once train_stage has built the objective."""


def captured_objective(monkeypatch, cfg: RunConfig, stage: str, root: Path):
    """The objective train_stage builds (with every network the pipeline loads), without training it."""
    import ractd.train

    seen = {}

    def fake_train(objective, *args, **kwargs):
        seen["objective"] = objective
        raise Captured

    monkeypatch.setattr(ractd.train, "train", fake_train)
    with pytest.raises(Captured):
        train_stage(cfg, stage, root, progress=False)
    return seen["objective"]


@pytest.mark.parametrize("teacher_weights", ["online", "ema"])
def test_the_student_starts_as_the_teacher(tiny_hopper_runs, tmp_path, monkeypatch, teacher_weights):
    """At init g_θ(x, t, s) = D_φ(x, t) for every s, so G_θ(x, t, s) = (s/t)x + (1 − s/t)D_φ(x, t) (docs/algorithm.md
    §4.9)."""
    for stage in ("teacher", "reward"):
        shutil.copytree(tiny_hopper_runs / stage, tmp_path / stage)
    cfg = hopper_config(f'student.teacher_weights="{teacher_weights}"')
    objective = captured_objective(monkeypatch, cfg, "student", tmp_path)
    teacher = load_artifact(tiny_hopper_runs / "teacher", weights="model" if teacher_weights == "online" else "ema")
    for k, v in teacher.net.state_dict().items():  # the teacher the student distils is the requested one
        assert torch.equal(objective.teacher.net.state_dict()[k], v)

    # the same map, from the pipeline pieces
    built = build_network(cfg, "student", teacher.obs_dim, teacher.act_dim)
    built.load_state_dict(insert_zero_time_columns(teacher.net.state_dict(), cfg.teacher.unet.time_embed_dim))
    e = teacher.denoiser.edm
    assert objective.edm == e == cfg.teacher.edm
    g = torch.Generator().manual_seed(0)
    x, cond = torch.randn(4, 16, 3, generator=g), torch.randn(4, 11, generator=g)
    t = torch.tensor([80.0, 5.0, 0.5, 0.05])
    with torch.no_grad():
        d = edm_denoise(teacher.net, x, t, cond, e)
        for student in (objective.net.eval(), built.eval(), objective.target.net.eval()):
            for s in (torch.full((4,), e.sigma_min), t / 2, t):
                torch.testing.assert_close(ctm_g(student, x, t, s, cond, e), d, rtol=1e-5, atol=1e-6)
                r = (s / t)[:, None, None]
                torch.testing.assert_close(ctm_jump(student, x, t, s, cond, e), r * x + (1 - r) * d,
                                           rtol=1e-5, atol=1e-6)


def test_ctd_and_the_reward_aware_teacher_are_configs(tiny_hopper_runs, tmp_path, monkeypatch):
    """CTD (σ_r = 0) loads no reward model; a reward-aware teacher loads the run's reward model."""
    shutil.copytree(tiny_hopper_runs / "teacher", tmp_path / "teacher")  # no reward run in this root
    ctd = captured_objective(monkeypatch, hopper_config("student.ctm.reward_weight=0"), "student", tmp_path)
    assert ctd.reward_net is None
    with pytest.raises(ArtifactError, match=r"reward: not a ractd run folder"):
        train_stage(hopper_config(), "student", tmp_path, progress=False)  # σ_r = 1 needs one
    with pytest.raises(ArtifactError, match=r"reward: not a ractd run folder"):
        train_stage(hopper_config("teacher.reward_guidance=0.1"), "teacher", tmp_path, progress=False)
    shutil.copytree(tiny_hopper_runs / "reward", tmp_path / "reward")
    shutil.rmtree(tmp_path / "teacher")  # the reward-aware teacher is another run: it may not relabel this folder
    aware = captured_objective(monkeypatch, hopper_config("teacher.reward_guidance=0.1"), "teacher", tmp_path)
    assert aware.reward_guidance == 0.1 and aware.reward_net is not None
    reward = load_artifact(tiny_hopper_runs / "reward").net.state_dict()
    assert all(torch.equal(aware.reward_net.state_dict()[k], v) for k, v in reward.items())


# ---------------------------------------------------------------------------------------------- resume, determinism


def stage_run(root: Path, stage: str, *extra: str, seed: int = 0) -> Path:
    """A tiny hopper run of `stage`: 2 epochs × 4 steps of 16 windows, every step logged, a real learning rate."""
    cfg = hopper_config("data.windows_per_epoch=64", f"{stage}.train.batch_size=16", f"{stage}.train.log_every=1",
                        f"{stage}.train.warmup_steps=2", f"{stage}.train.epochs=2", f"seed={seed}", *extra)
    return train_stage(cfg, stage, root, progress=False)


def new_root(path: Path, source: Path, stage: str) -> Path:
    path.mkdir(parents=True)
    if stage == "student":
        for s in ("teacher", "reward"):
            shutil.copytree(source / s, path / s)
    return path


def assert_same_weights(a: Path, b: Path) -> None:
    for name in ("model.safetensors", "ema.safetensors"):
        if (a / name).exists() or (b / name).exists():
            ta, tb = load_file(str(a / name)), load_file(str(b / name))
            assert set(ta) == set(tb) and all(torch.equal(ta[k], tb[k]) for k in ta), f"{a / name}"


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_an_interrupted_and_resumed_stage_equals_an_uninterrupted_one(tiny_hopper_runs, tmp_path, stage):
    straight = stage_run(new_root(tmp_path / "a", tiny_hopper_runs, stage), stage)
    again = stage_run(new_root(tmp_path / "b", tiny_hopper_runs, stage), stage)
    root = new_root(tmp_path / "c", tiny_hopper_runs, stage)
    stopped = stage_run(root, stage, f"{stage}.train.max_steps=3")  # mid-epoch 0
    assert read_json(stopped / "meta.json")["status"] == "stopped"
    assert len((stopped / "train.csv").read_text().splitlines()) == 1 + 3
    if stage == "student":  # the target network θ⁻ is checkpointed as objective state
        target = load_file(str(stopped / "checkpoint" / "objective.safetensors"))
        online = load_file(str(stopped / "checkpoint" / "model.safetensors"))
        assert set(target) == {f"target.{k}" for k in online}
    resumed = stage_run(root, stage)
    meta = read_json(resumed / "meta.json")
    assert meta["status"] == "finished" and [r["step"] for r in meta["resumes"]] == [3]

    csv = (straight / "train.csv").read_text()
    assert len(csv.splitlines()) == 1 + 8
    assert (again / "train.csv").read_text() == csv  # same seed, same numbers
    assert (resumed / "train.csv").read_text() == csv  # resume = no interruption
    assert_same_weights(straight, again)
    assert_same_weights(straight, resumed)


def test_another_seed_gives_other_numbers(tiny_hopper_runs, tmp_path):
    a = stage_run(new_root(tmp_path / "a", tiny_hopper_runs, "teacher"), "teacher")
    b = stage_run(new_root(tmp_path / "b", tiny_hopper_runs, "teacher"), "teacher", seed=1)
    assert (a / "train.csv").read_text() != (b / "train.csv").read_text()


# ---------------------------------------------------------------------------------------------- a trained toy


def test_a_tiny_maze_reward_model_beats_predicting_the_mean(tiny_maze_runs, tmp_path):
    """48 steps of 32 windows (~3 s): validation MSE on the held-out episodes well below the variance of
    their normalized returns-to-go, i.e. better than the best constant. (Measured 0.59-0.65 of the variance
    over seeds 0-4; trained on shuffled targets it ends at 1.27.)"""
    cfg = resolve_config("maze2d-umaze", "cpu", [
        *MAZE_OVERRIDES, "data.windows_per_epoch=512", "reward.train.batch_size=32", "reward.train.epochs=3",
        "reward.train.lr=1e-3", "reward.train.warmup_steps=5"])
    run = train_stage(cfg, "reward", tmp_path, progress=False)
    art = load_artifact(run)
    prep = prepare_data(cfg)
    _, val_subset = stage_windows(cfg, prep, "reward")
    _, val = stage_windows(apply_overrides(cfg, ["data.windows_per_epoch=null"]), prep, "reward")

    def mse_and_var(source):
        batch = {k: torch.from_numpy(v) for k, v in source.get_batch(np.arange(len(source))).items()}
        inputs, target = reward_inputs(batch, "states")
        with torch.no_grad():
            return float(((art.net(inputs) - target) ** 2).mean()), float(target.var(unbiased=False))

    mse, var = mse_and_var(val)
    assert len(val) > 100 and var > 0.05
    assert mse < 0.8 * var, f"val MSE {mse:.4f} is not clearly better than predicting the mean (variance {var:.4f})"
    # the loop's logged validation loss is this MSE on the run's validation subset
    logged = read_json(run / "meta.json")["metrics"]["val_loss"]
    assert logged == pytest.approx(mse_and_var(val_subset)[0], rel=1e-5)

