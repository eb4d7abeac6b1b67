"""The GPU path (`pytest -m cuda`, also run by scripts/gpu_check.py): a CUDA training step equals the CPU step,
bf16 autocast trains with a finite loss, a run trained on CUDA loads on the CPU, plans on CUDA (also through the
accelerated one-step path) and exports to ONNX.

Everything is built from synthetic data of hopper's shapes (11-dim observations, 3-dim actions), so nothing needs
gymnasium, MuJoCo or a dataset download. Without CUDA every test is skipped. `RACTD_CUDA_TESTS_ON_CPU=1` runs them
on the CPU instead (CPU against CPU): a dry run that checks their wiring on a machine without a GPU.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest
import torch

from ractd.diffusion import EDMDenoiser
from ractd.nn import insert_zero_time_columns
from ractd.train import LoopConfig, train
from ractd.train.logging import read_csv_log
from ractd.train.objectives import StudentObjective, TeacherObjective

DRY_RUN = os.environ.get("RACTD_CUDA_TESTS_ON_CPU") == "1"
DEVICE = "cpu" if DRY_RUN else "cuda"

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not (torch.cuda.is_available() or DRY_RUN), reason="no CUDA")]

OBS_DIM, ACT_DIM = 11, 3
# Tiny U-Net, no dropout (its masks come from the device's own generator, so CPU and CUDA would drop other units).
TINY = ["teacher.unet.down_dims=[16,32]", "teacher.unet.time_embed_dim=16", "teacher.unet.mid_dropout=0",
        "student.unet_dropout=0", "teacher.train.epochs=2", "reward.train.epochs=2", "student.train.epochs=2",
        "student.ctm.ode_steps_max=2", "data.windows_per_epoch=256",
        "teacher.train.checkpoint_every=0", "reward.train.checkpoint_every=0", "student.train.checkpoint_every=0",
        "teacher.train.tensorboard=false", "reward.train.tensorboard=false", "student.train.tensorboard=false"]


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 off while CUDA results are compared with CPU ones (on by default for cuDNN convolutions)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def draws_on_cpu():
    """Route the objectives' random draws on the device (σ, ε, CTM times) through the CPU generator.

    The CPU and CUDA generators give different numbers for the same seed; drawn on the CPU and moved, the two runs
    of a comparison see the same noise.
    """
    originals = {name: getattr(torch, name) for name in ("randn", "rand", "randint")}

    def on_cpu(original):
        def draw(*args, device=None, generator=None, **kwargs):
            if generator is None and device is not None and torch.device(device).type != "cpu":
                return original(*args, **kwargs).to(device)
            return original(*args, device=device, generator=generator, **kwargs)

        return draw

    try:
        for name, original in originals.items():
            setattr(torch, name, on_cpu(original))
        yield
    finally:
        for name, original in originals.items():
            setattr(torch, name, original)


class RandomWindows:
    """Normalized training windows of hopper's shapes: x (B, H, 3), cond (B, 11), obs (B, 1, 11), rtg (B, H)."""

    def __init__(self, n: int = 64, horizon: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.x = rng.uniform(-1, 1, size=(n, horizon, ACT_DIM)).astype(np.float32)
        self.obs = rng.uniform(-1, 1, size=(n, 1, OBS_DIM)).astype(np.float32)
        self.rtg = rng.uniform(-1, 1, size=(n, horizon)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def get_batch(self, indices):
        return {"x": self.x[indices], "cond": self.obs[indices, 0], "obs": self.obs[indices], "rtg": self.rtg[indices]}


def tiny_config(*extra: str):
    """hopper-medium-replay's cpu preset, tiny (the preset and `apply_overrides` directly need no gymnasium)."""
    from ractd.config import apply_overrides
    from ractd.presets import preset

    return apply_overrides(preset("hopper-medium-replay", "cpu"), [*TINY, *extra])


def networks(stage: str, seed: int = 0):
    """The stage's tiny network(s) with weights drawn from `seed`: the same weights on every call."""
    from ractd.artifact import build_network

    cfg = tiny_config()
    torch.manual_seed(seed)
    teacher = build_network(cfg, "teacher", OBS_DIM, ACT_DIM)
    if stage == "teacher":
        return cfg, teacher
    reward = build_network(cfg, "reward", OBS_DIM, ACT_DIM)
    student = build_network(cfg, "student", OBS_DIM, ACT_DIM)
    student.load_state_dict(insert_zero_time_columns(teacher.state_dict(), cfg.teacher.unet.time_embed_dim))
    return cfg, teacher, reward, student


def objective(stage: str):
    if stage == "teacher":
        cfg, teacher = networks("teacher")
        return TeacherObjective(teacher, "edm", cfg.teacher.edm, cfg.teacher.ddpm)
    cfg, teacher, reward, student = networks("student")
    return StudentObjective(student, EDMDenoiser(teacher, cfg.teacher.edm), reward, cfg.student.ctm,
                            cfg.student.reward_aggregate, cfg.data.n_obs_steps)


def loop_config(device: str, steps: int, amp: bool = False) -> LoopConfig:
    return LoopConfig(epochs=1, batch_size=16, lr=1e-3, warmup_steps=0, ema=True, checkpoint_every=0, log_every=1,
                      tensorboard=False, device=device, amp=amp, max_steps=steps, seed=0)


def flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().float().cpu().flatten() for p in module.parameters()])


def gradients(obj, device: str) -> tuple[float, torch.Tensor]:
    """Loss and flattened gradient of the first batch of `RandomWindows`, computed on `device`."""
    if callable(getattr(obj, "to", None)):
        obj.to(torch.device(device))
    model = obj.trainable().to(device).train()
    batch = {k: torch.as_tensor(v, device=device) for k, v in RandomWindows().get_batch(np.arange(16)).items()}
    torch.manual_seed(0)
    with draws_on_cpu():
        loss, _ = obj.loss(model, batch, 0)
    loss.backward()
    grads = [p.grad.detach().cpu().flatten() for p in model.parameters() if p.grad is not None]
    return float(loss.detach()), torch.cat(grads)


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_a_training_step_on_cuda_equals_the_cpu_step(stage, tmp_path):
    """Same weights, same batch, same draws (TF32 off): the loss, its gradient, and two optimizer steps of the loop
    (AdamW, EMA, the student's target update) agree between the CPU and the device."""
    loss_cpu, grad_cpu = gradients(objective(stage), "cpu")
    loss_dev, grad_dev = gradients(objective(stage), DEVICE)
    assert loss_dev == pytest.approx(loss_cpu, rel=1e-5)
    assert float((grad_dev - grad_cpu).norm() / grad_cpu.norm()) < 1e-4

    before = flat(objective(stage).trainable())
    runs = {}
    for device in ("cpu", DEVICE):
        obj = objective(stage)
        with draws_on_cpu():
            result = train(obj, RandomWindows(), loop_config(device, steps=2), tmp_path / device, progress=False)
        losses = [float(r["loss"]) for r in read_csv_log(result.csv_path)]
        runs[device] = losses, flat(obj.trainable())
    (losses_cpu, after_cpu), (losses_dev, after_dev) = runs["cpu"], runs[DEVICE]
    np.testing.assert_allclose(losses_dev, losses_cpu, rtol=1e-4)
    update_cpu, update_dev = after_cpu - before, after_dev - before
    assert float(update_cpu.norm()) > 0
    # AdamW's first steps move every weight by about ±lr whatever the gradient's size: a weight whose gradient is
    # ~0 may move the other way on the other device, so the updates agree in norm, not in every entry
    assert float((update_dev - update_cpu).norm() / update_cpu.norm()) < 0.05


@pytest.mark.parametrize("stage", ["teacher", "student"])
def test_bf16_autocast_trains_with_a_finite_loss(stage, tmp_path):
    from ractd.train.state import mixed_precision

    cfg = loop_config(DEVICE, steps=4, amp=True)
    context, scaler = mixed_precision(cfg, torch.device(DEVICE))
    if DEVICE == "cuda" and torch.cuda.is_bf16_supported():
        assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16 and scaler is None
    obj = objective(stage)
    result = train(obj, RandomWindows(), cfg, tmp_path / "amp", progress=False)
    losses = [float(r["loss"]) for r in read_csv_log(result.csv_path)]
    assert len(losses) == 4 and np.isfinite(losses).all()
    assert torch.isfinite(flat(obj.trainable())).all()


# ------------------------------------------------------------------------------------ a run trained on CUDA


@pytest.fixture(scope="module")
def cuda_runs(tmp_path_factory):
    """Teacher and student run folders trained on the device by the loop (a few steps on `RandomWindows`), written
    as `train_stage` writes them: config.json and normalizers first, then the loop's weights and meta.json.

    (`train_stage` itself reads a dataset and checks it against the task's environment, which needs gymnasium.)
    """
    from ractd.artifact import stage_header, write_stage_header
    from ractd.bench import random_normalizers

    root = tmp_path_factory.mktemp("cuda_runs")
    cfg = tiny_config(f"device={DEVICE}")
    for stage in ("teacher", "student"):
        header = stage_header(cfg, stage, OBS_DIM, ACT_DIM, "synthetic windows")
        write_stage_header(root / stage, header, random_normalizers(OBS_DIM, ACT_DIM))
        train(objective(stage), RandomWindows(), loop_config(DEVICE, steps=3), root / stage, progress=False)
    return root


def random_inputs(art, batch: int = 8, seed: int = 0):
    from ractd.export import random_observations

    obs = random_observations(art, batch, np.random.default_rng(seed))["observations"]
    noise = torch.randn(batch, art.config.data.horizon, ACT_DIM, generator=torch.Generator().manual_seed(seed))
    return obs, noise


def test_a_run_trained_on_cuda_loads_on_the_cpu_and_plans_alike(cuda_runs):
    from ractd.artifact import load_artifact
    from ractd.planning.core import PlanCore

    assert load_artifact(cuda_runs / "teacher").config.device == DEVICE  # the run really trained there
    on_cpu = load_artifact(cuda_runs / "student", expect_stage="student")
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in on_cpu.net.parameters())
    on_device = load_artifact(cuda_runs / "student", expect_stage="student")
    obs, noise = random_inputs(on_cpu)
    with torch.no_grad():
        plan_cpu = PlanCore(on_cpu).eval()(torch.as_tensor(obs), noise)
        plan_dev = PlanCore(on_device).to(DEVICE).eval()(torch.as_tensor(obs, device=DEVICE), noise.to(DEVICE))
    torch.testing.assert_close(plan_dev.cpu(), plan_cpu, rtol=1e-4, atol=1e-5)


def test_planners_run_on_cuda(cuda_runs):
    from ractd.planning import load_planner

    student = load_planner(cuda_runs / "student", device=DEVICE)
    assert next(student.net.parameters()).device.type == DEVICE
    obs, _ = random_inputs(student.art, batch=5)
    for planner in (student, load_planner(cuda_runs / "student", "multistep:2", device=DEVICE),
                    load_planner(cuda_runs / "teacher", "heun:4", device=DEVICE)):
        actions = planner.act_batch(obs)
        assert actions.shape == (5, ACT_DIM) and np.isfinite(actions).all()
        assert planner.act(obs[0]).shape == (ACT_DIM,)


def test_the_accelerated_one_step_path_on_cuda(cuda_runs):
    """float32 (eager, CUDA graph) draws the planner's noise and returns its actions; bf16 stays close."""
    from ractd.planning import load_planner
    from ractd.planning.accelerated import AcceleratedOneStep

    obs, _ = random_inputs(load_planner(cuda_runs / "student").art, batch=4)
    reference = load_planner(cuda_runs / "student", device=DEVICE, seed=3)
    expected = [reference.act_batch(obs) for _ in range(3)]
    graphs = [True, False] if DEVICE == "cuda" else [False]
    for cuda_graph in graphs:
        fast = AcceleratedOneStep(load_planner(cuda_runs / "student", device=DEVICE, seed=3), cuda_graph=cuda_graph)
        for want in expected:  # three calls: the graph is captured once and replayed with fresh noise
            np.testing.assert_allclose(fast.act_batch(obs), want, rtol=1e-5, atol=1e-5)
        rows = [torch.Generator(DEVICE).manual_seed(b) for b in range(4)]  # one generator per row (evaluation)
        same = [torch.Generator(DEVICE).manual_seed(b) for b in range(4)]
        np.testing.assert_allclose(fast.act_batch(obs, generators=rows), reference.act_batch(obs, generators=same),
                                   rtol=1e-5, atol=1e-5)
    for precision in ("bf16-autocast", "bf16"):
        fast = AcceleratedOneStep(load_planner(cuda_runs / "student", device=DEVICE, seed=3), precision=precision,
                                  cuda_graph=DEVICE == "cuda")
        got = fast.act_batch(obs)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected[0], atol=0.1 * float(np.abs(expected[0]).max()) + 0.05)


def test_onnx_export_of_a_cuda_trained_student(cuda_runs, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from ractd.export import check_onnx, export_onnx

    path = export_onnx(cuda_runs / "student", tmp_path / "planner.onnx")
    assert check_onnx(cuda_runs / "student", path) <= 1e-4

