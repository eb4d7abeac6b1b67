"""Check ractd's GPU path and measure it, with one command (docs/gpu.md).

    scripts/gpu_check.sh                          # on a CUDA machine: about 7 minutes, results/gpu/
    scripts/gpu_check.sh --out /tmp/gpu --only latency throughput
    python scripts/gpu_check.py --device cpu --smoke   # the same code with tiny sizes, in seconds, on a CPU

The steps, each in a process of its own with its own time limit (`--limit STEP=SECONDS`). A step that fails or
runs out of time is recorded as such, with whatever it measured before, and the next step runs:

1. environment — torch, CUDA, the GPU, TF32 and cuDNN settings, package versions.
2. cuda_tests — `pytest -m cuda tests/cuda`: a CUDA training step equals the CPU step, bf16 autocast trains, a run
   trained on CUDA loads on the CPU, plans on CUDA (also through `AcceleratedOneStep`) and exports to ONNX.
3. torchrun — `torchrun --nproc_per_node 1` on the device's backend (NCCL on CUDA, gloo on a CPU): an all-reduce, a
   DistributedDataParallel step, then a few steps of the training loop on a tiny teacher.
4. latency — the paper-size planner of the latency task: `ractd.bench` (student NFE 1 and 2, the teacher's 158-NFE
   Heun, the bare forwards) at batch 1 and 100, then the one-step planner through `AcceleratedOneStep` (bf16,
   `torch.compile`, CUDA graphs), against the paper's V100 figures and the goals (≤ 3 ms per action at batch 1,
   student/teacher ≥ 150×).
5. throughput — teacher and student optimizer steps per second at the paper batch sizes (float32 and bf16, eager
   and `torch.compile`), on synthetic batches of each task's shapes, and the wall time of the paper schedule.

Writes `gpu_check.json` (everything), `gpu_check.txt` (the table printed at the end), `gpu_check.log` (every step's
output) and `cuda_tests.xml` (pytest's report) to `--out`. The exit status is 0 when every step ran without a
problem.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import gc
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
FORMAT = "ractd.gpu_check/1"

# step → default time limit in seconds; the defaults add up to 7 minutes 50 seconds
STEPS: dict[str, float] = {"environment": 30, "cuda_tests": 80, "torchrun": 30, "latency": 160, "throughput": 170}
# parts of a step run in a process of their own (a compiled case), so that one which overruns is stopped alone
PARTS = ("latency_variant", "training_case")
DEFAULT_BUDGET_S = 480.0  # every step's limit is scaled down when the selected limits add up to more

# (observation, action) sizes of the tasks whose shapes are known without building their environments
TASK_DIMS = {"hopper": (11, 3), "walker2d": (17, 6), "halfcheetah": (17, 6), "maze2d": (4, 2)}

PAPER_V100_MS = {"student": 15.0, "teacher": 2134.0}  # per action, hopper-medium-replay (thesis Table 3.3)
GOAL_ONE_STEP_MS = 3.0  # one-step planner, paper size, batch 1, per action, on the GPU this check runs on
GOAL_SPEEDUP = 150.0  # student (NFE 1) over teacher (Heun, 158 NFE), per action


@dataclass(frozen=True)
class DatasetSize:
    """The size of a task's dataset for the schedule projection, and where the numbers come from."""

    transitions: int
    episodes: int
    source: str


# Windows per epoch = transitions − episodes·(H − 1): every start whose window of H steps lies inside its episode
# (docs/algorithm.md §1.4). These are assumptions about the D4RL files, which this check never reads.
DATASET_SIZES = {
    "hopper-medium-replay": DatasetSize(
        402_000, 2_041, "D4RL hopper-medium-replay-v2 as commonly reported: 402,000 transitions in 2,041 episodes "
                        "(about 400k; not read from the file here)"),
    "maze2d-umaze": DatasetSize(
        1_000_000, 0, "D4RL maze2d-umaze-v1: 1,000,000 transitions; its number of goal-to-goal episodes after the "
                      "re-segmentation is not known here, so every transition counts as a window start (an upper "
                      "bound of the windows and of the time)"),
}


@dataclass(frozen=True)
class Sizes:
    """How big the measured things are: the paper sizes, or tiny ones for a smoke run on a CPU."""

    preset: str  # the preset size the networks and schedules come from
    overrides: tuple[str, ...] = ()
    batch: tuple[tuple[str, int], ...] = ()  # (stage, batch size) replacing the preset's
    latency_batches: tuple[int, ...] = (1, 100)
    student_nfe: tuple[int, ...] = (1, 2)
    heun_levels: int | None = None  # None: the teacher's 80 levels (158 NFE)
    bench: tuple[tuple[str, Any], ...] = (("repeats", 20), ("min_repeats", 3), ("block_s", 0.02),
                                          ("budget_s", 2.0), ("max_case_s", 30.0))
    timing_s: float = 1.0  # seconds of timed calls per accelerated variant and per training case
    min_steps: int = 3  # timed optimizer steps per training case, at least
    max_steps: int = 30  # and at most
    compile_reserve_s: float = 30.0  # a compiled case starts only with this much of its step's time left
    compiled_cases: int | None = None  # compiled cases per step at most (None: as many as the time allows)
    torchrun_steps: int = 5

    def batch_size(self, stage: str, preset_batch: int) -> int:
        return dict(self.batch).get(stage, preset_batch)


PAPER = Sizes("paper")
SMOKE = Sizes("cpu", overrides=("teacher.unet.down_dims=[8,16]", "teacher.unet.time_embed_dim=8", "data.horizon=16",
                                "reward.dims=[16,16]", "student.ctm.ode_steps_max=1"),
              batch=(("teacher", 8), ("student", 8)), latency_batches=(1, 2), heun_levels=4,
              bench=(("repeats", 3), ("min_repeats", 1), ("block_s", 0.002), ("budget_s", 0.01),
                     ("max_case_s", 5.0)),
              timing_s=0.05, min_steps=1, max_steps=3, compile_reserve_s=0.0, compiled_cases=1, torchrun_steps=3)

# The one-step variants timed by the latency step: (label, AcceleratedOneStep options; None = the plain Planner).
# Cheap ones first: the compiled ones run while the step's time allows.
LATENCY_VARIANTS: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("Planner, float32", None),
    ("bf16-autocast", {"precision": "bf16-autocast"}),
    ("bf16 weights", {"precision": "bf16"}),
    ("CUDA graph, float32", {"cuda_graph": True}),
    ("CUDA graph, bf16-autocast", {"precision": "bf16-autocast", "cuda_graph": True}),
    ("CUDA graph, bf16 weights", {"precision": "bf16", "cuda_graph": True}),
    ("compile reduce-overhead, bf16 weights", {"precision": "bf16", "compile": "reduce-overhead"}),
    ("compile max-autotune-no-cudagraphs + CUDA graph, bf16 weights",
     {"precision": "bf16", "compile": "max-autotune-no-cudagraphs", "cuda_graph": True}),
)

# The training variants timed by the throughput step: (label, amp, torch.compile); eager ones first.
TRAINING_VARIANTS = (("fp32", False, False), ("bf16", True, False), ("bf16+compile", True, True),
                     ("fp32+compile", False, True))


# ================================================================================================ arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "gpu", help="output folder (default results/gpu)")
    ap.add_argument("--device", default=None, help="cuda (default when available), cuda:N or cpu (needs --smoke)")
    ap.add_argument("--smoke", action="store_true", help="tiny networks, batches and timings: a dry run in seconds")
    ap.add_argument("--only", nargs="+", choices=list(STEPS), help="run these steps only")
    ap.add_argument("--skip", nargs="+", choices=list(STEPS), default=[], help="leave these steps out")
    ap.add_argument("--limit", action="append", default=[], metavar="STEP=SECONDS", help="a step's time limit")
    ap.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                    help="all limits together at most this many seconds (scaled down to fit)")
    ap.add_argument("--tasks", nargs="+", default=["hopper-medium-replay", "maze2d-umaze"],
                    help="tasks of the throughput step")
    ap.add_argument("--latency-task", default="hopper-medium-replay", help="task of the latency step")
    ap.add_argument("--compile-backend", default=None,
                    help="torch.compile backend (default inductor; eager with --smoke, which only traces)")
    # what a step's own process is told by the parent (not for users)
    ap.add_argument("--section", choices=[*STEPS, *PARTS], help=argparse.SUPPRESS)
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--section-out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--deadline-s", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--torchrun-worker", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--torchrun-steps", type=int, default=PAPER.torchrun_steps, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.device is None:
        args.device = "cuda" if cuda_available() else "cpu"
    if args.compile_backend is None:
        args.compile_backend = "eager" if args.smoke else "inductor"
    return args


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def step_limits(args: argparse.Namespace) -> dict[str, float]:
    """The selected steps and their limits in seconds: defaults, `--limit` overrides, scaled to `--budget-s`."""
    chosen = [s for s in STEPS if (not args.only or s in args.only) and s not in args.skip]
    limits = {s: float(STEPS[s]) for s in chosen}
    for item in args.limit:
        name, sep, value = item.partition("=")
        if not sep or name not in STEPS:
            raise ValueError(f"--limit {item!r}: expected STEP=SECONDS with STEP one of {list(STEPS)}")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"--limit {item!r}: {value!r} is not a number of seconds") from None
        if seconds <= 0:
            raise ValueError(f"--limit {item!r}: the limit must be positive")
        if name in limits:
            limits[name] = seconds
    total = sum(limits.values())
    if total > args.budget_s:
        limits = {s: v * args.budget_s / total for s, v in limits.items()}
    return limits


def sizes_of(args: argparse.Namespace) -> Sizes:
    return SMOKE if args.smoke else PAPER


def child_argv(args: argparse.Namespace) -> list[str]:
    """The options a step's process shares with the parent."""
    argv = ["--out", str(args.out), "--device", args.device, "--tasks", *args.tasks, "--latency-task",
            args.latency_task, "--compile-backend", args.compile_backend]
    return argv + (["--smoke"] if args.smoke else [])


def child_env() -> dict[str, str]:
    """This environment with the repository's `src` first on PYTHONPATH (ractd runs without being installed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ================================================================================================ recording


class Recorder:
    """A step's result, written to JSON after every change, so a step stopped at its time limit keeps what it
    measured."""

    def __init__(self, path: Path | None):
        self.path, self.data = path, {}

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def append(self, key: str, item: Any) -> None:
        self.data.setdefault(key, []).append(item)
        self.save()

    def problem(self, text: str) -> None:
        print(f"PROBLEM: {text}", flush=True)
        self.append("problems", text)

    def save(self) -> None:
        if self.path is not None:
            write_json_atomic(self.path, self.data)


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


@dataclass
class Context:
    """What a step's process works with."""

    args: argparse.Namespace
    sizes: Sizes
    record: Recorder
    work: Path  # scratch folder
    deadline: float  # time.monotonic() by which the step must be done
    parts: int = 0  # parts run in processes of their own so far

    @property
    def device(self) -> str:
        return self.args.device

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def synchronize(self) -> None:
        if self.on_cuda:
            import torch

            torch.cuda.synchronize(self.device)


def say(text: str) -> None:
    print(text, flush=True)


def run_streaming(cmd: Sequence[str], timeout: float, echo: Callable[[str], None] = print,
                  ) -> tuple[int | None, str]:
    """Run `cmd` from the repository root in a process group of its own, passing each line of its output to `echo`
    as it comes. Returns (exit code, or None when it was killed at `timeout` seconds; the end of its output)."""
    proc = subprocess.Popen(list(cmd), cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, start_new_session=True)
    tail: collections.deque[str] = collections.deque(maxlen=200)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            echo(line.rstrip("\n"))
            tail.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    code: int | None
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = None
    reader.join(timeout=5)
    return code, "".join(tail)[-8000:]


# ================================================================================================ shared pieces


def task_dims(task: str) -> tuple[int, int]:
    """(observation, action) sizes of `task`, without building its environment when the robot is known."""
    robot = task.split("-")[0]
    if robot in TASK_DIMS:
        return TASK_DIMS[robot]
    from ractd.envs import get_task

    spec = get_task(task)
    return spec.obs_dim, spec.act_dim


def task_config(task: str, sizes: Sizes, *extra: str):
    """The task's preset at `sizes` with its overrides (the preset and `apply_overrides` directly: they need no
    environment registry, so no gymnasium)."""
    from ractd.config import apply_overrides
    from ractd.presets import preset

    return apply_overrides(preset(task, sizes.preset), [*sizes.overrides, *extra])


class SyntheticWindows:
    """Random normalized training windows of a config's shapes (a `BatchSource`): x, cond, obs, rtg."""

    def __init__(self, cfg: Any, obs_dim: int, act_dim: int, n: int, seed: int = 0):
        from ractd.artifact import cond_dim, diffused_dim

        d = cfg.data
        self.n, self.seed = n, seed
        self.shapes = {"x": (d.horizon, diffused_dim(cfg, obs_dim, act_dim)), "cond": (cond_dim(cfg, obs_dim),),
                       "obs": (d.n_obs_steps, obs_dim), "rtg": (d.horizon,)}

    def __len__(self) -> int:
        return self.n

    def get_batch(self, indices: Any) -> dict[str, Any]:
        import numpy as np

        rng = np.random.default_rng([self.seed, len(indices), int(indices[0]) if len(indices) else 0])
        return {k: rng.uniform(-1, 1, size=(len(indices), *shape)).astype(np.float32)
                for k, shape in self.shapes.items()}


def build_objective(cfg: Any, stage: str, obs_dim: int, act_dim: int, device: str) -> Any:
    """The stage's training objective with freshly initialized networks built on `device` (as `train_stage` builds
    it, the student warm-started from the teacher's weights)."""
    import torch

    from ractd.artifact import build_network
    from ractd.diffusion import EDMDenoiser
    from ractd.nn import insert_zero_time_columns
    from ractd.train.objectives import StudentObjective, TeacherObjective

    torch.manual_seed(cfg.seed)
    with torch.device(device):
        teacher = build_network(cfg, "teacher", obs_dim, act_dim)
        if stage == "teacher":
            return TeacherObjective(teacher, cfg.teacher.kind, cfg.teacher.edm, cfg.teacher.ddpm)
        reward = build_network(cfg, "reward", obs_dim, act_dim) if cfg.student.ctm.reward_weight > 0 else None
        student = build_network(cfg, "student", obs_dim, act_dim)
    student.load_state_dict(insert_zero_time_columns(teacher.state_dict(), cfg.teacher.unet.time_embed_dim))
    return StudentObjective(student, EDMDenoiser(teacher, cfg.teacher.edm), reward, cfg.student.ctm,
                            cfg.student.reward_aggregate, cfg.data.n_obs_steps)


def free_memory(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


@contextlib.contextmanager
def recorded_case(ctx: Context, item: dict[str, Any], what: str):
    """Measure one case: an exception becomes `item["error"]` and a recorded problem instead of ending the step,
    and the device's memory is freed either way."""
    try:
        yield
    except Exception as e:
        traceback.print_exc()
        item["error"] = error_text(e)
    finally:
        free_memory(ctx.device)
    if "error" in item:
        ctx.record.problem(f"{what}: {item['error']}")


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:400]


# ================================================================================================ 1. environment


def step_environment(ctx: Context) -> None:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "device": ctx.device,
        "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if ctx.on_cuda:
        dev = torch.device(ctx.device)
        props = torch.cuda.get_device_properties(dev)
        info |= {"gpu": props.name, "capability": f"{props.major}.{props.minor}",
                 "gpu_memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
                 "bf16_supported": torch.cuda.is_bf16_supported(), "gpu_count": torch.cuda.device_count()}
        with contextlib.suppress(Exception):
            version = torch.cuda.nccl.version()
            info["nccl"] = ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
        with contextlib.suppress(Exception):
            smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=10)
            info["nvidia_smi"] = smi.stdout.strip()
    import ractd

    info["ractd"] = ractd.__version__
    with contextlib.suppress(Exception):
        from ractd.train.meta import git_revision

        info["git"] = git_revision()
    for package in ("numpy", "triton", "onnx", "onnxruntime", "onnxscript", "safetensors", "h5py", "pytest"):
        try:
            module = __import__(package)
            info[f"{package}_version"] = getattr(module, "__version__", "?")
        except Exception as e:  # a missing optional package is a fact to report, not a failure
            info[f"{package}_version"] = f"missing ({type(e).__name__})"
    for key, value in info.items():
        say(f"{key}: {value}")
    ctx.record.set("info", info)
    if ctx.on_cuda and not torch.cuda.is_available():
        ctx.record.problem("device is cuda but torch.cuda.is_available() is False")


# ================================================================================================ 2. cuda tests


def parse_junit(path: Path) -> dict[str, Any]:
    """Counts and failed test names from pytest's JUnit XML report."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = []
    for case in root.iter("testcase"):
        for outcome in ("failure", "error"):
            node = case.find(outcome)
            if node is not None:
                message = (node.get("message") or "").strip().splitlines()
                failed.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                               "message": (message[0] if message else "")[:300]})
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed}


def step_cuda_tests(ctx: Context) -> None:
    xml = ctx.args.out / "cuda_tests.xml"
    xml.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/cuda", "-p", "no:cacheprovider", "-rfEs",
           f"--junitxml={xml}"]
    say(" ".join(cmd))
    ctx.record.set("command", " ".join(cmd[2:]))
    code, output = run_streaming(cmd, max(5.0, ctx.remaining()), say)
    ctx.record.set("exit_code", code)
    if code is None:
        ctx.record.set("output_tail", output[-4000:])
        ctx.record.problem("pytest -m cuda did not finish within the step's time")
        return
    if not xml.exists():
        ctx.record.set("output_tail", output[-4000:])
        ctx.record.problem(f"pytest wrote no report (exit code {code})")
        return
    report = parse_junit(xml)
    ctx.record.set("report", report)
    if report["failures"] or report["errors"]:
        names = ", ".join(f["test"].rsplit("::", 1)[-1] for f in report["failed"])
        ctx.record.problem(f"{report['failures'] + report['errors']} cuda test(s) failed: {names}")
    elif code not in (0, 5):  # 5: nothing collected
        ctx.record.set("output_tail", output[-4000:])
        ctx.record.problem(f"pytest exited with {code}")
    if ctx.on_cuda and report["skipped"]:
        ctx.record.problem(f"{report['skipped']} cuda test(s) were skipped on a CUDA device")


# ================================================================================================ 3. torchrun


def torchrun_worker(run_dir: Path, device: str, steps: int) -> None:
    """What each torchrun process runs: an all-reduce and a DDP step on the device's backend, then the loop."""
    import torch
    import torch.distributed as dist
    from torch import nn

    from ractd.loop_config import LoopConfig
    from ractd.train import train

    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    cuda = device.startswith("cuda")
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend)
    total = torch.full((1,), float(rank + 1), device=dev)
    dist.all_reduce(total)
    torch.manual_seed(0)
    ddp = nn.parallel.DistributedDataParallel(nn.Linear(4, 1).to(dev), device_ids=[dev.index] if cuda else None)
    ddp(torch.ones(8, 4, device=dev)).square().mean().backward()
    grads_finite = all(bool(torch.isfinite(p.grad).all()) for p in ddp.parameters())
    dist.barrier()
    dist.destroy_process_group()

    sizes = SMOKE  # a tiny teacher: this step checks the launch, not the speed
    cfg = task_config("hopper-medium-replay", sizes)
    obs_dim, act_dim = task_dims("hopper-medium-replay")
    objective = build_objective(cfg, "teacher", obs_dim, act_dim, "cpu")
    loop = LoopConfig(epochs=1, batch_size=16, lr=1e-3, warmup_steps=0, checkpoint_every=0, log_every=1,
                      tensorboard=False, device=device, max_steps=steps, seed=0)
    result = train(objective, SyntheticWindows(cfg, obs_dim, act_dim, n=16 * steps), loop, run_dir / "teacher",
                   progress=False)
    report = {"rank": rank, "world_size": world, "backend": backend, "all_reduce": float(total.item()),
              "all_reduce_expected": world * (world + 1) / 2, "ddp_grads_finite": grads_finite,
              "loop_steps": result.step, "loop_final_loss": result.last_scalars.get("loss"),
              "loop_device": str(next(objective.trainable().parameters()).device),
              "loop_wall_time_s": result.wall_time_s}
    write_json_atomic(run_dir / f"worker-rank{rank}.json", report)
    print(json.dumps(report), flush=True)


def step_torchrun(ctx: Context) -> None:
    run_dir = ctx.work / "torchrun"
    steps = ctx.sizes.torchrun_steps
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", str(SCRIPT),
           "--torchrun-worker", str(run_dir), "--torchrun-steps", str(steps), "--device", ctx.device]
    say(" ".join(cmd))
    ctx.record.set("command", "torchrun --standalone --nproc_per_node 1 scripts/gpu_check.py --torchrun-worker ...")
    code, output = run_streaming(cmd, max(5.0, ctx.remaining()), say)
    ctx.record.set("exit_code", code)
    report_path = run_dir / "worker-rank0.json"
    if code != 0 or not report_path.exists():
        ctx.record.set("output_tail", output[-4000:])
        ctx.record.problem("torchrun did not finish within the step's time" if code is None else
                           f"torchrun exited with {code}" + ("" if report_path.exists() else
                                                             ", and rank 0 wrote no report"))
        return
    report = json.loads(report_path.read_text())
    ctx.record.set("report", report)
    checks = {"the all-reduce summed the ranks": report["all_reduce"] == report["all_reduce_expected"],
              "the DDP gradients are finite": report["ddp_grads_finite"],
              f"the loop took {steps} steps": report["loop_steps"] == steps,
              "the loop's loss is finite": report["loop_final_loss"] is not None
              and math.isfinite(report["loop_final_loss"]),
              "the loop trained on the device": report["loop_device"].split(":")[0] == ctx.device.split(":")[0]}
    for text, ok in checks.items():
        if not ok:
            ctx.record.problem(f"torchrun: not true that {text}")
    ctx.record.set("note", "with one process the loop runs without a process group (it joins one only when "
                           "WORLD_SIZE > 1), so the all-reduce and the DDP step check the backend; the loop's DDP "
                           "path needs two or more GPUs")


# ================================================================================================ isolated parts


def run_part(ctx: Context, part: str, case: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one case (a compiled variant) in a process of its own, stopped after `timeout` seconds.

    Its output goes to this step's output. Returns the item it recorded, or {"skipped": ...} when it ran out of
    time (compilation can take minutes, and cannot be interrupted from within), or {"error": ...}.
    """
    ctx.parts += 1
    out = ctx.work / f"{part}-{ctx.parts}.json"
    cmd = [sys.executable, str(SCRIPT), "--section", part, "--case", json.dumps(case), "--section-out", str(out),
           "--deadline-s", f"{timeout:.1f}", *child_argv(ctx.args)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), start_new_session=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return {"skipped": f"did not finish in the {timeout:.0f} s left of the step"}
    data = json.loads(out.read_text()) if out.exists() else {}
    if "item" in data:
        return data["item"]
    return {"error": (data.get("problems") or [f"exited with {proc.returncode} and recorded nothing"])[0]}


def time_left_for(ctx: Context, reserve: float) -> float | None:
    """Seconds a part may take, leaving a few for this step to finish; None when fewer than `reserve` are left."""
    available = ctx.remaining() - 3.0
    return available if available >= reserve else None


# ================================================================================================ 4. latency


def time_call(call: Callable[[], Any], min_run_time: float) -> dict[str, float]:
    """Median and interquartile range of one call in ms (`torch.utils.benchmark.Timer`, device-synchronized)."""
    from torch.utils.benchmark import Timer

    m = Timer("call()", globals={"call": call}).blocked_autorange(min_run_time=min_run_time)
    return {"median_ms": 1e3 * m.median, "iqr_ms": 1e3 * m.iqr, "calls": m.number_per_run * len(m.times)}


def latency_artifacts(ctx: Context) -> tuple[Any, dict[str, Any]]:
    """The latency task's config and its untrained student and teacher, built on the device (latency does not depend
    on the weights)."""
    import torch

    from ractd.bench import untrained_artifacts

    cfg = task_config(ctx.args.latency_task, ctx.sizes)
    obs_dim, act_dim = task_dims(ctx.args.latency_task)
    with torch.device(ctx.device):
        return cfg, untrained_artifacts(cfg, obs_dim, act_dim, seed=0)


def latency_variant(ctx: Context, art: Any, label: str, options: dict[str, Any] | None,
                    batches: Sequence[int]) -> dict[str, Any]:
    """Build one one-step variant, compare its first actions with the float32 planner's, time it per batch size."""
    import numpy as np

    from ractd.export import random_observations
    from ractd.planning import Planner
    from ractd.planning.accelerated import AcceleratedOneStep

    item: dict[str, Any] = {"variant": label, "options": options or {}, "batches": {}}
    started = time.monotonic()
    planner = Planner(art, "one_step", ctx.device, seed=0)
    if options is None:
        fast: Any = planner
    else:
        kwargs = dict(options)
        if "compile" in kwargs:
            kwargs["compile_backend"] = ctx.args.compile_backend
        fast = AcceleratedOneStep(planner, **kwargs)
    reference = Planner(art, "one_step", ctx.device, seed=0)
    for batch in batches:
        obs = random_observations(art, batch, np.random.default_rng(batch))["observations"]
        planner.generator.manual_seed(batch)  # the same noise for both first calls
        reference.generator.manual_seed(batch)
        t0 = time.monotonic()
        got = fast.act_batch(obs)
        ctx.synchronize()
        first_s = time.monotonic() - t0
        diff = float(np.abs(got - reference.act_batch(obs)).max())
        timing = time_call(lambda obs=obs: fast.act_batch(obs), ctx.sizes.timing_s)
        item["batches"][str(batch)] = {**timing, "ms_per_action": timing["median_ms"] / batch, "first_call_s": first_s,
                                       "max_abs_diff_vs_float32": diff, "finite": bool(np.isfinite(got).all())}
        say(f"  {label}, batch {batch}: {timing['median_ms'] / batch:.4g} ms/action (first call {first_s:.2f} s, "
            f"max |Δ| vs float32 {diff:.2g})")
    item["seconds"] = time.monotonic() - started
    return item


def step_latency_variant(ctx: Context) -> None:
    case = json.loads(ctx.args.case)
    _, arts = latency_artifacts(ctx)
    ctx.record.set("item", latency_variant(ctx, arts["student"], case["variant"], case["options"], case["batches"]))


def step_latency(ctx: Context) -> None:
    from ractd.bench import BenchSettings, benchmark_artifacts
    from ractd.nn import count_parameters

    sizes = ctx.sizes
    cfg, arts = latency_artifacts(ctx)
    params = {k: count_parameters(a.net) for k, a in arts.items()}
    ctx.record.set("model", {"task": ctx.args.latency_task, "size": sizes.preset, "parameters": params,
                             "horizon": cfg.data.horizon})
    say(f"{ctx.args.latency_task} ({sizes.preset} size) parameters: {params}")
    settings = BenchSettings(batch_sizes=sizes.latency_batches, student_nfe=sizes.student_nfe,
                             heun_levels=sizes.heun_levels, device=ctx.device, threads=None if ctx.on_cuda else 1,
                             clock="wall", **dict(sizes.bench))
    try:
        bench = benchmark_artifacts({ctx.args.latency_task: arts}, settings, progress=False)
    except Exception as e:  # the variants below are still worth timing
        traceback.print_exc()
        ctx.record.problem(f"ractd.bench: {error_text(e)}")
    else:
        ctx.record.set("bench", {k: bench[k] for k in ("rows", "summary", "settings", "environment")})
        for row in bench["rows"]:
            say(f"  bench {row['network']} {row['sampler']} batch {row['batch']}: "
                f"{row['ms_per_action']:.4g} ms/action" + ("" if row["measured"] else " (extrapolated)"))
    free_memory(ctx.device)
    for label, options in LATENCY_VARIANTS:
        item: dict[str, Any] = {"variant": label, "options": options or {}}
        compiled = bool(options and "compile" in options)
        if options and options.get("cuda_graph") and not ctx.on_cuda:
            ctx.record.append("variants", {**item, "skipped": "needs CUDA"})
            continue
        say(f"variant: {label}")
        with recorded_case(ctx, item, f"latency variant {label!r}"):
            if compiled:  # at the smallest batch only: every batch size compiles anew
                timeout = time_left_for(ctx, sizes.compile_reserve_s)
                if ctx.parts == sizes.compiled_cases:
                    item["skipped"] = f"this run compiles {ctx.parts} variant(s)"
                elif timeout is None:
                    item["skipped"] = f"only {max(ctx.remaining(), 0):.0f} s of the step left"
                else:
                    batches = [min(sizes.latency_batches)]
                    item |= run_part(ctx, "latency_variant", {**item, "batches": batches}, timeout)
            else:
                item |= latency_variant(ctx, arts["student"], label, options, sizes.latency_batches)
        ctx.record.append("variants", item)
    ctx.record.set("summary", latency_summary(ctx.record.data))


def latency_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The goals: the fastest one-step variant at batch 1 (≤ 3 ms per action) and student/teacher (≥ 150×)."""
    out: dict[str, Any] = {"paper_v100_ms_per_action": PAPER_V100_MS}
    rows = (data.get("bench") or {}).get("rows", [])

    def bench_ms(network: str, sampler_prefix: str, batch: int) -> float | None:
        for r in rows:
            if r["network"] == network and r["sampler"].startswith(sampler_prefix) and r["batch"] == batch:
                return r["ms_per_action"]
        return None

    teacher_1, student_1 = bench_ms("teacher", "heun", 1), bench_ms("student", "one_step", 1)
    out["bench_batch1_ms_per_action"] = {"student_one_step": student_1, "teacher_heun": teacher_1}
    if teacher_1 and student_1:
        out["student_over_teacher_eager"] = teacher_1 / student_1
        out["speedup_goal_met"] = teacher_1 / student_1 >= GOAL_SPEEDUP
    measured = [(v["batches"]["1"]["ms_per_action"], v["variant"], v["batches"]["1"].get("max_abs_diff_vs_float32"))
                for v in data.get("variants", []) if v.get("batches", {}).get("1", {}).get("finite", True)
                and "1" in v.get("batches", {})]
    if measured:
        best_ms, best, diff = min(measured, key=lambda m: m[0])
        out |= {"fastest_one_step_batch1": {"variant": best, "ms_per_action": best_ms, "max_abs_diff_vs_float32": diff},
                "one_step_goal_ms": GOAL_ONE_STEP_MS, "one_step_goal_met": best_ms <= GOAL_ONE_STEP_MS}
        if teacher_1:
            out["fastest_one_step_over_eager_teacher"] = teacher_1 / best_ms
    return out


# ================================================================================================ 5. throughput


def project_schedule(epochs: int, batch: int, windows: int, steps_per_s: float) -> dict[str, float]:
    """Optimizer steps of a schedule (epochs × ⌈windows / batch⌉, the loop's steps per epoch) and their hours."""
    steps_per_epoch = -(-windows // batch)
    total = epochs * steps_per_epoch
    return {"epochs": epochs, "batch": batch, "windows": windows, "steps_per_epoch": steps_per_epoch,
            "total_steps": total, "hours": total / steps_per_s / 3600 if steps_per_s > 0 else math.inf}


def dataset_windows(task: str, horizon: int) -> tuple[int, str]:
    """Training windows per epoch of `task`'s D4RL dataset (see `DATASET_SIZES`) and where the number comes from."""
    size = DATASET_SIZES.get(task)
    if size is None:
        return 1_000_000, "unknown dataset: 1,000,000 windows assumed"
    return size.transitions - size.episodes * (horizon - 1), size.source


def throughput_cases(tasks: Sequence[str]) -> list[tuple[str, str, str, bool, bool]]:
    """(task, stage, variant, amp, compile) in the order they run: every eager case, then the compiled ones (the
    bf16 teachers first: compiling a training step takes the longest)."""
    eager = [(t, s, label, amp, c) for t in tasks for s in ("teacher", "student")
             for label, amp, c in TRAINING_VARIANTS if not c]
    compiled = [(t, s, label, amp, c) for label, amp, c in TRAINING_VARIANTS if c for s in ("teacher", "student")
                for t in tasks]
    return eager + compiled


def training_steps(ctx: Context, objective: Any, cfg: Any, stage: str, dims: tuple[int, int], batch: int,
                   windows: int, amp: bool, compiled: bool) -> dict[str, Any]:
    """Optimizer steps per second of the loop's own step (`ractd.train.loop`) on one synthetic batch on the device.

    Data loading is left out: the batch is already on the device. With `compiled`, `torch.compile` wraps the
    trained network and, for the student, the frozen teacher's and the target's networks.
    """
    import torch

    from ractd.train.distributed import DistInfo
    from ractd.train.loop import _optimizer_step
    from ractd.train.state import RunState

    section = {"teacher": cfg.teacher, "student": cfg.student}[stage]
    loop = dataclasses.replace(section.train, device=ctx.device, amp=amp, batch_size=batch, tensorboard=False)
    data = SyntheticWindows(cfg, *dims, n=windows)
    batch_tensors = {k: torch.as_tensor(v, device=ctx.device) for k, v in data.get_batch(list(range(batch))).items()}
    run = RunState(objective, data, loop, ctx.work / "throughput", DistInfo(device=torch.device(ctx.device)), None, [])
    model, frozen = run.plain, []
    if compiled:
        options = {"backend": ctx.args.compile_backend, "dynamic": False}
        model = torch.compile(run.plain, **options)
        for den in (getattr(objective, "teacher", None), getattr(objective, "target", None)):
            if den is not None:
                frozen.append((den, den.net))
                den.net = torch.compile(den.net, **options)
    if ctx.on_cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    try:
        t0 = time.monotonic()
        loss, *_ = _optimizer_step(run, model, batch_tensors, 0)
        ctx.synchronize()
        first_s = time.monotonic() - t0
        _optimizer_step(run, model, batch_tensors, 1)
        ctx.synchronize()
        times: list[float] = []
        started = time.monotonic()
        while len(times) < ctx.sizes.max_steps and ctx.remaining() > 0 and (
                len(times) < ctx.sizes.min_steps or time.monotonic() - started < ctx.sizes.timing_s):
            t = time.monotonic()
            loss, *_ = _optimizer_step(run, model, batch_tensors, 2 + len(times))
            ctx.synchronize()
            times.append(time.monotonic() - t)
        step_s = median(times)
        item = {"batch": batch, "steps_per_s": 1 / step_s, "ms_per_step": 1e3 * step_s,
                "samples_per_s": batch / step_s, "timed_steps": len(times), "first_step_s": first_s,
                "loss": float(loss.detach().float().cpu()),
                "autocast": str(getattr(run.autocast, "fast_dtype", None)) if amp and ctx.on_cuda else None}
        if not math.isfinite(item["loss"]):
            raise FloatingPointError(f"the training loss is {item['loss']}")
        if ctx.on_cuda:
            item["peak_memory_gib"] = torch.cuda.max_memory_allocated(ctx.device) / 2**30
        return item
    finally:
        for den, net in frozen:
            den.net = net
        free_gradients(objective)
        del run, model, batch_tensors


def free_gradients(objective: Any) -> None:
    for p in objective.trainable().parameters():
        p.grad = None


def measure_training(ctx: Context, case: dict[str, Any], objective: Any = None) -> dict[str, Any]:
    """One throughput case at the paper batch (half of it, said so, if the paper batch does not fit in memory),
    with the paper schedule projected from it. Builds the objective when none is given."""
    import torch

    cfg = task_config(case["task"], ctx.sizes)
    dims = task_dims(case["task"])
    if objective is None:
        objective = build_objective(cfg, case["stage"], *dims, ctx.device)
    if case["compile"]:
        torch._dynamo.reset()
    paper_batch, note, item = case["paper_batch"], None, None
    for batch in (paper_batch, paper_batch // 2):
        try:
            item = training_steps(ctx, objective, cfg, case["stage"], dims, batch, case["windows"], case["amp"],
                                  case["compile"])
        except torch.cuda.OutOfMemoryError:
            if batch != paper_batch or batch < 2:
                raise
        if item is not None:
            break
        free_gradients(objective)  # out of the except block: the failed step's tensors are unreferenced now
        free_memory(ctx.device)
        note = f"batch {paper_batch} ran out of GPU memory; measured at {batch // 2}"
        say(f"  {note}")
    assert item is not None
    if note:
        item["note"] = note
    item["paper_steps_per_s"] = item["steps_per_s"] * item["batch"] / paper_batch  # per step of the paper's batch
    item["projection"] = project_schedule(case["epochs"], paper_batch, case["windows"], item["paper_steps_per_s"])
    say(f"  {item['steps_per_s']:.3g} steps/s at batch {item['batch']} ({item['ms_per_step']:.4g} ms/step, first "
        f"step {item['first_step_s']:.1f} s); schedule {item['projection']['total_steps']:,} steps ≈ "
        f"{item['projection']['hours']:.3g} h")
    return item


def step_training_case(ctx: Context) -> None:
    ctx.record.set("item", measure_training(ctx, json.loads(ctx.args.case)))


def step_throughput(ctx: Context) -> None:
    sizes = ctx.sizes
    configs = {task: task_config(task, sizes) for task in ctx.args.tasks}
    for task, cfg in configs.items():
        windows, source = dataset_windows(task, cfg.data.horizon)
        ctx.record.append("datasets", {"task": task, "windows": windows, "assumption": source})
    objectives: dict[tuple[str, str], Any] = {}
    seconds: dict[tuple[str, str], float] = {}
    for task, stage, label, amp, compiled in throughput_cases(ctx.args.tasks):
        if compiled and objectives:  # the eager cases are done
            objectives.clear()
            free_memory(ctx.device)
        cfg = configs[task]
        train = {"teacher": cfg.teacher, "student": cfg.student}[stage].train
        case = {"task": task, "stage": stage, "variant": label, "amp": amp, "compile": compiled,
                "paper_batch": sizes.batch_size(stage, train.batch_size), "epochs": train.epochs,
                "windows": dataset_windows(task, cfg.data.horizon)[0]}
        item = dict(case)
        if amp and not ctx.on_cuda:
            item["note"] = "the loop's autocast is CUDA-only: on a CPU this runs in float32"
        reserve = sizes.compile_reserve_s if compiled else min(seconds.get((task, stage), 0.0), 60.0)
        timeout = time_left_for(ctx, max(reserve, 1.0))
        if compiled and ctx.parts == sizes.compiled_cases:
            ctx.record.append("cases", {**item, "skipped": f"this run compiles {ctx.parts} case(s)"})
            continue
        if timeout is None:
            ctx.record.append("cases", {**item, "skipped": f"only {max(ctx.remaining(), 0):.0f} s of the step left"})
            continue
        say(f"{task} {stage} {label}, batch {case['paper_batch']}")
        started = time.monotonic()
        with recorded_case(ctx, item, f"throughput {task} {stage} {label}"):
            if compiled:
                item |= run_part(ctx, "training_case", case, timeout)
            else:
                if (task, stage) not in objectives:  # a stage's eager cases run one after another
                    objectives.clear()
                    free_memory(ctx.device)
                    objectives[(task, stage)] = build_objective(cfg, stage, *task_dims(task), ctx.device)
                item |= measure_training(ctx, case, objectives[(task, stage)])
        seconds[(task, stage)] = item["seconds"] = time.monotonic() - started
        ctx.record.append("cases", item)
    ctx.record.set("projection", throughput_projection(ctx.record.data.get("cases", [])))


def throughput_projection(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task and stage, the fastest measured variant and the paper schedule's hours at its speed."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for c in cases:
        if "paper_steps_per_s" not in c:
            continue
        key = (c["task"], c["stage"])
        if key not in best or c["paper_steps_per_s"] > best[key]["paper_steps_per_s"]:
            best[key] = c
    return [{"task": t, "stage": s, "variant": c["variant"], "paper_steps_per_s": c["paper_steps_per_s"],
             **c["projection"]} for (t, s), c in best.items()]


# ================================================================================================ the parent


SECTIONS: dict[str, Callable[[Context], None]] = {
    "environment": step_environment, "cuda_tests": step_cuda_tests, "torchrun": step_torchrun,
    "latency": step_latency, "throughput": step_throughput,
    "latency_variant": step_latency_variant, "training_case": step_training_case,
}


def run_section(args: argparse.Namespace) -> int:
    """A step's own process: run it, recording as it goes; exit 1 on an unexpected error."""
    record = Recorder(args.section_out)
    deadline = time.monotonic() + (args.deadline_s if args.deadline_s is not None else 1e9)
    with tempfile.TemporaryDirectory(prefix=f"gpu_check_{args.section}_") as work:
        ctx = Context(args, sizes_of(args), record, Path(work), deadline)
        if not ctx.on_cuda:
            import torch

            torch.set_num_threads(1)  # a CPU run is a dry run: one thread keeps it quick on a shared machine
        try:
            SECTIONS[args.section](ctx)
        except Exception as e:
            traceback.print_exc()
            record.set("error", "".join(traceback.format_exception(e))[-4000:])
            record.problem(error_text(e))
            return 1
    return 0


def run_step(name: str, limit: float, args: argparse.Namespace, scratch: Path, log: Any) -> dict[str, Any]:
    """Run one step in its own process group, streaming its output; kill it at `limit` seconds."""
    out_json = scratch / f"{name}.json"
    margin = min(15.0, 0.1 * limit)
    cmd = [sys.executable, str(SCRIPT), "--section", name, "--section-out", str(out_json), "--deadline-s",
           f"{limit - margin:.1f}", *child_argv(args)]
    started = time.monotonic()

    def echo(line: str) -> None:
        print(f"[{name}] {line}", flush=True)
        log.write(f"[{name}] {line}\n")

    code, output = run_streaming(cmd, limit, echo)
    log.flush()
    result = json.loads(out_json.read_text()) if out_json.exists() else {}
    problems = result.get("problems", [])
    if code is None:
        status = "timed out"
    elif code != 0 or problems:
        status = "failed"
    else:
        status = "ok"
    step = {"status": status, "seconds": round(time.monotonic() - started, 1), "limit_s": round(limit, 1),
            "exit_code": code, "result": result}
    if status != "ok":
        step["output_tail"] = output[-3000:]
    return step


def summarize(steps: dict[str, Any]) -> dict[str, Any]:
    """Each step's status, the latency goals and the schedule projection (also from a step stopped early)."""
    summary: dict[str, Any] = {"steps": {name: s["status"] for name, s in steps.items()}}
    if "latency" in steps:
        summary["latency"] = latency_summary(steps["latency"]["result"])
    if "throughput" in steps:
        summary["projection"] = throughput_projection(steps["throughput"]["result"].get("cases", []))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.torchrun_worker is not None:
        torchrun_worker(args.torchrun_worker, args.device, args.torchrun_steps)
        return 0
    if args.section is not None:
        return run_section(args)
    try:
        limits = step_limits(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not cuda_available():
        print("error: --device cuda but torch.cuda.is_available() is False; a dry run on this machine is "
              "`--device cpu --smoke`", file=sys.stderr)
        return 2
    if not args.device.startswith("cuda") and not args.smoke:
        print("error: the paper sizes need a GPU; on a CPU run the dry run `--device cpu --smoke`", file=sys.stderr)
        return 2
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    result: dict[str, Any] = {
        "format": FORMAT, "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"device": args.device, "smoke": args.smoke, "tasks": args.tasks,
                     "latency_task": args.latency_task, "compile_backend": args.compile_backend,
                     "limits_s": limits, "budget_s": args.budget_s, "sizes": dataclasses.asdict(sizes_of(args))},
        "goals": {"one_step_batch1_ms_per_action_max": GOAL_ONE_STEP_MS, "student_over_teacher_min": GOAL_SPEEDUP,
                  "paper_v100_ms_per_action": PAPER_V100_MS},
        "steps": {},
    }
    say(f"ractd GPU check on {args.device}{' (smoke sizes)' if args.smoke else ''}: "
        + ", ".join(f"{k} ≤ {v:.0f} s" for k, v in limits.items()) + f"; writing to {args.out}")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch, \
            (args.out / "gpu_check.log").open("w") as log:
        for name, limit in limits.items():
            say(f"=== {name} (at most {limit:.0f} s)")
            step = run_step(name, limit, args, Path(scratch), log)
            result["steps"][name] = step
            say(f"=== {name}: {step['status']} in {step['seconds']:.1f} s")
            result["wall_s"] = round(time.monotonic() - started, 1)
            write_json_atomic(args.out / "gpu_check.json", result)
    result["summary"] = summarize(result["steps"])
    result["wall_s"] = round(time.monotonic() - started, 1)
    write_json_atomic(args.out / "gpu_check.json", result)
    table = render_table(result)
    (args.out / "gpu_check.txt").write_text(table + "\n")
    print(table, flush=True)
    return 0 if all(s["status"] == "ok" for s in result["steps"].values()) else 1


# ================================================================================================ the table


def fmt(x: Any, spec: str = ".3g", none: str = "—") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return none
    return format(x, spec)


def render_table(result: dict[str, Any]) -> str:
    """The short text report: steps, throughput and projection, latency, goals."""
    steps = result["steps"]
    env = steps.get("environment", {}).get("result", {}).get("info", {})
    where = env.get("gpu") or result["settings"]["device"]
    lines = [f"ractd GPU check — {where}, torch {env.get('torch', '?')}, CUDA {env.get('torch_cuda') or '—'}; "
             f"{result['started']}; {result.get('wall_s', 0):.0f} s"
             + (" (smoke sizes)" if result["settings"]["smoke"] else ""), "", "Steps"]
    for name, s in sorted(steps.items(), key=lambda item: list(STEPS).index(item[0])):
        lines.append(f"  {name:<12} {s['status']:<10} {s['seconds']:6.1f} s of {s['limit_s']:.0f} s  "
                     f"{step_note(name, s)}")
        for p in s["result"].get("problems", [])[:5]:
            lines.append(f"      problem: {p}")
    lines += throughput_lines(steps.get("throughput", {}).get("result", {}))
    lines += latency_lines(steps.get("latency", {}).get("result", {}))
    return "\n".join(lines)


def step_note(name: str, s: dict[str, Any]) -> str:
    r = s["result"]
    if name == "cuda_tests" and "report" in r:
        rep = r["report"]
        return f"{rep['passed']} passed, {rep['failures'] + rep['errors']} failed, {rep['skipped']} skipped"
    if name == "torchrun" and "report" in r:
        rep = r["report"]
        return (f"{rep['backend']}, world {rep['world_size']}, all-reduce {rep['all_reduce']:g}, "
                f"{rep['loop_steps']} loop steps on {rep['loop_device']}, loss {fmt(rep['loop_final_loss'])}")
    if name == "environment" and "info" in r:
        info = r["info"]
        return (f"{info.get('gpu', 'no GPU')}, {info.get('gpu_memory_gib', '—')} GiB, "
                f"bf16 {info.get('bf16_supported', '—')}, NCCL {info.get('nccl', '—')}")
    if name == "latency":
        fast = latency_summary(r).get("fastest_one_step_batch1")
        return f"fastest one-step at batch 1: {fast['ms_per_action']:.3g} ms ({fast['variant']})" if fast else ""
    if name == "throughput" and r.get("cases"):
        done = sum("paper_steps_per_s" in c for c in r["cases"])
        return f"{done} of {len(r['cases'])} cases measured"
    return ""


def throughput_lines(r: dict[str, Any]) -> list[str]:
    cases = r.get("cases", [])
    if not cases:
        return []
    labels = [label for label, _, _ in TRAINING_VARIANTS]
    lines = ["", "Training throughput: optimizer steps/s at the paper batch (synthetic batches on the device)",
             f"  {'task':<22}{'stage':<9}{'batch':>6}" + "".join(f"{v:>14}" for v in labels)
             + "   schedule at the best"]
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for c in cases:
        by_key.setdefault((c["task"], c["stage"]), {})[c["variant"]] = c
    best = {(p["task"], p["stage"]): p for p in throughput_projection(cases)}
    for (task, stage), variants in by_key.items():
        cells = []
        for v in labels:
            c = variants.get(v, {})
            cell = fmt(c.get("paper_steps_per_s")) if "paper_steps_per_s" in c else \
                ("error" if "error" in c else ("skipped" if "skipped" in c else "—"))
            cells.append(f"{cell:>14}")
        p = best.get((task, stage))
        tail = (f"   {p['total_steps']:,} steps ≈ {fmt(p['hours'])} h ({p['variant']})" if p else "")
        batch = next(iter(variants.values()))["paper_batch"]
        lines.append(f"  {task:<22}{stage:<9}{batch:>6}" + "".join(cells) + tail)
    for d in r.get("datasets", []):
        lines.append(f"  windows per epoch, {d['task']}: {d['windows']:,} — {d['assumption']}")
    lines.append("  schedule = epochs × ⌈windows / batch⌉ optimizer steps; leaves out data loading, checkpoints, "
                 "the reward model and the student's online evaluations")
    return lines


def latency_lines(r: dict[str, Any]) -> list[str]:
    bench_rows, variants = (r.get("bench") or {}).get("rows", []), r.get("variants", [])
    if not bench_rows and not variants:
        return []
    model = r.get("model", {})
    batches = sorted({row["batch"] for row in bench_rows} | {int(b) for v in variants for b in v.get("batches", {})})
    by_case: dict[tuple[str, str], dict[int, dict[str, Any]]] = {}
    for row in bench_rows:
        by_case.setdefault((row["network"], row["sampler"]), {})[row["batch"]] = row
    rows: list[tuple[str, list[str], str]] = []  # label, cells, last column
    for (network, sampler), by_batch in by_case.items():
        label = f"{network} {sampler} (NFE {next(iter(by_batch.values()))['nfe']})"
        paper = PAPER_V100_MS.get(network) if sampler == "one_step" or sampler.startswith("heun") else None
        cells = [fmt(by_batch[b]["ms_per_action"], ".4g") + ("" if by_batch[b]["measured"] else "≈")
                 if b in by_batch else "—" for b in batches]
        rows.append((label, cells, fmt(paper, ".0f")))
    for v in variants:
        label = f"one_step: {v['variant']}"
        if "batches" in v:
            cells = [fmt(v["batches"].get(str(b), {}).get("ms_per_action"), ".4g") for b in batches]
            first = v["batches"].get(str(min(batches)), {})
            rows.append((label, cells, f"max |Δ| {fmt(first.get('max_abs_diff_vs_float32'), '.2g')}"))
        else:
            rows.append((label, [], v.get("skipped") or v.get("error", "")))
    width = max(len(label) for label, _, _ in rows) + 2
    lines = ["", f"Planning latency, {model.get('task')} ({model.get('size')} size), ms per action (median; "
                 "≈ extrapolated from the forward)",
             f"  {'case':<{width}}" + "".join(f"{f'batch {b}':>11}" for b in batches) + "  paper V100 / note"]
    for label, cells, last in rows:
        lines.append(f"  {label:<{width}}" + "".join(f"{c:>11}" for c in cells)
                     + " " * (11 * (len(batches) - len(cells))) + f"  {last}")
    s = latency_summary(r)
    lines.append("")
    lines.append("Goals")
    fast = s.get("fastest_one_step_batch1")
    if fast:
        lines.append(f"  one-step planner, batch 1, ≤ {GOAL_ONE_STEP_MS:g} ms per action: "
                     f"{fast['ms_per_action']:.3g} ms ({fast['variant']}, max |Δ| vs float32 "
                     f"{fmt(fast.get('max_abs_diff_vs_float32'), '.2g')}) — "
                     f"{'met' if s['one_step_goal_met'] else 'NOT met'}")
    if "student_over_teacher_eager" in s:
        lines.append(f"  student/teacher ≥ {GOAL_SPEEDUP:g}× (both eager float32, batch 1): "
                     f"{s['student_over_teacher_eager']:.0f}× — {'met' if s['speedup_goal_met'] else 'NOT met'}"
                     + (f"; fastest one-step vs the eager teacher: {s['fastest_one_step_over_eager_teacher']:.0f}×"
                        if "fastest_one_step_over_eager_teacher" in s else ""))
    lines.append(f"  paper (one V100): student {PAPER_V100_MS['student']:g} ms, teacher {PAPER_V100_MS['teacher']:g} "
                 f"ms per action ({PAPER_V100_MS['teacher'] / PAPER_V100_MS['student']:.0f}×)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
