"""Typed, validated run configuration: one `RunConfig` per task, built from a preset plus overrides.

A preset is only a named config (`ractd.presets`); the code reads fields, never task names. Unknown keys,
wrong types and impossible values fail before any work, naming the field (e.g. `student.ctm.reward_on`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .diffusion.ctm import CTMConfig
from .diffusion.ddpm import DDPMConfig
from .diffusion.edm import EDMConfig
from .loop_config import LoopConfig
from .schema import from_dict, merge, parse_override, to_dict


@dataclass
class DataConfig:
    """What is diffused and what conditions it is data (docs/algorithm.md §1.6), not a code path."""

    dataset: str = ""  # generated name | D4RL hdf5 path | Minari id
    horizon: int = 16  # H (c in the thesis)
    n_obs_steps: int = 1  # To (h in the thesis)
    # actions_observations: x = [actions, states] per step (conditioned plan diffusion, docs/ooc-maze2d.md)
    x_key: Literal["actions", "observations", "actions_observations"] = "actions"
    cond: Literal["history", "first_last", "none"] = "history"  # none: no conditioning vector (tokens/inpainting)
    discount: float = 0.99  # γ of the return-to-go (code; thesis B.2.2 differs, docs/algorithm.md §2.1)
    termination_penalty: float = 0.0
    goal_resegment: bool = False  # Maze2d: split episodes at goal departures, drop last step (docs/algorithm.md §1.1)
    # one continuous run (a generated Maze2d run: its goal segments follow each other without a reset): windows may
    # cross the segments' ends, as the OOC benchmark's test windows do (docs/ooc-maze2d.md)
    join_episodes: bool = False
    max_dataset_steps: int | None = None  # keep only the first N steps' complete episodes (quick runs)
    windows_per_epoch: int | None = None  # fixed random subset of windows per epoch (cpu presets on 1M-step data)
    # plan-diffusion windows: start at every step, the episode's last step repeated past its end (a planner that
    # replans every step plans from late states too; docs/roundabout.md); 0 = windows inside the episode only
    plan_pad_after: int = 0

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.n_obs_steps < 1:
            raise ValueError("data.horizon and data.n_obs_steps must be >= 1")
        if not 0 <= self.plan_pad_after < self.horizon:
            raise ValueError(f"data.plan_pad_after must be in [0, horizon − 1 = {self.horizon - 1}], got "
                             f"{self.plan_pad_after}")
        if self.n_obs_steps > self.horizon:
            raise ValueError(f"data.n_obs_steps ({self.n_obs_steps}) cannot exceed data.horizon ({self.horizon})")
        if not 0 < self.discount <= 1:
            raise ValueError(f"data.discount must be in (0, 1], got {self.discount}")


@dataclass
class UNetConfig:
    down_dims: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    time_embed_dim: int = 128
    kernel_size: int = 5
    n_groups: int = 8
    dropout: float = 0.0  # encoder/decoder blocks
    mid_dropout: float = 0.2  # the reference's hidden default in the mid blocks (docs/algorithm.md §3.1)

    def __post_init__(self) -> None:
        if not self.down_dims or any(d < 1 for d in self.down_dims):
            raise ValueError(f"unet.down_dims must be positive channel counts, got {self.down_dims}")
        if any(d % self.n_groups for d in self.down_dims):
            raise ValueError(f"unet.down_dims {self.down_dims} must be multiples of unet.n_groups={self.n_groups}")
        if self.time_embed_dim % 2 or self.time_embed_dim < 4:
            raise ValueError(f"unet.time_embed_dim must be even and >= 4, got {self.time_embed_dim}")
        for name in ("dropout", "mid_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"unet.{name} must be in [0, 1)")


@dataclass(frozen=True)
class PlanDDPMConfig(DDPMConfig):
    """The DDPM constants plus what the plan-diffusion model of docs/ooc-maze2d.md adds: the prediction target and
    the loss weight of the first step's actions. The defaults are the ε-prediction baseline's (unchanged)."""

    prediction: Literal["epsilon", "x0"] = "epsilon"
    action_weight: float = 1.0  # loss weight of the first step's action channels (x = [actions, states])

    def __post_init__(self) -> None:
        if self.num_train_steps < 1:
            raise ValueError(f"teacher.ddpm.num_train_steps must be >= 1, got {self.num_train_steps}")
        if self.action_weight < 0:
            raise ValueError(f"teacher.ddpm.action_weight must be >= 0, got {self.action_weight}")

    def base(self) -> DDPMConfig:
        """The schedule constants alone (what a DDPM denoiser stores)."""
        return DDPMConfig(self.num_train_steps, self.beta_max, self.clip_sample)


def _loop(**kw: Any) -> Any:
    return field(default_factory=lambda: LoopConfig(**kw))


@dataclass
class TeacherConfig:
    kind: Literal["edm", "ddpm"] = "edm"  # ddpm = ε-prediction DDPM/DDIM baseline (Table 3.3)
    unet: UNetConfig = field(default_factory=UNetConfig)
    edm: EDMConfig = field(default_factory=EDMConfig)
    ddpm: PlanDDPMConfig = field(default_factory=PlanDDPMConfig)
    reward_guidance: float = 0.0  # > 0: reward-aware teacher (Table 3.4): + σ·(−R(D(x_σ, σ))) in the teacher loss
    train: LoopConfig = _loop(epochs=1000, batch_size=1024, lr=1e-4, weight_decay=1e-6, warmup_steps=2000)


@dataclass
class RewardConfig:
    dims: list[int] = field(default_factory=lambda: [64, 128, 256])
    input: Literal["action_obs", "states"] = "action_obs"  # MuJoCo (a, s) | Maze2d s (docs/algorithm.md §2.3)
    val_ratio: float = 0.1
    train: LoopConfig = _loop(epochs=50, batch_size=64, lr=2e-4, weight_decay=1e-3, warmup_steps=20,
                              select_metric="val_loss", select_mode="min")

    def __post_init__(self) -> None:
        if not 0 <= self.val_ratio < 1:
            raise ValueError(f"reward.val_ratio must be in [0, 1), got {self.val_ratio}")


@dataclass
class StudentConfig:
    unet_dropout: float = 0.2  # every residual block of the student (docs/algorithm.md §4.1)
    ctm: CTMConfig = field(default_factory=CTMConfig)
    # which teacher weights are distilled (docs/algorithm.md §8 item 8)
    teacher_weights: Literal["online", "ema"] = "online"
    teacher_run: str = "teacher"  # sibling run folder of the teacher to distil (e.g. a reward-aware teacher)
    reward_run: str = "reward"  # sibling run folder of the frozen reward model
    reward_aggregate: Literal["first_action", "sum_states"] = "first_action"  # MuJoCo | Maze2d (docs/algorithm.md §4.7)
    # mode of the frozen teacher and target network during distillation (docs/algorithm.md §4.11): "eval" =
    # deterministic teacher steps and target evaluations; "train" = their dropout active, as the released code runs
    frozen_nets_mode: Literal["eval", "train"] = "eval"
    eval_every_epochs: int = 0  # online model selection: roll out every k epochs (0 = off)
    eval_episodes: int = 20
    top_k: int = 5
    train: LoopConfig = _loop(epochs=400, batch_size=4800, lr=1e-4, weight_decay=1e-4, warmup_steps=500, ema=False)

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.eval_episodes < 1 or self.eval_every_epochs < 0:
            raise ValueError("student.top_k and student.eval_episodes must be >= 1, student.eval_every_epochs >= 0")
        if not 0 <= self.unet_dropout < 1:
            raise ValueError(f"student.unet_dropout must be in [0, 1), got {self.unet_dropout}")
        if self.frozen_nets_mode not in ("eval", "train"):
            raise ValueError(f"student.frozen_nets_mode must be 'eval' or 'train', got {self.frozen_nets_mode!r}")


@dataclass
class InverseDynamicsConfig:
    """Maze2d's optional controller a_t = f(s_t, s_{t+1}), as the paper describes (docs/algorithm.md §8 item 13).

    Trained when its stage is run (`ractd train inverse-dynamics --task TASK`) and used by `ractd eval
    --controller inverse_dynamics`; the config has no on/off switch.
    """

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    train: LoopConfig = _loop(epochs=20, batch_size=256, lr=1e-3, weight_decay=1e-4, warmup_steps=100, ema=False)


@dataclass
class EvalConfig:
    """How a trained planner acts. Episode counts and parallelism are arguments of `ractd evaluate`."""

    seed: int = 0
    n_action_steps: int = 1  # MuJoCo closed loop: execute this many actions per plan
    maze_controller: Literal["tracking", "inverse_dynamics"] = "tracking"

    def __post_init__(self) -> None:
        if self.n_action_steps < 1:
            raise ValueError(f"eval.n_action_steps must be >= 1, got {self.n_action_steps}")


@dataclass
class CrossAttentionConfig:
    heads: int = 4
    q_kernel: int = 3  # query convolution along the horizon (1 = a plain linear map)
    prenorm: bool = True  # GroupNorm on the block's input before the query

    def __post_init__(self) -> None:
        if self.heads < 1 or self.q_kernel < 1 or self.q_kernel % 2 == 0:
            raise ValueError(f"conditioning.xattn: heads must be >= 1 and q_kernel odd and >= 1, got "
                             f"{self.heads}, {self.q_kernel}")


@dataclass
class ConditioningConfig:
    """Condition tokens of the plan-diffusion model (docs/conditioning.md, docs/ooc-maze2d.md).

    `kind`: none (inpainting only), concat (the flattened tokens join the time embedding) or cross_attention (a
    cross-attention block after every encoder/decoder residual block). `tokens`: waypoints = the window's three
    quarter-point states, normalized and embedded per scalar (`embed`: fourier = γ(p) with `n_freqs` frequencies and
    the input kept, 21 numbers per scalar by default; identity = the normalized values); composition = one
    categorical kind per road user of the window's first observation (the roundabout: null, ego, car, bicycle),
    embedded by a learnable table of width `kind_dim` that the network owns. Training replaces the tokens by the null
    tokens (zeros) with probability `p_uncond`, for classifier-free guidance.
    """

    kind: Literal["none", "concat", "cross_attention"] = "none"
    tokens: Literal["waypoints", "composition"] = "waypoints"
    kind_dim: int = 20  # composition tokens: width of the learnable embedding of one kind
    embed: Literal["fourier", "identity"] = "fourier"
    n_freqs: int = 10
    include_input: bool = True
    xattn: CrossAttentionConfig = field(default_factory=CrossAttentionConfig)
    null: Literal["zeros"] = "zeros"
    p_uncond: float = 0.1

    def __post_init__(self) -> None:
        if self.n_freqs < 0 or (self.n_freqs == 0 and not self.include_input and self.embed == "fourier"):
            raise ValueError(f"conditioning.n_freqs must be >= 0 (and > 0 without the input), got {self.n_freqs}")
        if not 0 <= self.p_uncond < 1:
            raise ValueError(f"conditioning.p_uncond must be in [0, 1), got {self.p_uncond}")
        if self.kind_dim < 1:
            raise ValueError(f"conditioning.kind_dim must be >= 1, got {self.kind_dim}")

    def per_scalar(self) -> int:
        """Numbers per embedded scalar: 1 + 2·n_freqs (fourier with the input), 2·n_freqs, or 1 (identity)."""
        return 1 if self.embed == "identity" else int(self.include_input) + 2 * self.n_freqs


@dataclass
class GuidanceConfig:
    """Classifier-free guidance at sampling: ho = (1 + λ)·out_cond − λ·out_null, interp = out_null + λ·(out_cond −
    out_null); λ = `scale` (0: the conditional model alone)."""

    scale: float = 0.0
    form: Literal["ho", "interp"] = "ho"


@dataclass
class PlanningConfig:
    """How known plan entries (the start state, the goal state) are imposed while sampling: noised (a fresh
    forward-noised copy before every step) or clean (the clean value after every step, and during training)."""

    inpaint: Literal["noised", "clean"] = "noised"


# The four diagonal (start region, goal region) pairs held out of Maze2d training windows (docs/ooc-maze2d.md).
DIAGONAL_PAIRS = [["TL", "BR"], ["BR", "TL"], ["TR", "BL"], ["BL", "TR"]]


@dataclass
class OocConfig:
    """The out-of-combination split (docs/ooc-maze2d.md). `split` = none: every window trains; region_pairs: the
    windows whose (start quadrant, goal quadrant) pair is in `holdout` are left out, and evaluation draws `n_tasks`
    in-distribution and `n_tasks` held-out tasks from a separate run of `test_run_steps` steps simulated with the
    seed `seed + test_seed_offset` in maze `maze`."""

    split: Literal["none", "region_pairs"] = "none"
    maze: str = ""  # umaze | medium | large (the map whose quadrants are the regions)
    regions: Literal["quadrants"] = "quadrants"
    holdout: list[list[str]] = field(default_factory=lambda: [list(p) for p in DIAGONAL_PAIRS])
    test_run_steps: int = 300_000
    test_seed_offset: int = 1000
    n_tasks: int = 200
    task_seed: int = 0

    def __post_init__(self) -> None:
        if self.split != "none" and not self.maze:
            raise ValueError("ooc.maze: a region_pairs split needs the maze (umaze, medium or large)")
        if self.test_seed_offset == 0:
            raise ValueError("ooc.test_seed_offset must not be 0: the test run needs another seed than training")
        if self.test_run_steps < 1 or self.n_tasks < 1:
            raise ValueError("ooc.test_run_steps and ooc.n_tasks must be >= 1")
        for pair in self.holdout:
            if len(pair) != 2 or any(r not in ("TL", "TR", "BL", "BR") for r in pair):
                raise ValueError(f"ooc.holdout: each pair is [start region, goal region] with regions TL, TR, BL, "
                                 f"BR, got {pair!r}")


@dataclass
class RunConfig:
    task: str = ""  # registry task name or gymnasium id: env, episode length, reference scores
    size: Literal["cpu", "paper"] = "cpu"
    seed: int = 0
    device: str = "cpu"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    inverse_dynamics: InverseDynamicsConfig = field(default_factory=InverseDynamicsConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    planning: PlanningConfig = field(default_factory=PlanningConfig)
    ooc: OocConfig = field(default_factory=OocConfig)

    def __post_init__(self) -> None:
        # every stage trains with the run's seed and device (the saved config says what was used)
        for section in (self.teacher, self.reward, self.student, self.inverse_dynamics):
            section.train = dataclasses.replace(section.train, seed=self.seed, device=self.device)
        multiple = 2 ** (len(self.teacher.unet.down_dims) - 1)
        if self.data.horizon % multiple:
            raise ValueError(
                f"data.horizon={self.data.horizon} is not divisible by 2^(levels-1) = {multiple} "
                f"(teacher.unet.down_dims has {len(self.teacher.unet.down_dims)} levels)"
            )
        if self.conditioning.kind != "none" and self.data.x_key != "actions_observations":
            raise ValueError(f"conditioning.kind={self.conditioning.kind!r} conditions plans of actions and states: "
                             "it needs data.x_key='actions_observations' (and data.cond='none')")
        if self.data.x_key == "actions_observations" and self.teacher.kind != "ddpm":
            raise ValueError("data.x_key='actions_observations' plans are trained with teacher.kind='ddpm'")
        if self.data.plan_pad_after and self.ooc.split != "none":
            raise ValueError("data.plan_pad_after: the region-pair split counts windows inside episodes only; use 0 "
                             "with ooc.split='region_pairs'")
        if self.conditioning.kind != "none" and self.data.cond != "none":
            raise ValueError(f"conditioning.kind={self.conditioning.kind!r} takes its condition from the tokens: set "
                             "data.cond='none'")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# Moved keys: `student.ctm.edm` (the student now distils with the teacher run's `teacher.edm`; dropped) and
# `student.ctm.init_noise_scale` (now `teacher.edm.init_noise_scale`).
# Keys an older ractd wrote into every config.json although no code read them: `eval.episodes`,
# `eval.max_parallel` and `eval.legacy_running_max` (`ractd eval` takes them as options) and
# `inverse_dynamics.enabled` (the stage is trained when it is run).
RETIRED_KEYS = ("eval.episodes", "eval.max_parallel", "eval.legacy_running_max", "inverse_dynamics.enabled")


def upgrade_config_dict(d: Any) -> Any:
    """A saved RunConfig dict (e.g. an old run's config.json) without the `RETIRED_KEYS`, ready for `from_dict`.

    Only keys that were never read are dropped, so the upgraded config describes the same run; every other key
    still goes through the strict parser. The input is not modified; anything but a dict is returned as is.
    """
    if not isinstance(d, dict):
        return d
    out = copy.deepcopy(d)
    ctm = (out.get("student") or {}).get("ctm") if isinstance(out.get("student"), dict) else None
    if isinstance(ctm, dict):  # the student's EDM copy is gone: it uses the teacher's `teacher.edm`
        ctm.pop("edm", None)
        if "init_noise_scale" in ctm:  # moved to the constants the teacher and its student share
            scale = ctm.pop("init_noise_scale")
            teacher = out.setdefault("teacher", {})
            if isinstance(teacher, dict):
                teacher.setdefault("edm", {}).setdefault("init_noise_scale", scale)
    for dotted in RETIRED_KEYS:
        *parents, leaf = dotted.split(".")
        node: Any = out
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def apply_overrides(cfg: RunConfig, overrides: list[str] | None = None, extra: dict | None = None) -> RunConfig:
    """cfg → `extra` (e.g. a config file, an old run's config.json) → command-line overrides: the command line
    wins. `extra` may contain the `RETIRED_KEYS`; a command-line override may not."""
    d = to_dict(cfg)
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"the config file: expected a JSON object, got {type(extra).__name__}")
    if extra:
        extra = upgrade_config_dict(extra)
        d = merge(d, extra)
        _refuse_derived_keys(extra, "the config file", d)
    for o in overrides or []:
        layer = parse_override(o)
        _refuse_derived_keys(layer, f"override {o!r}")
        d = merge(d, layer)
    return from_dict(RunConfig, d)


def _refuse_derived_keys(layer: dict[str, Any], source: str, merged: dict[str, Any] | None = None) -> None:
    """`<stage>.train.seed|device` follow the run's top-level `seed`/`device`; a value that would be ignored
    is an error (a saved config.json, where they agree with the top level, passes)."""
    for stage in ("teacher", "reward", "student", "inverse_dynamics"):
        train = layer[stage].get("train") if isinstance(layer.get(stage), dict) else None
        for key in ("seed", "device"):
            if isinstance(train, dict) and key in train and (merged is None or train[key] != merged.get(key)):
                raise ValueError(f"{source}: {stage}.train.{key} follows the run's top-level {key!r}; "
                                 f"set {key}=... instead")
