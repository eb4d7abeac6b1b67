"""The training stages: teacher, reward model, student, inverse dynamics — each one `train_stage` call.

The top layer of the package: it joins data preparation (`ractd.prepare`), the artifact format
(`ractd.artifact`), the run folder's rules (`ractd.runfolder`), the objectives and the one training loop
(`ractd.train`), and online model selection. `prepare_stage` does every check and writes nothing;
`StageRun.train` writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .artifact import (
    STAGES,
    Artifact,
    ArtifactError,
    build_network,
    check_compatible,
    load_artifact,
    stage_header,
    upgrade_header,
    write_stage_header,
)
from .config import RunConfig
from .devices import check_device
from .prepare import PreparedData, check_dataset_fits_task, prepare_data, stage_windows
from .runfolder import (
    RunFolder,
    as_json,
    clear_run_folder,
    covered,
    differing_fields,
    flatten,
    plan_run_folder,
)
from .schema import to_dict

if TYPE_CHECKING:
    from .evaluate.results import TopKCheckpoints


# What each stage takes from the teacher run of its task (config paths; a path covers everything under it). The
# stages share the data settings so that their normalizers match; the student distils the teacher it is given,
# with that teacher's network shape and EDM constants (docs/algorithm.md §4).
INHERITED = {"teacher": (), "reward": ("data",), "inverse_dynamics": ("data",),
             "student": ("data", "teacher.kind", "teacher.unet", "teacher.edm")}
# Inherited data settings a stage may still set for itself: how many windows one of its epochs shows.
OWN_DATA_SETTINGS = ("data.windows_per_epoch",)


@dataclass(frozen=True)
class Inheritance:
    """The settings a stage takes from the teacher run (`inherited_settings`): `layer`, a partial RunConfig dict
    for `resolve_config(..., inherited=layer)`, read from the teacher run at `run`."""

    stage: str
    run: Path
    layer: dict[str, Any]

    def check(self, cfg: RunConfig) -> None:
        """Refuse a config whose data settings contradict the teacher run's (the user's --dataset, --set data.*
        or --config, which are layered over the inherited settings): one error naming both values."""
        ours, theirs = _flat(to_dict(cfg.data), "data"), _flat(self.layer.get("data", {}), "data")
        diffs = [path for path in sorted(theirs) if path not in OWN_DATA_SETTINGS and ours.get(path) != theirs[path]
                 and not _same_file(path, ours.get(path), theirs[path])]
        if not diffs:
            return
        what = "; ".join(f"{path} = {ours.get(path)!r} here, {theirs[path]!r} in the teacher run" for path in diffs)
        flags = " and ".join(dict.fromkeys("--dataset" if path == "data.dataset" else f"--set {path}"
                                           for path in diffs))
        stage = self.stage.replace("_", " ")
        raise ValueError(f"{self.run} was trained on other data ({what}); the {stage} stage shares the teacher "
                         f"run's dataset and data.* settings so that their normalizers match: drop {flags} to use "
                         "the teacher run's, or train the other data in its own run root with --runs DIR")

    def describe(self, own: RunConfig, cfg: RunConfig) -> str:
        """One line saying what was taken from the teacher run: its dataset always, and every other setting that
        differs from what the stage's own layers (`own`: preset, config file, overrides) would have given."""
        ours, theirs = flatten(to_dict(own)), flatten(to_dict(cfg))
        taken = [f"{path}={theirs[path]!r}" for path in sorted(theirs)
                 if path != "data.dataset" and covered(path, INHERITED[self.stage]) and ours.get(path) != theirs[path]]
        extra = f" and {', '.join(taken)}" if taken else ""
        return f"using the teacher run's dataset {cfg.data.dataset}{extra} ({self.run})"


def _flat(tree: dict[str, Any], prefix: str) -> dict[str, Any]:
    return flatten(as_json(tree), prefix)


def _same_file(path: str, a: Any, b: Any) -> bool:
    """Two spellings of one dataset file (a relative and an absolute path) are the same dataset."""
    if path != "data.dataset" or not isinstance(a, str) or not isinstance(b, str):
        return False
    return Path(a).is_file() and Path(b).is_file() and Path(a).resolve() == Path(b).resolve()


def inherited_settings(stage: str, run_root: str | Path, teacher_run: str = "teacher") -> Inheritance | None:
    """What `stage` takes from the teacher run `run_root/teacher_run` (`INHERITED`): the data settings for the
    reward model, the inverse dynamics and the student, and the teacher's `kind`, `unet` and `edm` for the student;
    None for the teacher itself, or when the teacher run does not exist yet."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    run = Path(run_root) / teacher_run
    path = run / "config.json"
    if not INHERITED[stage] or not path.is_file():
        return None
    from .io import read_json
    from .schema import from_dict

    try:
        header = upgrade_header(read_json(path))
        saved = to_dict(from_dict(RunConfig, header["config"]))  # every field, defaults filled in
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise ArtifactError(f"{path}: cannot read the teacher run's config ({e}); retrain the teacher, or point "
                            "the stage at another teacher run with --set student.teacher_run=NAME") from None
    layer: dict[str, Any] = {"data": saved["data"]}
    if stage == "student":
        edm = (header.get("denoiser") or {}).get("edm") or saved["teacher"]["edm"]
        layer["teacher"] = {"kind": saved["teacher"]["kind"], "unet": saved["teacher"]["unet"], "edm": edm}
    return Inheritance(stage, run, as_json(layer))


def check_same_teacher(cfg: RunConfig, teacher: Artifact) -> None:
    """The student is the teacher's U-Net distilled with the teacher's EDM constants: a student config whose
    `teacher.kind`, `teacher.unet` or `teacher.edm` disagrees with the teacher run is refused (no silent
    re-preconditioning of a teacher trained with other constants)."""
    if teacher.config.teacher.kind != "edm" or teacher.denoiser is None or teacher.denoiser.kind != "edm":
        raise ArtifactError(f"{teacher.path}: a CTM student distils an EDM teacher, not "
                            f"{teacher.config.teacher.kind}")
    ours = {"kind": cfg.teacher.kind, "unet": to_dict(cfg.teacher.unet), "edm": to_dict(cfg.teacher.edm)}
    theirs = {"kind": teacher.config.teacher.kind, "unet": to_dict(teacher.config.teacher.unet),
              "edm": to_dict(teacher.denoiser.edm)}
    diff = differing_fields(ours, theirs, "teacher", "the teacher run")
    if diff:
        raise ArtifactError(f"{teacher.path}: the student's teacher settings differ from the teacher run's "
                            f"({'; '.join(diff)}); the student uses the teacher run's settings — drop the "
                            f"override, or retrain the teacher with it")


@dataclass
class StageRun:
    """One stage, checked and ready to train into `folder.path`; nothing has been written yet.

    Built by `prepare_stage`. `folder.action` says what `train()` does: "start" (deleting the old run's files
    first on a `--restart`), "resume", or, for "finished", nothing at all.
    """

    folder: RunFolder
    header: dict[str, Any]
    prep: PreparedData
    objective: Any = None
    loop_cfg: Any = None
    train_src: Any = None
    val_src: Any = None
    callbacks: tuple = ()
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    @property
    def finished(self) -> bool:
        return self.folder.action == "finished"

    def train(self, progress: bool = True) -> Path:
        """Write the folder's header and normalizer, then train (or resume); a finished run is left as it is."""
        from .train import train

        if self.finished:
            return self.run_dir
        if self.folder.clears_old_run:
            clear_run_folder(self.run_dir)
        write_stage_header(self.run_dir, self.header, self.prep.normalizers)
        train(self.objective, self.train_src, self.loop_cfg, self.run_dir, val_data=self.val_src,
              resume=self.folder.action == "resume", progress=progress, callbacks=list(self.callbacks),
              run_meta=self.meta)
        return self.run_dir


def prepare_stage(cfg: RunConfig, stage: str, run_root: str | Path, name: str | None = None, resume: bool = True,
                  callbacks: tuple = ()) -> StageRun:
    """Every check of a training run, reading only: the device, the dataset against the task, the frozen runs the
    stage uses, the training windows, and last the run folder against the run already in it (`ractd.runfolder`).
    Returns the run ready to train (a finished one as soon as that is known); raises (one line, a ValueError) on
    the first problem."""
    from .nn import count_parameters, insert_zero_time_columns
    from .train.objectives import (
        InverseDynamicsObjective,
        RewardObjective,
        StudentObjective,
        TeacherObjective,
    )

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    check_device(cfg.device)
    run_root = Path(run_root)
    run_dir = run_root / (name or stage)
    torch.manual_seed(cfg.seed)
    prep = prepare_data(cfg)
    check_dataset_fits_task(cfg, prep)
    header = stage_header(cfg, stage, prep.obs_dim, prep.act_dim, prep.dataset.fingerprint())
    folder = plan_run_folder(run_dir, header, resume)
    if folder.action == "finished":  # nothing to do: the frozen runs it was trained from are not needed
        return StageRun(folder, header, prep)

    net = build_network(cfg, stage, prep.obs_dim, prep.act_dim)
    section = {"teacher": cfg.teacher, "reward": cfg.reward, "student": cfg.student,
               "inverse_dynamics": cfg.inverse_dynamics}[stage]
    loop_cfg = section.train  # RunConfig gives every stage the run's seed and device
    meta: dict[str, Any] = {"stage": stage, "task": cfg.task, "dataset": cfg.data.dataset,
                            "dataset_fingerprint": header["dataset_fingerprint"]}

    def frozen(run: str, what: str, weights: str = "model") -> Artifact:
        art = load_artifact(run_root / run, weights=weights, expect_stage=what.split()[0])
        check_compatible(art, prep.obs_dim, prep.act_dim, prep.normalizers, what)
        return art

    if stage == "teacher":
        reward_net = None
        if cfg.teacher.reward_guidance > 0:
            reward_net = frozen(cfg.student.reward_run, "reward model").net.requires_grad_(False)
        objective: Any = TeacherObjective(net, cfg.teacher.kind, cfg.teacher.edm, cfg.teacher.ddpm, reward_net,
                                          cfg.teacher.reward_guidance, cfg.student.reward_aggregate,
                                          cfg.data.n_obs_steps, **plan_loss_settings(cfg, prep.obs_dim, prep.act_dim))
    elif stage == "reward":
        objective = RewardObjective(net, cfg.reward.input)
    elif stage == "inverse_dynamics":
        objective = InverseDynamicsObjective(net)
    else:
        weights = "model" if cfg.student.teacher_weights == "online" else "ema"
        teacher = frozen(cfg.student.teacher_run, "teacher", weights)
        check_same_teacher(cfg, teacher)
        reward_net = frozen(cfg.student.reward_run, "reward model").net if cfg.student.ctm.reward_weight > 0 else None
        # warm start: teacher weights with zero FiLM columns for the new s input (docs/algorithm.md §4.9)
        net.load_state_dict(insert_zero_time_columns(teacher.net.state_dict(), cfg.teacher.unet.time_embed_dim))
        objective = StudentObjective(net, teacher.denoiser, reward_net, cfg.student.ctm, cfg.student.reward_aggregate,
                                     cfg.data.n_obs_steps, cfg.student.frozen_nets_mode)
        meta["teacher"] = str(teacher.path)

    if stage == "student" and cfg.student.eval_every_epochs > 0:
        loop_cfg = dataclasses.replace(loop_cfg, callback_every=cfg.student.eval_every_epochs,
                                       select_metric="eval_score", select_mode="max")
        callbacks = (*callbacks, OnlineSelection(cfg, prep, run_dir))
    train_src, val_src = stage_windows(cfg, prep, stage)
    split = getattr(getattr(train_src, "source", train_src), "split", None)
    if split is not None:  # the out-of-combination split: windows per region pair, kept and held out
        meta["ooc_split"] = split.counts()
    folder.check()  # the stage's own inputs are fine; may it write here?
    meta["parameters"] = count_parameters(net)
    return StageRun(folder, header, prep, objective, loop_cfg, train_src, val_src, tuple(callbacks), meta)


def plan_loss_settings(cfg: RunConfig, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """The DDPM loss settings of a plan-diffusion teacher (x = [actions, states] per step, docs/ooc-maze2d.md): the
    prediction target, the first action's loss weight, the start/goal entries when they are inpainted clean, and the
    condition dropout; {} for every other teacher (the ε-prediction baseline and EDM are trained as before)."""
    if cfg.data.x_key != "actions_observations":
        return {}
    from .diffusion import action_loss_weights, known_states

    h, ddpm = cfg.data.horizon, cfg.teacher.ddpm
    out: dict[str, Any] = {"prediction": ddpm.prediction,
                           "p_uncond": cfg.conditioning.p_uncond if cfg.conditioning.kind != "none" else 0.0}
    if ddpm.action_weight != 1:
        out["loss_weights"] = action_loss_weights(h, act_dim + obs_dim, act_dim, ddpm.action_weight)
    if cfg.planning.inpaint == "clean":
        out["known_mask"] = known_states(h, act_dim, torch.zeros(1, obs_dim), torch.zeros(1, obs_dim)).mask[0]
    return out


def train_stage(cfg: RunConfig, stage: str, run_root: str | Path, name: str | None = None,
                progress: bool = True, resume: bool = True, callbacks: tuple = ()) -> Path:
    """Train one stage of `cfg` into `run_root/<name or stage>` and return that folder.

    Everything is checked before the folder is touched (`prepare_stage`); a finished run with the same config and
    dataset is returned as it is, and a folder holding another run is refused (`ractd.runfolder`).
    """
    return prepare_stage(cfg, stage, run_root, name, resume, callbacks).train(progress)


class OnlineSelection:
    """Online model selection (docs/algorithm.md §6.3): every k epochs roll the current student out for n seeded
    episodes, keep the top-k checkpoints by normalized score in `topk/`, log `eval_score`; the loop keeps the best
    in `best/`.

    This is *online* selection (the test environment chooses the checkpoint); reports must say so.
    """

    def __init__(self, cfg: RunConfig, prep: PreparedData, run_dir: Path):
        self.cfg, self.prep, self.run_dir = cfg, prep, run_dir
        self.topk_path = run_dir / "topk" / "topk.json"
        self._topk: TopKCheckpoints | None = None

    @property
    def topk(self) -> TopKCheckpoints:
        """The kept checkpoints, read when training starts (a resume continues them; a restart has none)."""
        from .evaluate.results import TopKCheckpoints

        if self._topk is None:
            self._topk = TopKCheckpoints.from_json(self.topk_path) if self.topk_path.exists() else \
                TopKCheckpoints(self.cfg.student.top_k, mode="max")
        return self._topk

    def __call__(self, step: int, epoch: int, model: nn.Module, ema_model: nn.Module | None, run_dir: Path):
        from .envs import get_task, make_env
        from .evaluate import evaluate
        from .planning import Planner, PlannerPolicy
        from .weights import save_state_dict

        task = get_task(self.cfg.task)
        art = Artifact.from_parts(run_dir, "student", self.cfg, model, self.prep.normalizers, self.prep.obs_dim,
                                  self.prep.act_dim)
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
            save_state_dict(model, path)
            for stale in self.topk.update(score, step, path):
                Path(stale).unlink(missing_ok=True)
            self.topk.to_json(self.topk_path)
        return {"eval_score": score}
