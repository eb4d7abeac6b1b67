"""Which calls are timed: the bare forward of a network on ready tensors and the planner call of each sampler, for
trained runs or untrained networks of a config's sizes; and the rule that extrapolates a case too slow to run.

A planner call is the whole `Planner.act_batch` path (or `Planner.plan` for state planners): observations in
environment units → normalization → initial noise → NFE network evaluations → clamp → unnormalization → numpy.
The bare forward is one call of the raw network on ready tensors under `no_grad`, so `call / (NFE × forward)` is
the planner's overhead (docs/algorithm.md §7). The planner runs under `inference_mode`, which also makes its network
call a few per cent cheaper than the same call under `no_grad`; the ratio includes that gain, it is not hidden
from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..artifact import Artifact, ArtifactError, build_network, load_artifact
from ..config import RunConfig
from ..planning import Planner

FORWARD = "forward"


@dataclass
class Case:
    """One timed thing: a planner call with a sampler, or a bare forward of one network, at one batch size.

    `times` holds seconds per call, one entry per timed block of `number` calls.
    """

    model: str
    sampler: str  # "forward" | "one_step" | "multistep:K" | "heun:N" | "ddim:K"
    network: str  # student | teacher | ddim
    nfe: int
    batch: int
    call: Callable[[], Any]
    number: int = 1  # calls per timed block
    target: int = 0  # timed blocks wanted
    estimate_s: float = 0.0  # seconds per call, before timing
    extrapolated: bool = False
    times: list[float] = field(default_factory=list)

    @property
    def is_forward(self) -> bool:
        return self.sampler == FORWARD


def forward_call(planner: Planner, batch: int, rng: np.random.Generator) -> Callable[[], Any]:
    """One bare network forward on ready tensors (input, time input(s), condition), under no_grad."""
    from ..export import random_observations

    obs = random_observations(planner.art, batch, rng)
    cond = planner.condition(obs["observations"], obs.get("goal"))
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    x = torch.randn(batch, planner.horizon, planner.x_dim, generator=g).to(planner.device)
    tau = torch.full((batch,), 3.0, device=planner.device)  # any time value costs the same
    net = planner.net
    times = (tau, tau) if getattr(net, "n_time_inputs", 1) == 2 else (tau,)

    def call() -> torch.Tensor:
        with torch.no_grad():
            return net(x, *times, cond=cond)

    return call


def planner_call(planner: Planner, batch: int, rng: np.random.Generator) -> Callable[[], Any]:
    """One planner call in environment units: `act_batch(obs)` (action planners) or `plan(obs, goal)` (state)."""
    from ..export import random_observations

    obs = random_observations(planner.art, batch, rng)
    if planner.x_key == "actions":
        return lambda: planner.act_batch(obs["observations"])
    return lambda: planner.plan(obs["observations"], obs.get("goal"))


def samplers_of(network: str, art: Artifact, student_nfe: Sequence[int], heun_levels: int | None,
                ddim_steps: int) -> list[str]:
    """The planner samplers timed for one network: the student at each NFE, the teacher's Heun, DDIM."""
    if network == "student":
        return ["one_step" if k == 1 else f"multistep:{k}" for k in student_nfe]
    if network == "teacher":
        return [f"heun:{heun_levels or art.config.teacher.edm.n_levels}"]
    return [f"ddim:{ddim_steps}"]


def build_cases(model: str, arts: Mapping[str, Artifact], batch: int, student_nfe: Sequence[int],
                heun_levels: int | None, ddim_steps: int, device: str, seed: int) -> list[Case]:
    """The forward and planner cases of one model at one batch size; `arts` keys: student, teacher, ddim."""
    rng = np.random.default_rng(seed)
    cases = []
    for network, art in arts.items():
        base = Planner(art, "auto", device, seed)
        cases.append(Case(model, FORWARD, network, 1, batch, forward_call(base, batch, rng)))
        for sampler in samplers_of(network, art, student_nfe, heun_levels, ddim_steps):
            p = Planner(art, sampler, device, seed)
            cases.append(Case(model, sampler, network, p.nfe, batch, planner_call(p, batch, rng)))
    return cases


def plan_group(group: Sequence[Case], block_s: float, repeats: int, min_repeats: int, budget_s: float,
               max_case_s: float) -> None:
    """Calls per block, blocks wanted and extrapolation of the cases of one model × batch size.

    Each forward has its `estimate_s` (seconds per call) already; a planner call is estimated as NFE × its
    network's forward. A planner case whose `min_repeats` calls would take longer than `max_case_s` is not run:
    its time is extrapolated as NFE × the measured forward, which leaves out the solver's own arithmetic and so
    under-states the teacher's time and the student's speedup over it.

    The cases that run get blocks of the same length, that of the slowest call (at least `block_s`), and the
    same number of them: `budget_s` seconds' worth, at least `min_repeats`, at most `repeats`. With one block of
    every case per round (`timing.rounds`), each case is then sampled evenly over the same stretch of time, so
    a machine that is slower for a while slows every case of the group alike.
    """
    least = min(min_repeats, repeats)
    forward = {c.network: c.estimate_s for c in group if c.is_forward}
    for c in group:
        if not c.is_forward:
            c.estimate_s = c.nfe * forward[c.network]
            c.extrapolated = c.estimate_s * least > max_case_s
    block = max([block_s] + [c.estimate_s for c in group if not c.extrapolated])
    blocks = int(np.clip(budget_s / block, least, repeats))
    for c in group:
        c.number = max(1, round(block / c.estimate_s))
        c.target = 0 if c.extrapolated else blocks


# ------------------------------------------------------------------------------------------------ the models


def run_artifacts(run_root: str | Path) -> dict[str, Artifact]:
    """{student, teacher?, ddim?} from `run_root/student`, `run_root/teacher` (EDM) and `run_root/ddim` (DDPM)."""
    root = Path(run_root)
    if (root / "config.json").exists():
        raise ArtifactError(f"{root}: this is a single stage folder; pass the run root that holds student/ and "
                            f"teacher/ (e.g. {root.parent})")
    if not (root / "student").is_dir():
        raise ArtifactError(f"{root}: no student/ run folder to benchmark (train it with `ractd train student`)")
    arts = {"student": load_artifact(root / "student", expect_stage="student")}
    for folder in ("teacher", "ddim"):
        if (root / folder).is_dir():
            art = load_artifact(root / folder, expect_stage="teacher")
            key = "teacher" if art.config.teacher.kind == "edm" else "ddim"
            if key in arts:
                raise ArtifactError(f"{root}: both teacher/ and ddim/ hold a {art.config.teacher.kind} teacher")
            arts[key] = art
    return arts


def random_normalizers(obs_dim: int, act_dim: int, seed: int = 0) -> Any:
    """Min–max normalizers fitted on random data (timing only: the cost does not depend on their values)."""
    from ..data import NormalizerSet

    rng = np.random.default_rng(seed)
    return NormalizerSet.fit({"observations": rng.normal(size=(256, obs_dim)),
                              "actions": rng.uniform(-1, 1, size=(256, act_dim)), "returns": rng.normal(size=256)})


def untrained_artifacts(cfg: RunConfig, obs_dim: int | None = None, act_dim: int | None = None,
                        seed: int = 0) -> dict[str, Artifact]:
    """Randomly initialized student and teacher (EDM → 'teacher', DDPM → 'ddim') of `cfg`'s sizes, no run folder.

    Dimensions default to the task's (`ractd.envs.get_task(cfg.task)`).
    """
    if obs_dim is None or act_dim is None:
        from ..envs import get_task

        task = get_task(cfg.task)
        obs_dim, act_dim = obs_dim or task.obs_dim, act_dim or task.act_dim
    norms = random_normalizers(obs_dim, act_dim, seed)
    torch.manual_seed(seed)
    arts = {}
    for stage in ("student", "teacher"):
        net = build_network(cfg, stage, obs_dim, act_dim).eval()
        key = stage if stage == "student" or cfg.teacher.kind == "edm" else "ddim"
        arts[key] = Artifact.from_parts(Path(f"<untrained {cfg.task} {cfg.size} {stage}>"), stage, cfg, net, norms,
                                        obs_dim, act_dim)
    return arts
