"""`ractd runs [ROOT]`: every run folder below ROOT with its stage, task, dataset, steps, status, wall time and
evaluation scores, as a table or as JSON."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from ractd.cli import app
from ractd.evaluate.results import EvalResult
from ractd.io import read_json, write_json


def invoke(*args):
    return CliRunner().invoke(app, ["runs", *map(str, args)])


def add_eval(run: Path, name: str, scores: list[float]) -> None:
    n = len(scores)
    EvalResult(returns=np.asarray(scores) * 10, lengths=np.full(n, 100), seeds=np.arange(n),
               terminated=np.zeros(n, bool), max_episode_steps=100, wall_seconds=1.0, policy_seconds=0.5,
               policy_description="test", env_id="Hopper-v5", mode="vector", max_parallel=n,
               ref_scores=(0.0, 1000.0), normalized_scores=scores).to_json(run / f"eval-{name}.json")


def test_the_tiny_runs_with_stages_steps_status_and_scores(tiny_hopper_runs: Path, tiny_maze_runs: Path,
                                                           tmp_path: Path):
    root = tmp_path / "runs"
    for source in (tiny_hopper_runs, tiny_maze_runs):  # copies: the session's runs stay as they are
        shutil.copytree(source, root / source.name, ignore=shutil.ignore_patterns("*.safetensors", "checkpoint"))
    add_eval(root / "hopper-random" / "student", "last-one_step1-n4-seed0", [60.0, 62.0, 64.0, 66.0])
    (root / "hopper-random" / "student" / "eval-broken.json").write_text("{")
    stopped = root / "maze2d-umaze" / "teacher" / "meta.json"
    write_json(stopped, {**read_json(stopped), "status": "stopped"})
    crashed = root / "maze2d-umaze" / "reward" / "meta.json"
    meta = read_json(crashed)
    meta["status"] = "running"
    meta.pop("wall_time_s")
    write_json(crashed, meta)
    hour_ago = time.time() - 3600
    for f in (crashed.parent / "train.csv", crashed):
        os.utime(f, (hour_ago, hour_ago))

    result = invoke(root)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def row(run: str) -> str:
        return next(line for line in lines if f" {run} " in line)

    for task, stages in (("hopper-random", ("teacher", "reward", "student")),
                         ("maze2d-umaze", ("teacher", "reward", "student", "inverse_dynamics"))):
        for stage in stages:
            meta = read_json(root / task / stage / "meta.json")
            assert stage in row(f"{task}/{stage}") and task in row(f"{task}/{stage}")
            assert f"{meta['step']:,} / {meta['total_steps']:,}" in row(f"{task}/{stage}")
    assert "finished" in row("hopper-random/student")
    assert "last-one_step1-n4-seed0: 63.0 ± 1.3" in result.output  # one line per evaluation in the cell
    assert "broken: not a readable evaluation result" in result.output
    assert "stopped" in row("maze2d-umaze/teacher")
    assert "running or crashed" in row("maze2d-umaze/reward")

    as_json = invoke(root, "--json")
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    runs = {r["run"]: r for r in data["runs"]}
    assert sorted(runs) == sorted(f"{t}/{s}" for t, s in [("hopper-random", "teacher"), ("hopper-random", "reward"),
                                                          ("hopper-random", "student"), ("maze2d-umaze", "teacher"),
                                                          ("maze2d-umaze", "reward"), ("maze2d-umaze", "student"),
                                                          ("maze2d-umaze", "inverse_dynamics")])
    student = runs["hopper-random/student"]
    assert (student["stage"], student["task"], student["dataset"], student["status"]) == (
        "student", "hopper-random", "hopper-random", "finished")
    assert student["wall_time_s"] > 0 and student["step"] == student["total_steps"]
    scores = {e["name"]: e for e in student["evaluations"]}
    assert scores["last-one_step1-n4-seed0"]["normalized_score"]["mean"] == 63.0
    assert scores["last-one_step1-n4-seed0"]["episodes"] == 4
    assert runs["maze2d-umaze/reward"]["status"].startswith("running or crashed (quiet for 1.0 h")


def test_an_empty_root_and_a_missing_one(tmp_path: Path):
    empty = invoke(tmp_path)
    assert empty.exit_code == 0 and "no run folders below" in empty.output
    assert json.loads(invoke(tmp_path, "--json").output)["runs"] == []
    missing = invoke(tmp_path / "nope")
    assert missing.exit_code == 2 and missing.output.strip() == f"error: {tmp_path / 'nope'}: no such folder"
