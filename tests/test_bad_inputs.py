"""Bad input through the installed `ractd` command, as a user types it: for every case a non-zero exit, exactly
one line on stderr (`error: ...`) naming the problem, and every run folder byte-identical before and after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.conftest import TINY

BIN = Path(sys.executable).parent / "ractd"
COMMAND = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "ractd"]
TRAIN = ["--task", "hopper-random", "--size", "cpu", *[a for o in TINY for a in ("--set", o)]]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tiny_hopper_runs, tmp_path_factory):
    """A run root with the tiny hopper runs, a copy of the student with NaN weights, a garbage file, a JSON array."""
    from safetensors.torch import load_file, save_file

    base = tmp_path_factory.mktemp("bad_inputs")
    runs = base / "runs" / "hopper-random"
    shutil.copytree(tiny_hopper_runs, runs)
    nan = runs / "student_nan"
    shutil.copytree(runs / "student", nan)
    weights = load_file(str(nan / "model.safetensors"))
    first = next(iter(weights))
    weights[first] = torch.full_like(weights[first], float("nan"))
    save_file(weights, str(nan / "model.safetensors"))
    (base / "garbage.hdf5").write_bytes(b"not an hdf5 file at all")
    (base / "array.json").write_text("[1, 2]")
    (base / "broken.json").write_text('{"teacher": ')
    (base / "a_file").write_text("x")
    (base / "folder").mkdir()
    return base, runs


def cases(base: Path, runs: Path) -> list[tuple[list[str], str]]:
    """(arguments, a piece of the one error line)."""
    student, teacher = str(runs / "student"), str(runs / "teacher")
    root = ["--runs", str(base / "runs")]
    return [
        # configuration
        (["train", "teacher", *TRAIN, *root, "--set", "teacher.train.epochs=abc"], "teacher.train.epochs"),
        (["train", "teacher", *TRAIN, *root, "--set", "teacher.train.lr=nan"], "lr"),
        (["train", "teacher", *TRAIN, *root, "--set", "teacher.train.bacth_size=3"], "did you mean 'batch_size'"),
        (["train", "teacher", *TRAIN, *root, "--set", "teacher.unet.down_dims=[8,16,x]"], "expected a list"),
        (["train", "teacher", *TRAIN, *root, "--set", "nonsense"], "expected KEY=VALUE"),
        (["train", "teacher", *TRAIN, *root, "--set", "teacher.train.seed=3"], "set seed=... instead"),
        (["train", "teacher", *TRAIN, *root, "--size", "huge"], "huge"),
        (["train", "teacher", *TRAIN, *root, "--config", str(base / "nope.json")], "nope.json"),
        (["train", "teacher", *TRAIN, *root, "--config", str(base / "broken.json")], "broken.json"),
        (["train", "teacher", *TRAIN, *root, "--config", str(base / "array.json")], "JSON object"),
        (["config", "maze2d-umze"], "did you mean 'maze2d-umaze'"),
        (["config", "hopper-medium-replay", "--set", "student.ctm.edm.scaling=\"edm\""], "student.ctm.edm"),
        # tasks, datasets, devices, folders
        (["train", "teacher", "--task", "hoper-medium-replay", *root], "did you mean 'hopper-medium-replay'"),
        (["train", "teacher", *TRAIN, *root, "--task", "Walker2d-v5", "--dataset", "hopper-random"],
         "observation space of size 17"),
        (["train", "teacher", *TRAIN, *root, "--name", "new", "--dataset", str(base / "missing.hdf5")],
         "file not found"),
        (["train", "teacher", *TRAIN, *root, "--name", "new", "--dataset", str(base / "folder")], "is a directory"),
        (["train", "teacher", *TRAIN, *root, "--name", "new", "--dataset", str(base / "garbage.hdf5")],
         "garbage.hdf5"),
        (["train", "teacher", *TRAIN, *root, "--device", "foo"], "device"),
        (["train", "teacher", *TRAIN, *root, "--device", "cuda"], "--device cpu"),
        (["train", "teacher", *TRAIN, "--runs", str(base / "a_file")], "a_file"),
        # re-runs into existing run folders
        (["train", "teacher", *TRAIN, *root, "--set", "teacher.unet.down_dims=[8,16,32]"], "--name NEW"),
        (["train", "student", *TRAIN, *root, "--set", "student.ctm.reward_weight=0.25"], "student.ctm.reward_weight"),
        (["train", "student", *TRAIN, *root, "--name", "s2", "--set", "teacher.edm.sigma_max=40"],
         "teacher.edm.sigma_max"),
        (["train", "student", *TRAIN, *root, "--name", "s3", "--set", "student.reward_run=\"nope\""],
         "not a ractd run folder"),
        # evaluation
        (["eval", str(base / "nope")], "not a ractd run folder"),
        (["eval", str(runs / "reward")], "reward run"),
        (["eval", student, "--sampler", "rk4"], "unknown sampler 'rk4'"),
        (["eval", student, "--sampler", "multistep:x"], "must be an integer"),
        (["eval", teacher, "--sampler", "one_step"], "needs a student run"),
        (["eval", student, "--n-action-steps", "0"], "--n-action-steps"),
        (["eval", student, "--n-action-steps", "99"], "--n-action-steps"),
        (["eval", student, "--device", "foo"], "--device foo"),
        (["eval", student, "--device", "cuda"], "--device cpu"),
        (["eval", student, "-n", "1", "--out", "/proc/x/eval.json"], "/proc/x/eval.json"),
        (["eval", student, "-n", "1", "--out", str(base / "folder")], "is a folder"),
        (["eval", student, "--weights", "best"], "best"),
        (["eval", student, "--controller", "inverse_dynamics"], "inverse_dynamics"),
        (["eval", str(runs / "student_nan"), "-n", "1"], "NaN"),
        # datasets, export, benchmark
        (["data", "info", str(base / "missing.hdf5")], "file not found"),
        (["data", "info", str(base / "garbage.hdf5")], "garbage.hdf5"),
        (["data", "info", "hopper-random", "--plot", "/proc/x.png"], "/proc/x.png"),
        (["data", "generate", "hopper-random", "--steps", "100"], "--overwrite"),
        (["export", teacher, "--onnx", str(base / "t.onnx")], "student"),
        (["export", student, "--onnx", "/proc/x/p.onnx"], "/proc/x/p.onnx"),
        (["bench", str(base / "nope")], "nope"),
    ]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "1000", "MPLBACKEND": "Agg"}
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_every_bad_input_is_one_line_on_stderr_and_changes_no_run(world):
    base, runs = world
    todo = cases(base, runs)
    assert len(todo) >= 30
    before = tree_digest(base / "runs")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda case: run(case[0], base), todo))
    failures = []
    for (args, says), r in zip(todo, results, strict=True):
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        ok = r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0]
        if not ok:
            failures.append(f"ractd {' '.join(args)}\n  exit {r.returncode}, stderr: {r.stderr.strip()[-600:]!r}")
    assert not failures, f"{len(failures)} of {len(todo)} cases:\n" + "\n".join(failures)
    assert tree_digest(base / "runs") == before  # no run folder was touched
    assert not (runs / "new").exists() and not (runs / "s2").exists() and not (runs / "s3").exists()


def test_the_cases_cover_every_command():
    commands = {args[0] for args, _ in cases(Path("/b"), Path("/b/runs/hopper-random"))}
    assert commands == {"train", "config", "eval", "data", "export", "bench"}
    assert json.dumps(cases(Path("/b"), Path("/r")))  # plain data
