"""`ractd plot curves|returns|latency` and `ractd bench` through the CLI: each prints the PNG it wrote, the PNG has
the size of its layout, and a bad input is one line on stderr."""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ractd.bench import BenchSettings
from ractd.bench import run as bench_run
from ractd.cli import app
from ractd.evaluate.results import EvalResult
from ractd.io import write_json

HOPPER_REFS = (-20.272305, 3234.3)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def written(output: str) -> list[Path]:
    return [Path(p) for p in re.findall(r"wrote (\S+\.png)", output)]


def eval_file(path: Path, returns, refs=HOPPER_REFS, env_id: str = "Hopper-v5") -> Path:
    returns = np.asarray(returns, dtype=float)
    n = returns.size
    scores = None if refs is None else 100 * (returns - refs[0]) / (refs[1] - refs[0])
    EvalResult(returns=returns, lengths=np.full(n, 1000), seeds=np.arange(n), terminated=np.zeros(n, bool),
               max_episode_steps=1000, wall_seconds=1.0, policy_seconds=0.5, policy_description="test",
               env_id=env_id, mode="vector", max_parallel=n, ref_scores=refs, normalized_scores=scores).to_json(path)
    return path


def test_curves_of_the_tiny_runs_one_panel_per_loss_term(tiny_hopper_runs: Path, tmp_path: Path):
    runs = [tiny_hopper_runs / stage for stage in ("teacher", "reward", "student")]
    result = invoke("plot", "curves", *runs, "--smooth", "3", "--out", tmp_path / "curves.png")
    assert result.exit_code == 0, result.output
    assert written(result.output) == [tmp_path / "curves.png"]
    assert "learning curves of 3 runs" in result.output
    columns = set()
    for run in runs:
        columns |= set((run / "train.csv").read_text().splitlines()[0].split(","))
    terms = columns - {"step", "epoch", "lr"}
    assert {"loss", "ctm", "dsm", "reward"} <= terms
    assert png_size(tmp_path / "curves.png") == (1280, 90 + 280 * math.ceil(len(terms) / 2))

    one = invoke("plot", "curves", tiny_hopper_runs / "teacher" / "train.csv", "--key", "loss", "--out",
                 tmp_path / "teacher.png")
    assert one.exit_code == 0, one.output
    assert png_size(tmp_path / "teacher.png") == (640, 90 + 280)


def test_curves_errors_are_one_line(tmp_path: Path):
    result = invoke("plot", "curves", tmp_path, "--out", tmp_path / "x.png")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'train.csv'}: no such file (give a run folder holding " \
                                    "train.csv, or the CSV itself)"
    assert not (tmp_path / "x.png").exists()


def test_returns_in_normalized_score_with_the_dataset_underneath(tiny_maze_runs: Path, tmp_path: Path):
    rng = np.random.default_rng(0)
    (tmp_path / "teacher").mkdir()
    files = [eval_file(tmp_path / "teacher" / "eval-last-heun80-n50-seed0.json", rng.normal(2000, 300, 50)),
             eval_file(tmp_path / "ractd.json", rng.normal(3100, 50, 50))]
    result = invoke("plot", "returns", *files, "--out", tmp_path / "returns.png")
    assert result.exit_code == 0, result.output
    assert written(result.output) == [tmp_path / "returns.png"]
    assert "2 evaluations, D4RL normalized score ×100" in result.output
    assert png_size(tmp_path / "returns.png") == (800, 100 + 150 * 2)

    # the dataset's episodes as a third row, normalized with the files' reference scores (the tiny maze data)
    maze = eval_file(tmp_path / "maze.json", rng.uniform(0, 200, 20), refs=(23.85, 161.86), env_id="maze2d-umaze")
    with_data = invoke("plot", "returns", maze, "--dataset", "maze2d-umaze", "--label", "RACTD", "--out",
                       tmp_path / "maze.png")
    assert with_data.exit_code == 0, with_data.output
    assert "dataset maze2d-umaze underneath" in with_data.output
    assert png_size(tmp_path / "maze.png") == (800, 100 + 150 * 2)


def test_returns_without_reference_scores_are_raw(tmp_path: Path):
    raw = eval_file(tmp_path / "raw.json", [10.0, 20.0, 30.0], refs=None, env_id="Pendulum-v1")
    scored = eval_file(tmp_path / "scored.json", [1000.0, 1100.0])
    result = invoke("plot", "returns", raw, scored, "--out", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    assert "raw return" in result.output and f"no normalized scores in {raw}" in result.output
    assert png_size(tmp_path / "r.png") == (800, 400)


def test_returns_errors_are_one_line(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    result = invoke("plot", "returns", tmp_path / "bad.json", "--out", tmp_path / "x.png")
    assert result.exit_code == 2 and "not an evaluation result" in result.output
    assert str(tmp_path / "bad.json") in result.output and len(result.output.strip().splitlines()) == 1
    good = eval_file(tmp_path / "good.json", [1.0, 2.0])
    labels = invoke("plot", "returns", good, "--label", "a", "--label", "b")
    assert labels.exit_code == 2 and "2 labels given for 1 files" in labels.output


def synthetic_bench() -> dict:
    rows = []
    for batch in (1, 10):
        for network, sampler, nfe, ms in (("student", "forward", 1, 2.0), ("student", "one_step", 1, 2.1),
                                          ("student", "multistep:2", 2, 4.2), ("student", "multistep:3", 3, 6.3),
                                          ("student", "multistep:4", 4, 8.4), ("teacher", "forward", 1, 2.0),
                                          ("teacher", "heun:80", 158, 320.0)):
            rows.append({"model": "hopper-medium", "network": network, "sampler": sampler, "nfe": nfe,
                         "batch": batch, "ms_per_action": ms / batch, "measured": True,
                         "speedup_vs_teacher": 320.0 / ms if sampler != "forward" else None})
    return {"format": "ractd.bench/2", "environment": {"device": "cpu", "threads": 1}, "settings": {"clock": "cpu"},
            "rows": rows}


def test_latency_chart_next_to_the_json(tmp_path: Path):
    write_json(tmp_path / "bench.json", synthetic_bench())
    result = invoke("plot", "latency", tmp_path / "bench.json")
    assert result.exit_code == 0, result.output
    assert written(result.output) == [tmp_path / "bench.png"]
    assert png_size(tmp_path / "bench.png") == (2 * 680, round(100 * (0.9 + 0.45 * 7 + 0.9)))
    write_json(tmp_path / "other.json", {"rows": []})
    bad = invoke("plot", "latency", tmp_path / "other.json")
    assert bad.exit_code == 2 and "not a ractd benchmark result" in bad.output


@pytest.mark.slow
def test_bench_prints_the_table_and_writes_the_chart(tiny_hopper_runs: Path, tmp_path: Path, monkeypatch):
    fast = functools.partial(BenchSettings, block_s=0.001, budget_s=0.01, min_repeats=1)
    monkeypatch.setattr(bench_run, "BenchSettings", fast)  # the CLI has no knob for these
    result = invoke("bench", tiny_hopper_runs, "--batch", "1", "--out", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    assert "Planning latency" in result.output and "student/teacher" in result.output
    assert written(result.output) == [tmp_path / "b.png"]
    assert png_size(tmp_path / "b.png") == (680, round(100 * (0.9 + 0.45 * 7 + 0.9)))  # NFE 1–4, Heun, 2 forwards
