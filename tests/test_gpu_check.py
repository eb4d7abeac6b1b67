"""scripts/gpu_check.py on a CPU: its arguments, the schedule arithmetic, the reports, `AcceleratedOneStep` against
the planner, and the whole check with tiny sizes (`--device cpu --smoke`: every step in its own process, pytest's
cuda tests skipped, torchrun on gloo), so the GPU run cannot fail for a reason a CPU could have caught."""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture
def check(fresh_script):
    return fresh_script("gpu_check")


# ------------------------------------------------------------------------------------------------ arguments


def test_arguments_limits_and_budget(check):
    args = check.parse_args([])
    assert args.device == ("cuda" if torch.cuda.is_available() else "cpu") and args.compile_backend == "inductor"
    assert check.step_limits(args) == check.STEPS and sum(check.STEPS.values()) <= check.DEFAULT_BUDGET_S
    assert check.parse_args(["--smoke"]).compile_backend == "eager"  # a CPU dry run only traces

    args = check.parse_args(["--only", "latency", "throughput", "--limit", "latency=60"])
    assert check.step_limits(args) == {"latency": 60.0, "throughput": check.STEPS["throughput"]}
    args = check.parse_args(["--skip", "throughput", "--budget-s", "100"])
    limits = check.step_limits(args)
    assert list(limits) == ["environment", "cuda_tests", "torchrun", "latency"]
    assert sum(limits.values()) == pytest.approx(100) and limits["latency"] > limits["environment"]
    for bad in ("latency", "nothing=5", "latency=soon", "latency=-1"):
        with pytest.raises(ValueError, match="--limit"):
            check.step_limits(check.parse_args(["--limit", bad]))


def test_refusals_before_anything_runs(check, tmp_path, capsys):
    out = tmp_path / "gpu"
    assert check.main(["--device", "cpu", "--out", str(out)]) == 2  # the paper sizes need a GPU
    assert "--smoke" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert check.main(["--device", "cuda", "--out", str(out)]) == 2
        assert "torch.cuda.is_available() is False" in capsys.readouterr().err
    assert check.main(["--device", "cpu", "--smoke", "--limit", "x=1", "--out", str(out)]) == 2
    assert not out.exists()


def test_child_processes_import_ractd_from_the_checkout(check):
    env = check.child_env()
    assert env["PYTHONPATH"].split(":")[0] == str(check.ROOT / "src") and env["PYTHONUNBUFFERED"] == "1"
    argv = check.child_argv(check.parse_args(["--device", "cpu", "--smoke", "--tasks", "maze2d-umaze"]))
    assert argv[argv.index("--tasks") + 1] == "maze2d-umaze" and "--smoke" in argv
    assert check.parse_args(argv).tasks == ["maze2d-umaze"]


# ------------------------------------------------------------------------------------------------ arithmetic


def test_schedule_projection(check):
    p = check.project_schedule(epochs=1000, batch=1024, windows=371_385, steps_per_s=10.0)
    assert p["steps_per_epoch"] == 363 and p["total_steps"] == 363_000  # ⌈371,385 / 1024⌉ = 363
    assert p["hours"] == pytest.approx(363_000 / 10 / 3600)
    assert check.project_schedule(1, 4, 8, 0.0)["hours"] == float("inf")

    assert check.dataset_windows("hopper-medium-replay", 16)[0] == 402_000 - 2_041 * 15
    assert check.dataset_windows("maze2d-umaze", 128)[0] == 1_000_000  # episodes unknown: an upper bound
    assert "assumed" in check.dataset_windows("walker2d-medium", 16)[1]

    cases = [{"task": "t", "stage": "teacher", "variant": "fp32", "paper_steps_per_s": 2.0, "projection": {"a": 1}},
             {"task": "t", "stage": "teacher", "variant": "bf16", "paper_steps_per_s": 5.0, "projection": {"a": 2}},
             {"task": "t", "stage": "student", "variant": "fp32", "skipped": "no time"}]
    assert check.throughput_projection(cases) == [{"task": "t", "stage": "teacher", "variant": "bf16",
                                                   "paper_steps_per_s": 5.0, "a": 2}]


def context(check, tmp_path, seconds: float = 60.0):
    args = check.parse_args(["--device", "cpu", "--smoke", "--out", str(tmp_path)])
    return check.Context(args, check.SMOKE, check.Recorder(None), tmp_path, time.monotonic() + seconds)


def test_a_paper_batch_that_does_not_fit_is_measured_at_half(check, monkeypatch, tmp_path):
    batches = []

    def steps(ctx, objective, cfg, stage, dims, batch, windows, amp, compiled):
        batches.append(batch)
        if batch == 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return {"batch": batch, "steps_per_s": 4.0, "ms_per_step": 250.0, "first_step_s": 1.0}

    monkeypatch.setattr(check, "training_steps", steps)
    objective = types.SimpleNamespace(trainable=lambda: torch.nn.Linear(2, 2))
    case = {"task": "hopper-medium-replay", "stage": "teacher", "amp": False, "compile": False, "paper_batch": 64,
            "epochs": 10, "windows": 640}
    item = check.measure_training(context(check, tmp_path), case, objective)
    assert batches == [64, 32] and "ran out of GPU memory" in item["note"]
    assert item["paper_steps_per_s"] == 2.0  # two half-batch steps per step of the paper's batch
    assert item["projection"]["total_steps"] == 100 and item["projection"]["hours"] == pytest.approx(100 / 2 / 3600)


def test_a_part_that_overruns_is_stopped_and_skipped(check, tmp_path):
    ctx = context(check, tmp_path)
    case = {"task": "hopper-medium-replay", "stage": "teacher", "variant": "bf16+compile", "amp": True,
            "compile": True, "paper_batch": 8, "epochs": 1, "windows": 8}
    started = time.monotonic()
    assert "did not finish" in check.run_part(ctx, "training_case", case, timeout=0.5)["skipped"]
    assert time.monotonic() - started < 5 and ctx.parts == 1


def test_cases_run_eager_first_then_compiled_teachers(check):
    cases = check.throughput_cases(["a", "b"])
    assert len(cases) == 2 * 2 * len(check.TRAINING_VARIANTS)
    compiled = [c for c in cases if c[4]]
    assert not any(c[4] for c in cases[:len(cases) - len(compiled)])
    assert compiled[0] == ("a", "teacher", "bf16+compile", True, True) and compiled[1][:2] == ("b", "teacher")


def test_latency_summary_against_the_goals(check):
    data = {"bench": {"rows": [
        {"network": "teacher", "sampler": "heun:80", "batch": 1, "ms_per_action": 600.0},
        {"network": "student", "sampler": "one_step", "batch": 1, "ms_per_action": 3.5}]},
        "variants": [{"variant": "Planner, float32", "batches": {"1": {"ms_per_action": 3.5}}},
                     {"variant": "CUDA graph, bf16 weights", "batches": {"1": {"ms_per_action": 0.8}}},
                     {"variant": "broken", "batches": {"1": {"ms_per_action": 0.1, "finite": False}}},
                     {"variant": "compile", "skipped": "no time"}]}
    s = check.latency_summary(data)
    assert s["student_over_teacher_eager"] == pytest.approx(600 / 3.5) and s["speedup_goal_met"]
    assert s["fastest_one_step_batch1"] == {"variant": "CUDA graph, bf16 weights", "ms_per_action": 0.8,
                                            "max_abs_diff_vs_float32": None}
    assert s["one_step_goal_met"] and s["fastest_one_step_over_eager_teacher"] == pytest.approx(750)
    assert "fastest_one_step_batch1" not in check.latency_summary({})  # a step stopped before it measured


def test_junit_report(check, tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite tests="4" failures="1" errors="1" skipped="1">'
                   '<testcase classname="tests.cuda.test_cuda" name="test_a"/>'
                   '<testcase classname="tests.cuda.test_cuda" name="test_b">'
                   '<failure message="assert 1 == 2&#10;more"/></testcase>'
                   '<testcase classname="tests.cuda.test_cuda" name="test_c"><error message="boom"/></testcase>'
                   '<testcase classname="tests.cuda.test_cuda" name="test_d"><skipped/></testcase>'
                   '</testsuite></testsuites>')
    report = check.parse_junit(xml)
    assert (report["tests"], report["passed"], report["failures"], report["errors"], report["skipped"]) == (
        4, 1, 1, 1, 1)
    assert report["failed"][0] == {"test": "tests.cuda.test_cuda::test_b", "outcome": "failure",
                                   "message": "assert 1 == 2"}


# ------------------------------------------------------------------------------------------------ AcceleratedOneStep


@pytest.fixture(scope="module")
def tiny_students():
    from ractd.bench import untrained_artifacts
    from ractd.config import apply_overrides
    from ractd.presets import preset

    small = ["teacher.unet.down_dims=[16,32]", "teacher.unet.time_embed_dim=16", "data.horizon=16"]
    return {task: untrained_artifacts(apply_overrides(preset(task, "cpu"), small), *dims)["student"]
            for task, dims in (("hopper-medium-replay", (11, 3)), ("maze2d-umaze", (4, 2)))}


def test_accelerated_one_step_is_the_planner_in_float32(tiny_students):
    from ractd.export import random_observations
    from ractd.planning import Planner
    from ractd.planning.accelerated import AcceleratedOneStep

    for task, art in tiny_students.items():
        inputs = random_observations(art, 5, np.random.default_rng(0))
        planner, fast = Planner(art, "one_step", seed=7), AcceleratedOneStep(Planner(art, "one_step", seed=7))
        for _ in range(2):  # the second call continues the same stream of draws
            want = planner.plan(inputs["observations"], inputs.get("goal"))
            np.testing.assert_array_equal(fast.plan(inputs["observations"], inputs.get("goal")), want)
        rows = [torch.Generator().manual_seed(10 + b) for b in range(5)]  # one generator per row (evaluation)
        same = [torch.Generator().manual_seed(10 + b) for b in range(5)]
        np.testing.assert_array_equal(fast.plan(inputs["observations"], inputs.get("goal"), generators=rows),
                                      planner.plan(inputs["observations"], inputs.get("goal"), generators=same))
        if task.startswith("hopper"):
            np.testing.assert_array_equal(fast.act_batch(inputs["observations"]),
                                          planner.act_batch(inputs["observations"]))
            with pytest.raises(ValueError, match="one per row"):
                fast.act_batch(inputs["observations"], generators=rows[:2])
            assert fast.act(inputs["observations"][0]).shape == (3,)
        else:
            with pytest.raises(ValueError, match="action-sequence planner"):
                fast.act_batch(inputs["observations"])


def test_accelerated_one_step_levers_on_a_cpu(tiny_students):
    from ractd.export import random_observations
    from ractd.planning import Planner
    from ractd.planning.accelerated import AcceleratedOneStep, LowPrecisionNet

    art = tiny_students["hopper-medium-replay"]
    obs = random_observations(art, 4, np.random.default_rng(1))["observations"]
    want = Planner(art, "one_step", seed=0).act_batch(obs)
    for options in ({"precision": "bf16-autocast"}, {"precision": "bf16"},
                    {"compile": "default", "compile_backend": "eager"}):
        fast = AcceleratedOneStep(Planner(art, "one_step", seed=0), **options)
        got = fast.act_batch(obs)
        assert got.dtype == np.float32 and np.isfinite(got).all() and fast.describe().startswith("one_step")
        np.testing.assert_allclose(got, want, atol=0.05 if "precision" in options else 1e-6)

    low = LowPrecisionNet(art.net)
    assert low.net.time_embedding.net[1].weight.dtype == torch.float32  # c_noise keeps its exact embedding
    assert low.net.final_conv[1].weight.dtype == torch.bfloat16 and art.net.final_conv[1].weight.dtype == torch.float32

    planner = Planner(art, "one_step")
    with pytest.raises(ValueError, match="CUDA device"):
        AcceleratedOneStep(planner, cuda_graph=True)
    with pytest.raises(ValueError, match="precision"):
        AcceleratedOneStep(planner, precision="int8")
    with pytest.raises(ValueError, match="compile"):
        AcceleratedOneStep(planner, compile="fastest")
    with pytest.raises(ValueError, match="one_step planner"):
        AcceleratedOneStep(Planner(art, "multistep:2"))


# ------------------------------------------------------------------------------------------------ the whole check


def read_result(out: Path) -> dict:
    return json.loads((out / "gpu_check.json").read_text())


@pytest.mark.slow
def test_the_whole_check_runs_on_a_cpu(check, tmp_path, capsys):
    """Every step in its own process with tiny sizes; compiled cases in processes of their own; the JSON, the table,
    the log and pytest's report are written."""
    out = tmp_path / "gpu"
    assert check.main(["--device", "cpu", "--smoke", "--tasks", "hopper-medium-replay", "--out", str(out)]) == 0
    result = read_result(out)
    steps = result["steps"]
    assert set(steps) == set(check.STEPS) and all(s["status"] == "ok" for s in steps.values()), steps
    assert steps["environment"]["result"]["info"]["cuda_available"] is torch.cuda.is_available()

    report = steps["cuda_tests"]["result"]["report"]
    # without CUDA every cuda test skips; with CUDA they run, even in a smoke run on the CPU
    assert report["tests"] > 0 and report["skipped" if not torch.cuda.is_available() else "passed"] == report["tests"]
    assert (out / "cuda_tests.xml").exists()

    torchrun = steps["torchrun"]["result"]["report"]
    assert (torchrun["backend"], torchrun["world_size"], torchrun["loop_steps"]) == ("gloo", 1, 3)

    latency = steps["latency"]["result"]
    samplers = {(r["network"], r["sampler"], r["batch"]) for r in latency["bench"]["rows"]}
    assert {("student", "one_step", 1), ("student", "multistep:2", 2), ("teacher", "heun:4", 1)} <= samplers
    variants = {v["variant"]: v for v in latency["variants"]}
    assert variants["Planner, float32"]["batches"]["1"]["max_abs_diff_vs_float32"] == 0
    assert variants["CUDA graph, float32"]["skipped"] == "needs CUDA"
    compiled = variants["compile reduce-overhead, bf16 weights"]  # ran in a process of its own
    assert list(compiled["batches"]) == ["1"] and compiled["batches"]["1"]["finite"]
    assert result["summary"]["latency"]["fastest_one_step_batch1"]["ms_per_action"] > 0

    cases = steps["throughput"]["result"]["cases"]
    measured = [c for c in cases if "paper_steps_per_s" in c]
    assert {(c["stage"], c["variant"]) for c in measured} >= {("teacher", "fp32"), ("student", "bf16"),
                                                              ("teacher", "bf16+compile")}
    assert all(c["projection"]["total_steps"] == c["epochs"] * c["projection"]["steps_per_epoch"] for c in measured)
    assert {p["stage"] for p in result["summary"]["projection"]} == {"teacher", "student"}

    table = (out / "gpu_check.txt").read_text()
    for text in ("Steps", "Training throughput", "Planning latency", "Goals", "paper (one V100)"):
        assert text in table
    assert table in capsys.readouterr().out
    assert "[latency]" in (out / "gpu_check.log").read_text()


def test_a_failing_or_overrunning_step_is_recorded_and_the_rest_runs(check, tmp_path):
    out = tmp_path / "gpu"
    code = check.main(["--device", "cpu", "--smoke", "--only", "environment", "latency", "throughput",
                       "--limit", "latency=1", "--tasks", "no-such-task", "--out", str(out)])
    assert code == 1
    steps = read_result(out)["steps"]
    assert steps["environment"]["status"] == "ok"
    assert steps["latency"]["status"] == "timed out" and steps["latency"]["seconds"] < 10
    assert steps["throughput"]["status"] == "failed" and steps["throughput"]["result"]["problems"]
    table = (out / "gpu_check.txt").read_text()
    assert "timed out" in table and "problem:" in table
