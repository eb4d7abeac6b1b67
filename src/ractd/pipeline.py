"""From a `RunConfig` to trained artifacts: data preparation, network construction, the three stages.

Every stage writes a self-describing folder (spec: DESIGN.md "Artifacts"):
`config.json` (the resolved RunConfig + stage), `normalizer.safetensors`, `model.safetensors` (+ `ema.safetensors`),
`meta.json`, `train.csv`, TensorBoard events. Loading reads only safetensors and JSON (never pickle) and checks
the artifact against the dataset (dims, normalizer) with a clear message on mismatch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import RunConfig, from_dict, to_dict
from .data import (
    NormalizerSet,
    OfflineDataset,
    WindowDataset,
    WindowSpec,
    drop_last_step_per_episode,
    load_dataset,
    resegment_at_goal_departures,
    returns_to_go,
    split_episodes,
)
from .io import read_json, write_json
from .nn import ConditionalUnet1D, InverseDynamics, ResidualMLP, insert_zero_time_columns

STAGES = ("teacher", "reward", "student", "inverse_dynamics")


class ArtifactError(ValueError):
    """A run folder that is missing, incomplete, or does not match the data/task it is used with."""


# ------------------------------------------------------------------------------------------------ data


@dataclass
class PreparedData:
    dataset: OfflineDataset
    rtg: np.ndarray
    normalizers: NormalizerSet
    obs_dim: int
    act_dim: int


def maze_goal_xy(task_name: str) -> np.ndarray:
    """The fixed evaluation goal of a Maze2d task in the D4RL frame (spec §1.1 uses env._target)."""
    from .envs import make_env

    env = make_env(task_name)
    try:
        return np.asarray(env.unwrapped.goal, dtype=np.float64)[:2]
    finally:
        env.close()


def prepare_data(cfg: RunConfig) -> PreparedData:
    """Load, (Maze2d) re-segment, compute returns-to-go, fit the min–max normalizers (spec §1, §2.1)."""
    d = cfg.data
    ds = load_dataset(d.dataset)
    if d.max_dataset_steps is not None:
        keep = np.flatnonzero(ds.episode_ends <= d.max_dataset_steps)
        if keep.size == 0:
            raise ValueError(f"data.max_dataset_steps={d.max_dataset_steps} keeps no complete episode of {d.dataset}")
        ds = ds.select_episodes(keep)
    if d.goal_resegment:
        arrays = resegment_at_goal_departures(ds.to_arrays(), maze_goal_xy(cfg.task))
        ds = OfflineDataset.from_arrays(arrays, metadata=ds.metadata, source=d.dataset)
    rtg = returns_to_go(ds.rewards, ds.episode_ends, d.discount, d.termination_penalty, ds.terminals)
    if d.goal_resegment:  # the reference drops each maze episode's last step after the reward conversion
        ds = drop_last_step_per_episode(ds.with_extras(returns_to_go=rtg))
        rtg = ds.extras["returns_to_go"]
    norms = NormalizerSet.fit({"observations": ds.observations, "actions": ds.actions, "returns": rtg})
    return PreparedData(ds, np.asarray(rtg, dtype=np.float32), norms, ds.obs_dim, ds.act_dim)


class EpochSubset:
    """A BatchSource showing a fixed random subset of `n` items of `source` (cpu presets on large datasets)."""

    def __init__(self, source: Any, n: int, seed: int = 0):
        self.source = source
        self.index = np.random.default_rng(seed).permutation(len(source))[: min(n, len(source))]

    def __len__(self) -> int:
        return len(self.index)

    def get_batch(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        return self.source.get_batch(self.index[np.asarray(indices)])


def stage_windows(cfg: RunConfig, prep: PreparedData, stage: str) -> tuple[Any, Any | None]:
    """(train, validation) BatchSources of the stage: what x is, what conditions it, which episodes."""
    d = cfg.data
    if stage == "reward" and cfg.reward.input == "action_obs":
        spec = WindowSpec(horizon=1, n_obs_steps=1, x_key="actions", cond="history")
    elif stage == "inverse_dynamics":
        spec = WindowSpec(horizon=2, n_obs_steps=2, x_key="actions", cond="history")
    else:
        spec = WindowSpec(horizon=d.horizon, n_obs_steps=d.n_obs_steps, x_key=d.x_key, cond=d.cond)
    val_ratio = cfg.reward.val_ratio if stage == "reward" else 0.0
    n_ep = prep.dataset.num_episodes
    if val_ratio > 0 and n_ep > 1:
        train_ep, val_ep = split_episodes(n_ep, val_ratio, seed=42)
    else:
        train_ep, val_ep = np.arange(n_ep), None
    train = WindowDataset(prep.dataset, spec, prep.normalizers, episodes=train_ep, rtg=prep.rtg)
    val = None if val_ep is None else WindowDataset(prep.dataset, spec, prep.normalizers, val_ep, rtg=prep.rtg)
    if len(train) == 0:
        raise ValueError(f"{d.dataset}: no training window of horizon {spec.horizon} (episodes too short?)")
    if d.windows_per_epoch:
        train = EpochSubset(train, d.windows_per_epoch, seed=cfg.seed)
        val = None if val is None else EpochSubset(val, max(1, d.windows_per_epoch // 10), seed=cfg.seed)
    return train, val


# ------------------------------------------------------------------------------------------------ networks


def diffused_dim(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    return act_dim if cfg.data.x_key == "actions" else obs_dim


def cond_dim(cfg: RunConfig, obs_dim: int) -> int:
    return cfg.data.n_obs_steps * obs_dim if cfg.data.cond == "history" else 2 * obs_dim


def build_network(cfg: RunConfig, stage: str, obs_dim: int, act_dim: int) -> nn.Module:
    """The network of `stage` with the config's sizes (teacher and student share the U-Net shape, spec §4.1)."""
    u = cfg.teacher.unet
    if stage in ("teacher", "student"):
        student = stage == "student"
        return ConditionalUnet1D(
            diffused_dim(cfg, obs_dim, act_dim), cond_dim(cfg, obs_dim), u.time_embed_dim, u.down_dims,
            u.kernel_size, u.n_groups, n_time_inputs=2 if student else 1,
            dropout=cfg.student.unet_dropout if student else u.dropout,
            mid_dropout=cfg.student.unet_dropout if student else u.mid_dropout,
        )
    if stage == "reward":
        in_dim = act_dim + obs_dim if cfg.reward.input == "action_obs" else obs_dim
        return ResidualMLP(in_dim, cfg.reward.dims)
    if stage == "inverse_dynamics":
        return InverseDynamics(obs_dim, act_dim, cfg.inverse_dynamics.hidden)
    raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")


# ------------------------------------------------------------------------------------------------ artifacts


@dataclass
class Artifact:
    """A trained stage loaded from its folder."""

    path: Path
    stage: str
    config: RunConfig
    net: nn.Module
    normalizers: NormalizerSet
    obs_dim: int
    act_dim: int
    meta: dict[str, Any]
    weights: str = "model"


def write_stage_header(run_dir: Path, cfg: RunConfig, stage: str, prep: PreparedData) -> None:
    """config.json + normalizer.safetensors, written before training so a crashed run is self-describing."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", {"stage": stage, "obs_dim": prep.obs_dim, "act_dim": prep.act_dim,
                                         "dataset_fingerprint": prep.dataset.fingerprint(), "config": to_dict(cfg)})
    prep.normalizers.save(run_dir / "normalizer.safetensors")


def load_artifact(path: str | Path, weights: str = "model", expect_stage: str | None = None) -> Artifact:
    """Load a stage folder: config.json → network → `<weights>.safetensors` (no pickle), normalizers, meta."""
    from .train.checkpoint import load_state_dict_into

    path = Path(path)
    header_path = path / "config.json"
    if not header_path.exists():
        raise ArtifactError(f"{path}: not a ractd run folder (no config.json); train it with `ractd train ...`")
    header = read_json(header_path)
    for key in ("stage", "obs_dim", "act_dim", "config"):
        if key not in header:
            raise ArtifactError(f"{header_path}: missing key {key!r}")
    stage = header["stage"]
    if expect_stage and stage != expect_stage:
        raise ArtifactError(f"{path}: expected a {expect_stage} artifact, found a {stage} artifact")
    try:
        cfg = from_dict(RunConfig, header["config"])
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{header_path}: key 'config': {e}") from None
    net = build_network(cfg, stage, header["obs_dim"], header["act_dim"])
    weights_path = path / f"{weights}.safetensors"
    if not weights_path.exists():
        meta = read_json(path / "meta.json") if (path / "meta.json").exists() else {}
        if meta.get("status") == "finished":
            why = {"ema": "this run kept no EMA copy (train.ema=false)",
                   "best/model": "this run made no online selection (no eval callback)"}.get(weights, "")
            have = sorted(p.stem for p in path.glob("*.safetensors") if p.stem != "normalizer")
            raise ArtifactError(f"{weights_path}: missing; the {stage} training is finished but "
                                f"{why or 'wrote no such weights'} (weights here: {', '.join(have)})")
        raise ArtifactError(f"{weights_path}: missing (is the {stage} training finished?)")
    load_state_dict_into(net, weights_path)
    norms = NormalizerSet.load(path / "normalizer.safetensors")
    meta = read_json(path / "meta.json") if (path / "meta.json").exists() else {}
    return Artifact(path, stage, cfg, net.eval(), norms, header["obs_dim"], header["act_dim"], meta, weights)


def check_compatible(art: Artifact, prep: PreparedData, what: str) -> None:
    """Refuse an artifact trained on other dimensions or another normalization (spec §4.7 normalizer subtlety)."""
    if (art.obs_dim, art.act_dim) != (prep.obs_dim, prep.act_dim):
        raise ArtifactError(
            f"{art.path}: the {what} was trained with obs_dim={art.obs_dim}, act_dim={art.act_dim}, "
            f"but the dataset has obs_dim={prep.obs_dim}, act_dim={prep.act_dim}"
        )
    if not art.normalizers.equals(prep.normalizers, atol=1e-5):
        raise ArtifactError(
            f"{art.path}: the {what}'s normalizer differs from this dataset's (trained on other data?). "
            "Retrain it on the same dataset and data.* settings."
        )


# ------------------------------------------------------------------------------------------------ stages


def train_stage(cfg: RunConfig, stage: str, run_root: str | Path, name: str | None = None,
                progress: bool = True, resume: bool = True, callbacks: tuple = ()) -> Path:
    """Train one stage of `cfg` into `run_root/<name or stage>` and return that folder."""
    from .train import train
    from .train.meta import count_parameters
    from .train.objectives import (
        InverseDynamicsObjective,
        RewardObjective,
        StudentObjective,
        TeacherObjective,
    )

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    run_root = Path(run_root)
    run_dir = run_root / (name or stage)
    torch.manual_seed(cfg.seed)
    prep = prepare_data(cfg)
    net = build_network(cfg, stage, prep.obs_dim, prep.act_dim)
    section = {"teacher": cfg.teacher, "reward": cfg.reward, "student": cfg.student,
               "inverse_dynamics": cfg.inverse_dynamics}[stage]
    loop_cfg = section.train  # RunConfig gives every stage the run's seed and device
    meta: dict[str, Any] = {"stage": stage, "task": cfg.task, "dataset": cfg.data.dataset,
                            "dataset_fingerprint": prep.dataset.fingerprint()}

    if stage == "teacher":
        reward_net = None
        if cfg.teacher.reward_guidance > 0:
            reward = load_artifact(run_root / cfg.student.reward_run, expect_stage="reward")
            check_compatible(reward, prep, "reward model")
            reward_net = reward.net.requires_grad_(False)
        objective: Any = TeacherObjective(net, cfg.teacher.kind, cfg.teacher.edm, cfg.teacher.ddpm, reward_net,
                                          cfg.teacher.reward_guidance, cfg.student.reward_aggregate,
                                          cfg.data.n_obs_steps)
    elif stage == "reward":
        objective = RewardObjective(net, cfg.reward.input)
    elif stage == "inverse_dynamics":
        objective = InverseDynamicsObjective(net)
    else:
        weights = "model" if cfg.student.teacher_weights == "online" else "ema"
        teacher = load_artifact(run_root / cfg.student.teacher_run, weights=weights, expect_stage="teacher")
        check_compatible(teacher, prep, "teacher")
        if teacher.config.teacher.kind != "edm":
            kind = teacher.config.teacher.kind
            raise ArtifactError(f"{teacher.path}: a CTM student distils an EDM teacher, not {kind}")
        reward_net = None
        if cfg.student.ctm.reward_weight > 0:
            reward = load_artifact(run_root / cfg.student.reward_run, expect_stage="reward")
            check_compatible(reward, prep, "reward model")
            reward_net = reward.net
        # warm start: teacher weights with zero FiLM columns for the new s input (spec §4.9)
        net.load_state_dict(insert_zero_time_columns(teacher.net.state_dict(), cfg.teacher.unet.time_embed_dim))
        objective = StudentObjective(net, teacher.net, reward_net, cfg.student.ctm, cfg.student.reward_aggregate,
                                     cfg.data.n_obs_steps)
        meta["teacher"] = str(teacher.path)

    if stage == "student" and cfg.student.eval_every_epochs > 0:
        loop_cfg = dataclasses.replace(loop_cfg, callback_every=cfg.student.eval_every_epochs,
                                       select_metric="eval_score", select_mode="max")
        callbacks = (*callbacks, OnlineSelection(cfg, prep, run_dir))
    train_src, val_src = stage_windows(cfg, prep, stage)
    meta["parameters"] = count_parameters(net)
    write_stage_header(run_dir, cfg, stage, prep)
    train(objective, train_src, loop_cfg, run_dir, val_data=val_src, resume=resume, progress=progress,
          callbacks=list(callbacks), run_meta=meta)
    return run_dir


class OnlineSelection:
    """Online model selection (spec §6.3): every k epochs roll the current student out for n seeded episodes,
    keep the top-k checkpoints by normalized score in `topk/`, log `eval_score`; the loop keeps the best in `best/`.

    This is *online* selection (the test environment chooses the checkpoint); reports must say so.
    """

    def __init__(self, cfg: RunConfig, prep: PreparedData, run_dir: Path):
        from .evaluate.results import TopKCheckpoints

        self.cfg, self.prep, self.run_dir = cfg, prep, run_dir
        self.topk_path = run_dir / "topk" / "topk.json"
        self.topk = TopKCheckpoints.from_json(self.topk_path) if self.topk_path.exists() else \
            TopKCheckpoints(cfg.student.top_k, mode="max")

    def __call__(self, step: int, epoch: int, model: nn.Module, ema_model: nn.Module | None, run_dir: Path):
        from safetensors.torch import save_file

        from .envs import get_task, make_env
        from .evaluate import evaluate
        from .io import atomic_path
        from .planning import Planner, PlannerPolicy

        task = get_task(self.cfg.task)
        art = Artifact(run_dir, "student", self.cfg, model, self.prep.normalizers, self.prep.obs_dim,
                       self.prep.act_dim, {})
        was_training = model.training
        model.eval()
        try:
            planner = Planner(art, "one_step", device=str(next(model.parameters()).device), seed=self.cfg.seed)
            refs = (task.ref_min_score, task.ref_max_score) if task.has_reference_scores else None
            result = evaluate(PlannerPolicy(planner, self.cfg.eval.maze_controller if task.kind == "maze2d"
                                            else "tracking"), lambda: make_env(task), self.cfg.student.eval_episodes,
                              seed=self.cfg.eval.seed + 10_000, ref_scores=refs, progress=False)
        finally:
            model.train(was_training)
        score = float(result.score_mean_se[0] if refs else result.return_mean_se[0])
        path = self.run_dir / "topk" / f"step-{step}.safetensors"
        if self.topk.would_keep(score):
            with atomic_path(path) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
            for stale in self.topk.update(score, step, path):
                Path(stale).unlink(missing_ok=True)
            self.topk.to_json(self.topk_path)
        return {"eval_score": score}
