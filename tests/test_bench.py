"""Latency benchmark: every sampler timed on tiny trained runs, NFE bookkeeping, Timer blocks interleaved round-robin,
the two clocks, hand-computed statistics and ratios, extrapolation of too-slow cases, errors, JSON, the table and
the CLI. Timing goals are checked by benchmarks/latency.py, never here."""

from __future__ import annotations

import ast
import functools
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import ractd.bench
from ractd.artifact import ArtifactError
from ractd.bench import (
    FORWARD,
    BenchSettings,
    Case,
    bench_command,
    benchmark_latency,
    benchmark_networks,
    build_cases,
    case_rows,
    latency_table,
    plan_group,
    resolve_clock,
    run_artifacts,
    run_cases,
    summarize,
    summary_lines,
)
from ractd.bench import run as run_module
from ractd.bench.timing import make_timer, rounds
from ractd.cli import app
from ractd.config import RunConfig, apply_overrides, from_dict
from ractd.io import read_json
from ractd.stages import train_stage

FAST = dict(repeats=3, block_s=0.002, progress=False)


@pytest.fixture(scope="module")
def hopper_root_with_ddim(tiny_hopper_runs: Path, tmp_path_factory) -> Path:
    """A run root with the fixture's student/ and teacher/ (symlinked) and a tiny DDPM teacher in ddim/."""
    root = tmp_path_factory.mktemp("bench") / "hopper-random"
    root.mkdir()
    for stage in ("student", "teacher"):
        (root / stage).symlink_to(tiny_hopper_runs / stage)
    cfg = from_dict(RunConfig, read_json(tiny_hopper_runs / "teacher" / "config.json")["config"])
    cfg = apply_overrides(cfg, ["teacher.kind=ddpm", "teacher.train.epochs=1"])
    train_stage(cfg, "teacher", root, name="ddim", progress=False)
    return root


def test_every_sampler_timed_on_tiny_runs(hopper_root_with_ddim: Path, tmp_path: Path):
    out = tmp_path / "out" / "bench.json"
    result = benchmark_latency(hopper_root_with_ddim, batch_sizes=(1, 3), student_nfe=(1, 2, 3, 4), heun_levels=4,
                               ddim_steps=2, out=out, **FAST)
    expected_nfe = {(FORWARD, "student"): 1, (FORWARD, "teacher"): 1, (FORWARD, "ddim"): 1, ("one_step", "student"): 1,
                    ("multistep:2", "student"): 2, ("multistep:3", "student"): 3, ("multistep:4", "student"): 4,
                    ("heun:4", "teacher"): 2 * (4 - 1), ("ddim:2", "ddim"): 2}
    for batch in (1, 3):
        rows = {(r["sampler"], r["network"]): r for r in result["rows"] if r["batch"] == batch}
        assert {k: r["nfe"] for k, r in rows.items()} == expected_nfe
        for (sampler, network), r in rows.items():
            assert r["measured"] and r["blocks"] == 3 and r["calls_per_block"] >= 1 and r["clock"] == "cpu"
            assert r["min_ms"] <= r["q25_ms"] <= r["median_ms"] == r["ms_per_call"] <= r["q75_ms"]
            assert r["iqr_ms"] == pytest.approx(r["q75_ms"] - r["q25_ms"])
            assert r["ms_per_action"] == pytest.approx(r["ms_per_call"] / batch)
            if sampler == FORWARD:
                assert r["speedup_vs_teacher"] is None and r["overhead_vs_forward"] is None
            else:  # ratios of the medians
                forward = rows[FORWARD, network]["ms_per_call"]
                assert r["overhead_vs_forward"] == pytest.approx(r["ms_per_call"] / (r["nfe"] * forward))
                teacher = rows["heun:4", "teacher"]["ms_per_call"]
                assert r["speedup_vs_teacher"] == pytest.approx(teacher / r["ms_per_call"])
        assert rows["heun:4", "teacher"]["speedup_vs_teacher"] == pytest.approx(1.0)
    assert result["format"] == "ractd.bench/2"
    assert result["settings"]["clock"] == "cpu"  # one CPU thread → CPU time
    assert result["environment"]["threads"] == 1 and "load_average_1min_end" in result["environment"]
    assert result["parameters"]["hopper-random"]["student"] > result["parameters"]["hopper-random"]["teacher"]
    assert json.loads(out.read_text()) == json.loads(json.dumps(result, default=str))
    assert not [p for p in out.parent.iterdir() if p.name != "bench.json"]  # atomic: no temp file left
    summary = {s["batch"]: s for s in result["summary"]}
    assert summary[1]["teacher_nfe"] == 6 and summary[1]["teacher_measured"]
    one = next(r for r in result["rows"] if r["batch"] == 1 and r["sampler"] == "one_step")
    assert summary[1]["planner_over_forward"] == one["overhead_vs_forward"]


def test_default_heun_is_158_evaluations_and_cases_are_complete(tiny_maze_runs: Path):
    arts = run_artifacts(tiny_maze_runs)  # inverse_dynamics/ and reward/ are ignored
    assert set(arts) == {"student", "teacher"}
    cases = build_cases("maze", arts, 2, (1, 3), None, 10, "cpu", 0)
    assert [(c.network, c.sampler, c.nfe) for c in cases] == [
        ("student", FORWARD, 1), ("student", "one_step", 1), ("student", "multistep:3", 3),
        ("teacher", FORWARD, 1), ("teacher", "heun:80", 158)]
    assert all(c.batch == 2 for c in cases)
    for c in cases[:3]:  # a state planner: calls return (B, H, Dx) plans or network outputs
        assert np.asarray(c.call()).shape == (2, 16, 4)


def _case(sampler: str, network: str, nfe: int, ms: list[float]) -> Case:
    c = Case("m", sampler, network, nfe, 4, call=lambda: None)
    c.times = [t / 1e3 for t in ms]
    return c


def test_statistics_and_ratios_by_hand():
    fwd_s = _case(FORWARD, "student", 1, [10, 20, 30, 40, 50])
    one = _case("one_step", "student", 1, [33, 36, 39])
    fwd_t = _case(FORWARD, "teacher", 1, [8, 9, 10])
    heun = _case("heun:80", "teacher", 158, [])
    heun.extrapolated = True  # → 158 × the teacher forward's median
    rows = {r["sampler"] + r["network"]: r for r in case_rows([[fwd_s, one, fwd_t, heun]], clock="cpu")}
    f = rows["forwardstudent"]
    assert (f["q25_ms"], f["median_ms"], f["q75_ms"], f["min_ms"]) == pytest.approx((20, 30, 40, 10))
    h = rows["heun:80teacher"]
    assert not h["measured"] and h["blocks"] == 0 and h["iqr_ms"] is None and h["overhead_vs_forward"] is None
    assert h["ms_per_call"] == pytest.approx(158 * 9)
    o = rows["one_stepstudent"]
    assert o["clock"] == "cpu" and o["ms_per_call"] == pytest.approx(36) and o["ms_per_action"] == pytest.approx(9)
    assert o["iqr_ms"] == pytest.approx(3.0)  # quartiles of 33, 36, 39: 34.5 and 37.5
    assert o["overhead_vs_forward"] == pytest.approx(36 / 30)
    assert o["speedup_vs_teacher"] == pytest.approx(158 * 9 / 36)
    (s,) = summarize(list(rows.values()))
    assert s["student_over_teacher"] == pytest.approx(39.5) and not s["speedup_goal_met"]
    assert not s["teacher_measured"] and s["planner_over_forward"] == pytest.approx(1.2) and not s["overhead_goal_met"]

    result = {"environment": {"device": "cpu", "threads": 1, "torch": "x", "load_average_1min": 2.5},
              "settings": {"clock": "cpu"}, "rows": list(rows.values()), "summary": [s]}
    console = Console(record=True, width=200)
    console.print(latency_table(result))
    text = console.export_text()
    assert "≈1422" in text and "CPU time" in text and "load 2.5" in text  # the extrapolated Heun is marked
    (line,) = summary_lines(result)
    assert "teacher extrapolated" in line and "1.200×" in line and "NOT met" in line


def test_plan_group_gives_every_case_blocks_as_long_as_the_slowest_call():
    fwd = Case("m", FORWARD, "teacher", 1, 1, call=lambda: None, estimate_s=0.01)
    heun = Case("m", "heun:3", "teacher", 4, 1, call=lambda: None)
    slow = Case("m", "heun:80", "teacher", 158, 1, call=lambda: None)
    plan_group([fwd, heun, slow], block_s=0.02, repeats=50, min_repeats=3, budget_s=1.0, max_case_s=4.0)
    assert slow.extrapolated and slow.target == 0  # 3 calls × 1.58 s > 4 s
    assert heun.estimate_s == pytest.approx(0.04) and not heun.extrapolated
    assert (fwd.number, heun.number) == (4, 1)  # blocks of 0.04 s, the slowest call that is run
    assert fwd.target == heun.target == 25  # 1 s of 0.04 s blocks, the same rounds for both
    quick = [Case("m", FORWARD, "student", 1, 1, call=lambda: None, estimate_s=0.001)]
    plan_group(quick, block_s=0.02, repeats=50, min_repeats=3, budget_s=1.0, max_case_s=4.0)
    assert (quick[0].number, quick[0].target) == (20, 50)  # at least block_s per block; at most `repeats`


def test_too_slow_case_is_extrapolated_and_never_run():
    calls = []
    fwd = Case("m", FORWARD, "teacher", 1, 1, call=lambda: calls.append(1))

    def never():
        raise AssertionError("an extrapolated case must not be run")

    slow = Case("m", "heun:80", "teacher", 10**9, 1, call=never)
    run_cases([[fwd, slow]], clock="wall", threads=1, repeats=7, min_repeats=3, block_s=1e-4, budget_s=10.0,
              max_case_s=60.0, progress=False)
    assert slow.extrapolated and slow.times == [] and slow.target == 0
    assert len(fwd.times) == fwd.target == 7  # cheap: capped by `repeats`
    timed = len(calls)
    assert timed >= 7 * (fwd.number + 2)  # every block: Timer's ≥ 2 warm-up calls, then `number` timed ones


def test_blocks_go_round_robin_with_warm_up_before_each():
    log: list[str] = []
    cases = [Case("m", s, "student", 1, 1, call=functools.partial(log.append, s), number=3, target=2)
             for s in ("a", "b")]
    rounds(cases, {id(c): make_timer(c.call, "wall", 1) for c in cases}, advance=lambda seconds: None)
    assert log == ["a"] * 5 + ["b"] * 5 + ["a"] * 5 + ["b"] * 5  # per block: 2 warm-up + 3 timed calls
    assert all(len(c.times) == 2 for c in cases)


def test_the_cpu_clock_leaves_out_waiting():
    def nap() -> None:
        time.sleep(0.02)

    assert make_timer(nap, "wall", 1).timeit(1).median >= 0.02
    assert make_timer(nap, "cpu", 1).timeit(1).median < 0.01  # sleeping costs no CPU time
    assert resolve_clock("auto", "cpu", 1) == "cpu" and resolve_clock("auto", "cpu", 2) == "wall"
    assert resolve_clock("auto", "cuda", 1) == "wall"
    with pytest.raises(ValueError, match="does not see the work"):
        resolve_clock("cpu", "cuda", 1)


def test_timing_restores_the_thread_count():
    before = torch.get_num_threads()
    make_timer(lambda: None, "wall", 1).timeit(2)
    assert torch.get_num_threads() == before


def test_benchmark_networks_from_configs(tmp_path: Path):
    tiny = ["teacher.unet.down_dims=[8,16]", "teacher.unet.time_embed_dim=8"]
    cfg = apply_overrides(from_dict(RunConfig, {"task": "hopper-random"}), tiny)
    result = benchmark_networks({"tiny": cfg}, batch_sizes=(2,), student_nfe=(1,), heun_levels=3,
                                out=tmp_path / "nets.json", **FAST)
    assert result["source"] == {"tiny": "untrained hopper-random (cpu)"}
    assert [(r["network"], r["sampler"], r["nfe"]) for r in result["rows"]] == [
        ("student", FORWARD, 1), ("student", "one_step", 1), ("teacher", FORWARD, 1), ("teacher", "heun:3", 4)]
    assert all(r["ms_per_call"] > 0 for r in result["rows"])
    assert read_json(tmp_path / "nets.json")["summary"][0]["model"] == "tiny"


def test_bench_command_prints_and_writes_default_json(hopper_root_with_ddim: Path):
    console = Console(record=True, width=200)
    result = bench_command(hopper_root_with_ddim, batch_sizes=(1,), heun_levels=3, repeats=2, progress=False,
                           console=console)
    text = console.export_text()
    for word in ("one_step", "multistep:4", "heun:3", "ddim:10", "student/teacher", "goal", "bench.json"):
        assert word in text
    assert read_json(hopper_root_with_ddim / "bench.json")["rows"] == json.loads(json.dumps(result["rows"]))


def test_the_cli_prints_the_table(hopper_root_with_ddim: Path, tmp_path: Path, monkeypatch):
    fast = functools.partial(BenchSettings, block_s=0.001, budget_s=0.01, min_repeats=1)
    monkeypatch.setattr(run_module, "BenchSettings", fast)  # the CLI has no knob for these
    out = tmp_path / "cli.json"
    result = CliRunner().invoke(app, ["bench", str(hopper_root_with_ddim), "--batch", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for word in ("Planning latency", "one_step", "heun:80", "158", "student/teacher", "goal"):
        assert word in result.output
    assert read_json(out)["settings"]["budget_s"] == 0.01


def test_the_benchmark_imports_nothing_from_training():
    for path in Path(ractd.bench.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not module.startswith(("..train", "ractd.train")), f"{path.name} imports {module}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("ractd.train") for a in node.names), path.name


def test_errors(tiny_hopper_runs: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match="single stage folder"):
        run_artifacts(tiny_hopper_runs / "student")
    with pytest.raises(ArtifactError, match="no student/"):
        run_artifacts(tmp_path)
    with pytest.raises(ValueError, match="batch_sizes"):
        BenchSettings(batch_sizes=(0,))
    with pytest.raises(ValueError, match="clock"):
        BenchSettings(clock="gpu")
    with pytest.raises(ValueError, match="block_s"):
        BenchSettings(block_s=0)
