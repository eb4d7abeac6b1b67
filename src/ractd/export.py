"""ONNX export of the one-step student planner, normalization included (docs/algorithm.md §5).

The exported graph is the whole `Planner(sampler="one_step").plan` path, in environment units:

    observations (+ goal) ─► normalize ─► c ─┐
    noise ε ~ N(0, I) ─► x_T = init_noise_scale·ε ─► G_θ(x_T, σ_max, σ_min; c) ─► clamp[−1, 1] ─► unnormalize ─► plan

The initial noise is an input (`noise`), not baked in: a fixed-seed constant would make every plan for the same
observation identical and hide the sampler's randomness from the user, while an input keeps the graph a pure
function that onnxruntime can be checked against PyTorch exactly (same ε on both sides). Feed
`np.random.standard_normal((B, H, Dx)).astype(np.float32)`.

Inputs and outputs (B is dynamic unless `batch_dynamic=False`):

| name | shape | meaning |
|---|---|---|
| `observations` | (B, To, Do) for history conditioning, (B, Do) for goal conditioning | raw observations |
| `goal` | (B, G), goal-conditioned planners only (Maze2d: G = 2, the (x, y) target) | raw goal, zero-padded to Do |
| `noise` | (B, H, Dx) | standard normal ε |
| `plan` | (B, H, Dx) | unnormalized plan: actions (MuJoCo) or states (Maze2d) |
| `action` | (B, Da), action planners only | `plan[:, To − 1]`, the closed-loop action (docs/algorithm.md §6.1) |

The same facts are stored in the model's metadata (`onnx.load(path).metadata_props`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .artifact import Artifact, ArtifactError, load_artifact
from .planning.core import GOAL_DIM, PlanCore


class OneStepPlanner(nn.Module):
    """The one-step student planner as a pure, traceable function (observations, noise[, goal]) → plan[, action].

    A thin wrapper over the planner's own `PlanCore` (the module `Planner` calls), adding the closed-loop action
    output and the ONNX input/output names.
    """

    def __init__(self, art: Artifact, goal_dim: int = GOAL_DIM):
        super().__init__()
        if art.stage != "student":
            raise ArtifactError(f"{art.path}: ONNX export needs a student run (one-step planner), this is a "
                                f"{art.stage} run")
        self.core = PlanCore(art, goal_dim).eval()
        self.cond_kind, self.x_key, self.n_obs_steps = self.core.cond_kind, self.core.x_key, self.core.n_obs_steps
        self.horizon, self.obs_dim, self.x_dim, self.goal_dim = (self.core.horizon, self.core.obs_dim,
                                                                  self.core.x_dim, goal_dim)
        self.init_noise_scale = self.core.denoiser.edm.init_noise_scale

    @property
    def input_names(self) -> list[str]:
        return ["observations", "noise", "goal"] if self.cond_kind == "first_last" else ["observations", "noise"]

    @property
    def output_names(self) -> list[str]:
        return ["plan", "action"] if self.x_key == "actions" else ["plan"]

    def forward(self, observations: torch.Tensor, noise: torch.Tensor, goal: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, ...]:
        plan = self.core(observations, noise, goal)  # x̂ = G_θ(x_T, σ_max, σ_min), x_T = init_noise_scale·ε (§5)
        if self.x_key == "actions":
            return plan, plan[:, self.n_obs_steps - 1]
        return (plan,)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        """Zero observations/goal and standard normal noise of the right shapes (for tracing)."""
        obs_shape = (batch, self.n_obs_steps, self.obs_dim) if self.cond_kind == "history" else (batch, self.obs_dim)
        obs = torch.zeros(obs_shape)
        noise = torch.randn(batch, self.horizon, self.x_dim, generator=torch.Generator().manual_seed(0))
        if self.cond_kind == "first_last":
            return obs, noise, torch.zeros(batch, self.goal_dim)
        return obs, noise

    def metadata(self, run_dir: Path) -> dict[str, str]:
        from . import __version__

        return {
            "ractd_version": __version__, "run": str(run_dir), "sampler": "one_step", "nfe": "1",
            "x_key": self.x_key, "cond": self.cond_kind, "n_obs_steps": str(self.n_obs_steps),
            "horizon": str(self.horizon), "obs_dim": str(self.obs_dim), "x_dim": str(self.x_dim),
            "goal_dim": str(self.goal_dim) if self.cond_kind == "first_last" else "",
            "init_noise_scale": repr(self.init_noise_scale),
            "inputs": json.dumps(self.input_names), "outputs": json.dumps(self.output_names),
            "noise": "standard normal epsilon of shape (B, horizon, x_dim); scaled by init_noise_scale inside",
        }


def _to_onnx_bytes(module: OneStepPlanner, opset: int, batch_dynamic: bool) -> bytes:
    """Trace with the TorchScript exporter (`dynamo=False`); fall back to the dynamo exporter if it fails.

    A dynamic batch is traced at batch 2 (so no size-1 dimension gets specialized); a fixed one is batch 1.
    """
    args = module.example_inputs(2 if batch_dynamic else 1)
    names_in, names_out = module.input_names, module.output_names
    dynamic_axes = {n: {0: "batch"} for n in names_in + names_out} if batch_dynamic else None
    buf = io.BytesIO()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings on the U-Net's shape checks; the deprecation notice
            torch.onnx.export(module, args, buf, input_names=names_in, output_names=names_out,
                              opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True,
                              dynamo=False)
        return buf.getvalue()
    except Exception as legacy_error:  # pragma: no cover - depends on the installed torch
        try:
            dynamic_shapes = None
            if batch_dynamic:
                batch = torch.export.Dim("batch", min=1)
                dynamic_shapes = tuple({0: batch} for _ in args)  # one entry per positional input
            program = torch.onnx.export(module, args, input_names=names_in, output_names=names_out,
                                        opset_version=opset, dynamic_shapes=dynamic_shapes, dynamo=True)
            return program.model_proto.SerializeToString()
        except Exception as dynamo_error:
            raise RuntimeError(f"ONNX export failed with both exporters: TorchScript ({legacy_error}); "
                               f"dynamo ({dynamo_error})") from dynamo_error


def export_onnx(run_dir: str | Path, path: str | Path, opset: int = 17, batch_dynamic: bool = True,
                goal_dim: int = GOAL_DIM) -> Path:
    """Export the one-step student planner of `run_dir` (normalization included) to ONNX at `path`, atomically.

    Inputs `observations` [, `goal`], `noise`; outputs `plan` [, `action`] (see the module docstring).
    The file is validated with `onnx.checker` before it replaces `path`.
    """
    import onnx

    from .io import atomic_path, check_writable

    run_dir, path = Path(run_dir), check_writable(path, "--onnx", "planner.onnx")  # before the export's work
    module = OneStepPlanner(load_artifact(run_dir, expect_stage="student"), goal_dim)
    with torch.no_grad():
        model = onnx.load_from_string(_to_onnx_bytes(module, opset, batch_dynamic))
        example_inputs = module.example_inputs(2 if batch_dynamic else 1)
        example = dict(zip(module.output_names, module(*example_inputs), strict=True))
    for out in model.graph.output:  # declare (batch, H, Dx) / (batch, Da) instead of the exporter's symbols
        dims = out.type.tensor_type.shape.dim
        for k, size in enumerate(example[out.name].shape):
            dims[k].Clear()
            if k == 0 and batch_dynamic:
                dims[k].dim_param = "batch"
            else:
                dims[k].dim_value = size
    for key, value in module.metadata(run_dir).items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    with atomic_path(path, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    return path


def random_observations(art: Artifact, batch: int, rng: np.random.Generator, margin: float = 0.1,
                        goal_dim: int = GOAL_DIM) -> dict[str, np.ndarray]:
    """Observations (and goals) uniform over the normalizer's range widened by `margin` on each side.

    The widening covers inputs outside the training data, where the graph must not clip either.
    """
    n = art.normalizers["observations"]
    lo, hi = n.min.astype(np.float64), n.max.astype(np.float64)
    lo, hi = lo - margin * (hi - lo), hi + margin * (hi - lo)
    d = art.config.data
    shape = (batch, d.n_obs_steps, art.obs_dim) if d.cond == "history" else (batch, art.obs_dim)
    out = {"observations": rng.uniform(lo, hi, size=shape).astype(np.float32)}
    if d.cond == "first_last":
        out["goal"] = rng.uniform(lo[:goal_dim], hi[:goal_dim], size=(batch, goal_dim)).astype(np.float32)
    return out


class OnnxMismatchError(AssertionError):
    """onnxruntime's plan differs from PyTorch's by more than the tolerance."""


def check_onnx(run_dir: str | Path, path: str | Path, n: int = 64, atol: float = 1e-4, seed: int = 0,
               batch_sizes: tuple[int, ...] | None = None) -> float:
    """Max |onnxruntime − PyTorch| over the `plan` (and `action`) outputs on random observations (and goals).

    The PyTorch side is the real `Planner(sampler="one_step").plan`, its generator seeded so that its x_T is
    init_noise_scale·ε for the same ε fed to the ONNX `noise` input. Checks batch 1 and batch `n` (the latter
    only exercises a different batch when the file was exported with a dynamic batch). Raises
    `OnnxMismatchError` if the error exceeds `atol` (environment units).
    """
    import onnx
    import onnxruntime as ort

    from .planning import load_planner

    run_dir, path = Path(run_dir), Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: ONNX file not found (export it with `ractd export RUN --onnx {path}`)")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    meta = {p.key: p.value for p in model.metadata_props}
    planner = load_planner(run_dir, "one_step")
    art = planner.art
    goal_dim = int(meta.get("goal_dim") or GOAL_DIM)
    expected = json.dumps(OneStepPlanner(art, goal_dim).input_names)
    if meta.get("inputs", expected) != expected:
        raise ValueError(f"{path}: inputs {meta['inputs']} do not match the planner of {run_dir} ({expected})")
    fixed = model.graph.input[0].type.tensor_type.shape.dim[0]
    if batch_sizes is None:
        batch_sizes = (1, n) if not fixed.HasField("dim_value") else (fixed.dim_value,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    output_names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)
    worst = 0.0
    for k, batch in enumerate(batch_sizes):
        inputs = random_observations(art, batch, rng, goal_dim=goal_dim)
        noise_seed = seed * 1000 + k
        eps = torch.randn(batch, planner.horizon, planner.x_dim, generator=torch.Generator().manual_seed(noise_seed))
        planner.generator.manual_seed(noise_seed)  # the planner draws the same ε for its x_T
        ref_plan = planner.plan(inputs["observations"], inputs.get("goal"))
        got = dict(zip(output_names, session.run(None, {**inputs, "noise": eps.numpy()}), strict=True))
        refs = {"plan": ref_plan, "action": ref_plan[:, planner.n_obs_steps - 1]}
        for name, value in got.items():
            if value.shape != refs[name].shape:
                raise OnnxMismatchError(f"{path}: output {name!r} has shape {value.shape}, PyTorch gives "
                                        f"{refs[name].shape}")
            worst = max(worst, float(np.abs(value - refs[name]).max()))
    if not worst <= atol:
        raise OnnxMismatchError(f"{path}: onnxruntime differs from PyTorch by {worst:.3g} > atol={atol:g} "
                                f"(batches {batch_sizes})")
    return worst


def export_command(run_dir: str | Path, onnx_path: str | Path, check: bool = True, opset: int = 17,
                   batch_dynamic: bool = True, atol: float = 1e-4) -> str:
    """`ractd export RUN --onnx PATH`: export, optionally check against PyTorch, return a line to print."""
    path = export_onnx(run_dir, onnx_path, opset=opset, batch_dynamic=batch_dynamic)
    size_mb = path.stat().st_size / 2**20
    msg = f"wrote {path} ({size_mb:.1f} MiB, opset {opset}, {'dynamic' if batch_dynamic else 'fixed'} batch)"
    if check:
        err = check_onnx(run_dir, path, atol=atol)
        msg += f"; onnxruntime matches PyTorch: max |Δ| = {err:.2e} ≤ {atol:g}"
    return msg
