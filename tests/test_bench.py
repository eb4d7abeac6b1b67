"""Latency benchmark: every sampler timed on tiny trained runs, NFE bookkeeping, hand-computed statistics and ratios,
extrapolation of too-slow cases, errors, JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

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
    resolve_clock,
    run_artifacts,
    run_cases,
    summarize,
)
from ractd.config import RunConfig, apply_overrides, from_dict
from ractd.io import read_json
from ractd.stages import train_stage

FAST = dict(repeats=3, warmup=1, progress=False)


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
        for r in rows.values():
            assert r["measured"] and r["repeats"] == 3
            for clock in ("wall", "cpu"):
                assert math.isfinite(r[clock]["median_ms"]) and r[clock]["median_ms"] > 0
                assert r[clock]["min_ms"] <= r[clock]["q25_ms"] <= r[clock]["median_ms"] <= r[clock]["q75_ms"]
            assert r["ms_per_action"] == pytest.approx(r["ms_per_call"] / batch)
            if r["sampler"] == FORWARD:
                assert r["speedup_vs_teacher"] is None and r["overhead_vs_forward"] is None
            else:
                assert r["speedup_vs_teacher"] > 0 and r["overhead_vs_forward"] > 0
        assert rows["heun:4", "teacher"]["speedup_vs_teacher"] == pytest.approx(1.0)
    assert result["settings"]["clock"] == "cpu"  # one CPU thread → CPU time
    assert result["parameters"]["hopper-random"]["student"] > result["parameters"]["hopper-random"]["teacher"]
    assert json.loads(out.read_text()) == json.loads(json.dumps(result, default=str))
    assert not [p for p in out.parent.iterdir() if p.name != "bench.json"]  # atomic: no temp file left
    summary = {s["batch"]: s for s in result["summary"]}
    assert summary[1]["teacher_nfe"] == 6 and summary[1]["teacher_measured"]


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


def _case(sampler: str, network: str, nfe: int, wall_ms: list[float], cpu_ms: list[float] | None = None) -> Case:
    c = Case("m", sampler, network, nfe, 4, call=lambda: None)
    c.times = [t / 1e3 for t in wall_ms]
    c.cpu_times = [t / 1e3 for t in (cpu_ms or wall_ms)]
    return c


def test_statistics_and_ratios_by_hand():
    fwd_s = _case(FORWARD, "student", 1, [10, 20, 30, 40, 50], cpu_ms=[10, 10, 10, 10, 10])
    one = _case("one_step", "student", 1, [33, 33, 33], cpu_ms=[11, 12, 13])
    fwd_t = _case(FORWARD, "teacher", 1, [8, 8, 8], cpu_ms=[9, 9, 9])
    heun = _case("heun:80", "teacher", 158, [])
    heun.extrapolated = True  # → 158 × the teacher forward's median
    rows = {r["sampler"] + r["network"]: r for r in case_rows([[fwd_s, one, fwd_t, heun]], clock="cpu")}
    f = rows["forwardstudent"]
    assert (f["wall"]["q25_ms"], f["wall"]["median_ms"], f["wall"]["q75_ms"], f["wall"]["min_ms"]) == \
        pytest.approx((20, 30, 40, 10))
    h = rows["heun:80teacher"]
    assert not h["measured"] and h["repeats"] == 0 and h["iqr_ms"] is None and h["overhead_vs_forward"] is None
    assert h["wall"]["median_ms"] == pytest.approx(158 * 8) and h["ms_per_call"] == pytest.approx(158 * 9)
    o = rows["one_stepstudent"]
    assert o["clock"] == "cpu" and o["ms_per_call"] == pytest.approx(12) and o["ms_per_action"] == pytest.approx(3)
    assert o["iqr_ms"] == pytest.approx(1.0)  # quartiles of 11, 12, 13: 11.5 and 12.5
    assert o["overhead_vs_forward"] == pytest.approx(12 / 10) and o["wall"]["overhead_vs_forward"] == \
        pytest.approx(33 / 30)
    assert o["speedup_vs_teacher"] == pytest.approx(158 * 9 / 12)
    assert o["wall"]["speedup_vs_teacher"] == pytest.approx(158 * 8 / 33)
    (s,) = summarize(list(rows.values()))
    assert s["student_over_teacher"] == pytest.approx(118.5) and not s["speedup_goal_met"]
    assert not s["teacher_measured"] and s["planner_over_forward"] == pytest.approx(1.2) and not s["overhead_goal_met"]
    assert s["wall_planner_over_forward"] == pytest.approx(1.1)


def test_too_slow_case_is_extrapolated_and_never_run():
    calls = []
    fwd = Case("m", FORWARD, "teacher", 1, 1, call=lambda: calls.append(1))

    def never():
        raise AssertionError("an extrapolated case must not be run")

    slow = Case("m", "heun:80", "teacher", 10**9, 1, call=never)
    run_cases([[fwd, slow]], device=__import__("torch").device("cpu"), repeats=7, warmup=2, min_repeats=3,
              budget_s=10.0, max_case_s=60.0, progress=False)
    assert slow.extrapolated and slow.times == [] and slow.target == 0
    assert len(fwd.times) == fwd.target == 7  # cheap: capped by `repeats`
    assert len(calls) == 2 + 2 + 7  # first call + warm-up + estimate, then 7 timed


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


def test_bench_command_renders_and_writes_default_json(hopper_root_with_ddim: Path):
    renderable = bench_command(hopper_root_with_ddim, batch_sizes=(1,), heun_levels=3, repeats=2, progress=False)
    console = Console(record=True, width=200)
    console.print(renderable)
    text = console.export_text()
    for word in ("one_step", "multistep:4", "heun:3", "ddim:10", "student/teacher", "goal"):
        assert word in text
    assert (hopper_root_with_ddim / "bench.json").exists()


def test_errors(tiny_hopper_runs: Path, tmp_path: Path):
    with pytest.raises(ArtifactError, match="single stage folder"):
        run_artifacts(tiny_hopper_runs / "student")
    with pytest.raises(ArtifactError, match="no student/"):
        run_artifacts(tmp_path)
    with pytest.raises(ValueError, match="batch_sizes"):
        BenchSettings(batch_sizes=(0,))
    with pytest.raises(ValueError, match="clock"):
        BenchSettings(clock="gpu")
    assert resolve_clock("auto", "cpu", 1) == "cpu" and resolve_clock("auto", "cpu", 2) == "wall"
