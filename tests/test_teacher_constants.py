"""The student distils with its teacher's EDM constants (docs/algorithm.md §4): read from the teacher run,
inherited by `ractd train student`, and a conflicting setting is refused before anything is written."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from ractd.artifact import ArtifactError, load_artifact
from ractd.cli import app
from ractd.presets import resolve_config
from ractd.stages import inherited_settings, train_stage
from tests.conftest import TINY

runner = CliRunner()
HOPPER = [*TINY, "data.windows_per_epoch=64", 'data.dataset="hopper-random"']


def cli_train(stage: str, runs, *overrides: str):
    args = ["train", stage, "--task", "hopper-random", "--runs", str(runs), "--size", "cpu"]
    for o in (*HOPPER, *overrides):
        args += ["--set", o]
    return runner.invoke(app, args)


@pytest.fixture(scope="module")
def edm_scaled_runs(tiny_hopper_runs, tmp_path_factory):
    """A teacher trained with the standard EDM scaling (not the preset's "boundary") and σ_max = 40, a reward run,
    and a student trained by `ractd train student` with no teacher.* setting at all."""
    runs = tmp_path_factory.mktemp("edm_scaled")
    result = cli_train("teacher", runs, 'teacher.edm.scaling="edm"', "teacher.edm.sigma_max=40")
    assert result.exit_code == 0, result.output
    shutil.copytree(tiny_hopper_runs / "reward", runs / "hopper-random" / "reward")
    result = cli_train("student", runs)
    assert result.exit_code == 0, result.output
    return runs / "hopper-random"


def test_a_student_of_a_non_default_teacher_uses_the_teachers_constants(edm_scaled_runs):
    teacher = load_artifact(edm_scaled_runs / "teacher")
    student = load_artifact(edm_scaled_runs / "student")
    assert (teacher.denoiser.edm.scaling, teacher.denoiser.edm.sigma_max) == ("edm", 40.0)
    assert student.denoiser.kind == "ctm" and student.denoiser.edm == teacher.denoiser.edm
    header = json.loads((edm_scaled_runs / "student" / "config.json").read_text())
    assert header["denoiser"]["edm"]["scaling"] == "edm" and header["config"]["teacher"]["edm"]["sigma_max"] == 40
    assert inherited_settings("student", edm_scaled_runs).layer["teacher"]["edm"] == header["denoiser"]["edm"]


def test_the_distillation_objective_is_built_with_the_teachers_constants(edm_scaled_runs, tmp_path, monkeypatch):
    import ractd.train

    seen = {}

    def fake_train(objective, *args, **kwargs):
        seen["objective"] = objective
        raise KeyboardInterrupt

    monkeypatch.setattr(ractd.train, "train", fake_train)
    for run in ("teacher", "reward"):
        shutil.copytree(edm_scaled_runs / run, tmp_path / run)
    cfg = resolve_config("hopper-random", "cpu", HOPPER, inherited=inherited_settings("student", tmp_path).layer)
    with pytest.raises(KeyboardInterrupt):
        train_stage(cfg, "student", tmp_path, progress=False)
    objective = seen["objective"]
    edm = load_artifact(edm_scaled_runs / "teacher").denoiser.edm
    assert objective.edm == objective.teacher.edm == objective.target.edm == edm


@pytest.mark.parametrize("override", ['teacher.edm.scaling="boundary"', "teacher.edm.sigma_max=80",
                                      "teacher.edm.sigma_data=0.25", "teacher.unet.down_dims=[16,32]"])
def test_a_conflicting_teacher_setting_for_the_student_is_refused(edm_scaled_runs, tmp_path, override):
    runs = tmp_path / "runs"
    for run in ("teacher", "reward"):
        shutil.copytree(edm_scaled_runs / run, runs / "hopper-random" / run)
    result = cli_train("student", runs, override)
    assert result.exit_code == 2
    field = override.split("=")[0]
    assert "differ from the teacher run's" in result.output and field in result.output
    assert not (runs / "hopper-random" / "student").exists()  # refused before anything is written


def test_the_python_api_refuses_the_preset_constants_for_a_non_default_teacher(edm_scaled_runs, tmp_path):
    for run in ("teacher", "reward"):
        shutil.copytree(edm_scaled_runs / run, tmp_path / run)
    cfg = resolve_config("hopper-random", "cpu", HOPPER)  # preset: boundary scaling, σ_max = 80
    with pytest.raises(ArtifactError, match=r"teacher\.edm\.scaling = 'boundary' here, 'edm' in the teacher run"):
        train_stage(cfg, "student", tmp_path, progress=False)
    assert not (tmp_path / "student").exists()


def test_the_retired_student_edm_section_is_an_unknown_key(tmp_path):
    result = cli_train("student", tmp_path, 'student.ctm.edm.scaling="edm"')
    assert result.exit_code == 2 and "student.ctm.edm" in result.output


def test_a_run_folder_of_an_earlier_ractd_still_loads(tiny_hopper_runs, tmp_path):
    """Before the denoiser modules, config.json had no "denoiser" key, the student's EDM constants lived in
    `student.ctm.edm`, `init_noise_scale` in `student.ctm`, and a few never-read fields existed."""
    old = tmp_path / "student"
    shutil.copytree(tiny_hopper_runs / "student", old)
    header = json.loads((old / "config.json").read_text())
    cfg = header.pop("denoiser") and header["config"]
    edm = cfg["teacher"]["edm"]
    scale = edm.pop("init_noise_scale")
    cfg["student"]["ctm"]["edm"] = {**edm, "sigma_data": 0.45}  # what this old student was distilled with
    cfg["student"]["ctm"]["init_noise_scale"] = scale
    cfg["eval"]["episodes"], cfg["inverse_dynamics"]["enabled"] = 100, False
    (old / "config.json").write_text(json.dumps(header))
    art = load_artifact(old)
    assert art.denoiser.kind == "ctm" and art.denoiser.edm.sigma_data == 0.45
    assert art.config.teacher.edm == art.denoiser.edm and art.denoiser.edm.init_noise_scale == scale
