"""ONNX export of the one-step planner: onnxruntime equals PyTorch (Maze2d goal planner, hopper action planner),
the file passes onnx.checker, the noise input is live, a corrupted file is caught, bad inputs fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from ractd.artifact import ArtifactError, load_artifact
from ractd.export import OnnxMismatchError, check_onnx, export_command, export_onnx, random_observations

ATOL = 1e-4


@pytest.fixture(scope="module")
def exported(tiny_maze_runs: Path, tiny_hopper_runs: Path, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{task: (student run, exported ONNX)} for the goal-conditioned state planner and the action planner."""
    out = tmp_path_factory.mktemp("onnx")
    runs = {"maze": tiny_maze_runs / "student", "hopper": tiny_hopper_runs / "student"}
    return {k: (run, export_onnx(run, out / k / "planner.onnx")) for k, run in runs.items()}


def _shapes(values) -> dict[str, list]:
    return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


@pytest.mark.parametrize("task", ["maze", "hopper"])
def test_onnxruntime_equals_pytorch(exported, task: str):
    run, path = exported[task]
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    err = check_onnx(run, path, n=32, atol=ATOL)
    assert 0 <= err <= ATOL


def test_graph_signature(exported):
    maze = onnx.load(str(exported["maze"][1]))
    assert _shapes(maze.graph.input) == {"observations": ["batch", 4], "goal": ["batch", 2],
                                         "noise": ["batch", 16, 4]}
    assert _shapes(maze.graph.output) == {"plan": ["batch", 16, 4]}
    hopper = onnx.load(str(exported["hopper"][1]))
    assert _shapes(hopper.graph.input) == {"observations": ["batch", 1, 11], "noise": ["batch", 16, 3]}
    assert _shapes(hopper.graph.output) == {"plan": ["batch", 16, 3], "action": ["batch", 3]}
    meta = {p.key: p.value for p in hopper.metadata_props}
    assert meta["sampler"] == "one_step" and meta["x_key"] == "actions" and meta["init_noise_scale"] == "1.0"


def test_noise_is_an_input_and_plans_stay_in_the_data_range(exported):
    run, path = exported["hopper"]
    art = load_artifact(run)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    obs = random_observations(art, 8, rng)["observations"]
    noise = rng.standard_normal((8, 16, 3)).astype(np.float32)
    plan, action = session.run(None, {"observations": obs, "noise": noise})
    plan2, _ = session.run(None, {"observations": obs, "noise": noise})
    plan3, _ = session.run(None, {"observations": obs, "noise": -noise})
    np.testing.assert_array_equal(plan, plan2)
    assert np.abs(plan - plan3).max() > 1e-3  # the noise is not folded into a constant
    np.testing.assert_array_equal(action, plan[:, 0])  # To = 1: the closed-loop action is plan[:, To − 1]
    norm = art.normalizers["actions"]  # clamp to [−1, 1] then unnormalize → inside [min, max]
    assert (plan >= norm.min - 1e-5).all() and (plan <= norm.max + 1e-5).all()


def test_corrupted_weights_are_caught(exported, tmp_path: Path):
    run, path = exported["hopper"]
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(OnnxMismatchError, match="differs from PyTorch"):
        check_onnx(run, bad, n=8)


def test_fixed_batch_export_and_command(exported, tmp_path: Path):
    run, _ = exported["maze"]
    path = export_onnx(run, tmp_path / "fixed.onnx", batch_dynamic=False)
    assert _shapes(onnx.load(str(path)).graph.input)["observations"] == [1, 4]
    assert check_onnx(run, path) <= ATOL
    msg = export_command(run, tmp_path / "cmd.onnx", check=True)
    assert "cmd.onnx" in msg and "matches PyTorch" in msg


def test_bad_inputs_fail_clearly(exported, tiny_hopper_runs: Path, tmp_path: Path):
    target = tmp_path / "teacher.onnx"
    with pytest.raises(ArtifactError, match="expected a student"):
        export_onnx(tiny_hopper_runs / "teacher", target)
    assert not target.exists() and not list(tmp_path.iterdir())
    with pytest.raises(FileNotFoundError, match="ONNX file not found"):
        check_onnx(exported["hopper"][0], tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="do not match the planner"):
        check_onnx(exported["hopper"][0], exported["maze"][1])


def test_the_export_command_prints_its_check(exported, tmp_path: Path):
    from typer.testing import CliRunner

    from ractd.cli import app

    run, _ = exported["hopper"]
    result = CliRunner().invoke(app, ["export", str(run), "--onnx", str(tmp_path / "p.onnx")])
    assert result.exit_code == 0, result.output
    assert "p.onnx" in result.output and "onnxruntime matches PyTorch: max |Δ|" in result.output
