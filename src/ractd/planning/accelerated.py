"""The one-step planner made fast on an accelerator: bfloat16, `torch.compile` and CUDA graphs (docs/algorithm.md §5,
§7).

`AcceleratedOneStep(planner, ...)` computes what `Planner.plan` / `Planner.act_batch` compute with the one-step
sampler — observations → c → G_θ(init_noise_scale·ε, σ_max, σ_min; c) → clamp → unnormalize — by calling the
planner's own `PlanCore.forward`, and it draws ε from the planner's generator exactly as the planner does. So in
float32, without a CUDA graph or compilation, it returns the planner's plans; each lever below trades a little of
that exactness for speed:

- `precision`: "float32"; "bf16-autocast" (the weights stay float32, matrix work runs in bfloat16 under
  `torch.autocast`); "bf16" (a bfloat16 copy of the network, which halves the weight bytes read per call; its time
  embedding stays float32, because c_noise = 250·ln σ reaches about ±1,500, where bfloat16 keeps no fraction);
- `compile`: a `torch.compile` mode ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs");
- `cuda_graph`: the whole forward is captured once per input shape with `torch.cuda.CUDAGraph` on static input
  buffers and replayed; ε is drawn into its buffer before each replay, outside the graph, so the draws stay the
  planner's.

"reduce-overhead" already replays CUDA graphs (inductor's own), so it cannot be combined with `cuda_graph=True`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..diffusion import CTMDenoiser
from .core import PlanCore
from .planner import Planner

PRECISIONS = ("float32", "bf16-autocast", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class LowPrecisionNet(nn.Module):
    """A copy of a denoiser network in `dtype`, called with and returning float32 tensors.

    The time embedding (sinusoids of c_noise and their MLP) stays float32 and only its output is cast, so the
    noise levels keep their exact embedding; everything else (FiLM encoders, convolutions, norms) runs in `dtype`.
    """

    def __init__(self, net: nn.Module, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.net = copy.deepcopy(net)
        self.dtype = dtype
        self.n_time_inputs = getattr(net, "n_time_inputs", 1)
        for name, child in self.net.named_children():
            if name != "time_embedding":
                child.to(dtype)
        embedding = getattr(self.net, "time_embedding", None)
        if embedding is not None:
            embedding.register_forward_hook(self._cast_embedding)

    def _cast_embedding(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output.to(self.dtype)

    def forward(self, x: torch.Tensor, *times: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(x.to(self.dtype), *times, cond=None if cond is None else cond.to(self.dtype))
        return out.float()


def low_precision_core(planner: Planner, dtype: torch.dtype = torch.bfloat16) -> PlanCore:
    """A `PlanCore` like the planner's whose denoiser network is a `LowPrecisionNet` copy (normalization and the
    one-step constants stay float32)."""
    den = planner.denoiser
    net = LowPrecisionNet(den.net, dtype)
    art = dataclasses.replace(planner.art, net=net, denoiser=CTMDenoiser(net, den.edm))
    return PlanCore(art).to(planner.device).eval()


@dataclass
class CapturedPlan:
    """One CUDA graph of the plan and the static tensors it reads and writes."""

    graph: Any  # torch.cuda.CUDAGraph
    observations: torch.Tensor
    noise: torch.Tensor
    goal: torch.Tensor | None
    plan: torch.Tensor


class AcceleratedOneStep:
    """`Planner.plan` / `act_batch` of a one-step student with optional bfloat16, `torch.compile` and CUDA graphs.

    `planner` must use the one_step sampler. `compile_backend` is `torch.compile`'s backend; the mode is passed only
    to inductor (other backends have none). `warmup` calls run before each CUDA-graph capture (and trigger the
    compilation, if any). Noise as in `Planner.plan`: without `generators` every call draws from `planner.generator`,
    so mixing calls of this object and of the planner gives the same stream of draws as calling the planner alone;
    with one generator per row, row b's noise comes from generators[b].
    """

    def __init__(self, planner: Planner, precision: str = "float32", compile: str | None = None,
                 cuda_graph: bool = False, compile_backend: str = "inductor", warmup: int = 3):
        if planner.sampler.name != "one_step":
            raise ValueError(f"AcceleratedOneStep needs a one_step planner, got sampler {planner.sampler.name!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if compile is not None and compile not in COMPILE_MODES:
            raise ValueError(f"compile must be None or one of {COMPILE_MODES}, got {compile!r}")
        if cuda_graph and planner.device.type != "cuda":
            raise ValueError(f"cuda_graph=True needs a planner on a CUDA device, this one runs on {planner.device}")
        if cuda_graph and compile == "reduce-overhead":
            raise ValueError("compile='reduce-overhead' already replays CUDA graphs; use cuda_graph=False with it, "
                             "or another compile mode")
        if warmup < 1:
            raise ValueError(f"warmup must be >= 1, got {warmup}")
        self.planner, self.precision, self.compile_mode, self.cuda_graph = planner, precision, compile, cuda_graph
        self.device, self.warmup = planner.device, warmup
        self.core = low_precision_core(planner) if precision == "bf16" else planner.core
        self._prime_constants()
        self._forward: Any = self.core
        if compile is not None:
            options: dict[str, Any] = {"backend": compile_backend, "dynamic": False}
            if compile_backend == "inductor" and compile != "default":
                options["mode"] = compile
            self._forward = torch.compile(self.core, **options)
        self._graphs: dict[tuple, CapturedPlan] = {}

    def describe(self) -> str:
        parts = [self.precision]
        if self.compile_mode is not None:
            parts.append(f"compile {self.compile_mode}")
        if self.cuda_graph:
            parts.append("CUDA graph")
        return "one_step " + " + ".join(parts)

    # ------------------------------------------------------------------------------------------- internals

    def _example(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Zero observations (and goal) and zero noise of the planner's shapes, on its device."""
        p, core = self.planner, self.core
        obs_shape = (batch, p.n_obs_steps, p.obs_dim) if core.cond_kind == "history" else (batch, p.obs_dim)
        goal = torch.zeros(batch, core.goal_dim, device=self.device) if core.cond_kind == "first_last" else None
        return (torch.zeros(obs_shape, device=self.device),
                torch.zeros(batch, p.horizon, p.x_dim, device=self.device), goal)

    def _prime_constants(self) -> None:
        """One eager call, so the denoiser's one-step constants exist before compiling or capturing."""
        with torch.inference_mode():
            self.core(*self._example(1))

    def _compute(self, observations: torch.Tensor, noise: torch.Tensor, goal: torch.Tensor | None) -> torch.Tensor:
        context = (torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
                   if self.precision == "bf16-autocast" else contextlib.nullcontext())
        with context:
            return self._forward(observations, noise, goal)

    def _noise_into(self, out: torch.Tensor, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
        """The planner's draws into `out`: torch.randn(shape, generator=g) is empty(shape).normal_(0, 1, g)."""
        if generators is None:
            return out.normal_(generator=self.planner.generator)
        if len(generators) != out.shape[0]:
            raise ValueError(f"generators: expected one per row ({out.shape[0]}), got {len(generators)}")
        for row, g in zip(out, generators, strict=True):
            row.normal_(generator=g)
        return out

    def _capture(self, obs: np.ndarray, goal: np.ndarray | None) -> CapturedPlan:
        p = self.planner
        observations = torch.zeros(obs.shape, device=self.device)
        noise = torch.zeros(obs.shape[0], p.horizon, p.x_dim, device=self.device)
        goal_t = None if goal is None else torch.zeros(goal.shape, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self._compute(observations, noise, goal_t)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            plan = self._compute(observations, noise, goal_t)
        return CapturedPlan(graph, observations, noise, goal_t, plan)

    def _replay(self, obs: np.ndarray, goal: np.ndarray | None, generators: Sequence[torch.Generator] | None
                ) -> torch.Tensor:
        key = (obs.shape, None if goal is None else goal.shape)
        captured = self._graphs.get(key)
        if captured is None:
            captured = self._graphs[key] = self._capture(obs, goal)
        captured.observations.copy_(torch.from_numpy(obs))
        if goal is not None:
            captured.goal.copy_(torch.from_numpy(goal))
        self._noise_into(captured.noise, generators)
        captured.graph.replay()
        return captured.plan

    def _run(self, obs: np.ndarray, goal: np.ndarray | None, generators: Sequence[torch.Generator] | None
             ) -> torch.Tensor:
        p = self.planner
        observations = torch.as_tensor(obs, device=self.device)
        goal_t = None if goal is None else torch.as_tensor(goal, device=self.device)
        noise = self._noise_into(torch.empty(obs.shape[0], p.horizon, p.x_dim, device=self.device), generators)
        return self._compute(observations, noise, goal_t)

    # ------------------------------------------------------------------------------------------- the calls

    def plan(self, obs: np.ndarray, goal: np.ndarray | None = None,
             generators: Sequence[torch.Generator] | None = None) -> np.ndarray:
        """Unnormalized plans (B, H, Dx), as `Planner.plan` with the one-step sampler."""
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        if single:
            obs = obs[None]
        goal_a = None if goal is None else np.asarray(goal, dtype=np.float32).reshape(obs.shape[0], -1)
        obs = np.ascontiguousarray(obs)
        with torch.inference_mode():
            x = self._replay(obs, goal_a, generators) if self.cuda_graph else self._run(obs, goal_a, generators)
            out = x.float().cpu().numpy() if self.device.type != "cpu" else x.float().numpy()
        return out[0] if single else out

    def act_batch(self, obs: np.ndarray, generators: Sequence[torch.Generator] | None = None) -> np.ndarray:
        """The action at index To − 1 of each one-step plan, as `Planner.act_batch` (docs/algorithm.md §6.1)."""
        if self.planner.x_key != "actions":
            raise ValueError("act_batch() needs an action-sequence planner; a state planner uses plan() + a "
                             "controller")
        return self.plan(obs, generators=generators)[:, self.planner.n_obs_steps - 1]

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One action for one observation (h = 1) or an observation history (To, Do)."""
        return self.act_batch(np.asarray(obs)[None])[0]
