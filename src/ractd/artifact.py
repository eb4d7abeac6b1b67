"""The artifact format: a trained stage's folder, its networks and denoiser, written and read without pickle.

A run folder holds `config.json` (stage, dimensions, dataset fingerprint, the denoiser's constants and the full
resolved `RunConfig`), `normalizer.safetensors`, `model.safetensors` (+ `ema.safetensors`, `best/`), `meta.json`,
`train.csv` and TensorBoard events. Loading reads only safetensors and JSON and needs nothing from `ractd.train`,
so inference (planner, export, benchmark) never imports the training package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .config import RunConfig, upgrade_config_dict
from .data.normalizer import NormalizerSet
from .diffusion import CTMDenoiser, EDMConfig, EDMDenoiser, EpsDenoiser
from .io import read_json, write_json
from .nn import ConditionalUnet1D, InverseDynamics, KindConditionedNet, ResidualMLP
from .schema import from_dict, to_dict
from .weights import load_state_dict_into

STAGES = ("teacher", "reward", "student", "inverse_dynamics")


class ArtifactError(ValueError):
    """A run folder that is missing, incomplete, or does not match the data/task it is used with."""


# ------------------------------------------------------------------------------------------------ networks


def diffused_dim(cfg: RunConfig, obs_dim: int, act_dim: int) -> int:
    """Width of x: actions (locomotion), states (Maze2d), or both (conditioned plans), docs/algorithm.md §1.6."""
    return {"actions": act_dim, "observations": obs_dim, "actions_observations": act_dim + obs_dim}[cfg.data.x_key]


def cond_dim(cfg: RunConfig, obs_dim: int) -> int:
    """Width of the conditioning vector c: To observations, or (s_0, s_goal), docs/algorithm.md §1.6; none: 0."""
    if cfg.data.cond == "none":
        return 0
    return cfg.data.n_obs_steps * obs_dim if cfg.data.cond == "history" else 2 * obs_dim


def token_dim(cfg: RunConfig, obs_dim: int) -> int:
    """Width E of one condition token: every scalar of a waypoint state embedded, or one kind's learnable embedding
    (docs/conditioning.md §1)."""
    if cfg.conditioning.tokens == "composition":
        return cfg.conditioning.kind_dim
    return obs_dim * cfg.conditioning.per_scalar()


def build_network(cfg: RunConfig, stage: str, obs_dim: int, act_dim: int) -> nn.Module:
    """The raw network of `stage` with the config's sizes (teacher and student share the U-Net, §4.1)."""
    u = cfg.teacher.unet
    if stage == "teacher" and cfg.conditioning.kind != "none":  # condition tokens (docs/ooc-maze2d.md)
        from .conditioning import N_KINDS, n_condition_tokens

        c = cfg.conditioning
        xattn = c.kind == "cross_attention"
        width, n_tokens = token_dim(cfg, obs_dim), n_condition_tokens(c)
        unet = ConditionalUnet1D(
            diffused_dim(cfg, obs_dim, act_dim), 0 if xattn else n_tokens * width, u.time_embed_dim, u.down_dims,
            u.kernel_size, u.n_groups, dropout=u.dropout, mid_dropout=u.mid_dropout, token_dim=width if xattn else 0,
            xattn_heads=c.xattn.heads, xattn_q_kernel=c.xattn.q_kernel, xattn_prenorm=c.xattn.prenorm,
        )
        # composition: the kinds are embedded by a table the network owns (docs/roundabout.md)
        return unet if c.tokens == "waypoints" else KindConditionedNet(unet, N_KINDS, width, n_tokens, c.kind)
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


def denoiser_constants(cfg: RunConfig, stage: str) -> dict[str, Any] | None:
    """What turns the raw network of `stage` into a denoiser, as stored in config.json's "denoiser" key.

    The student carries its teacher's EDM constants (`cfg.teacher.edm`, checked against the teacher run when the
    student is trained); reward and inverse-dynamics models are not denoisers (None).
    """
    if stage == "student":
        return {"kind": "ctm", "edm": to_dict(cfg.teacher.edm)}
    if stage == "teacher":
        if cfg.teacher.kind == "ddpm":
            if cfg.teacher.ddpm.prediction != "epsilon":  # an x0 plan model: sampled from its config (ractd.planning)
                return None
            return {"kind": "eps", "ddpm": to_dict(cfg.teacher.ddpm.base())}
        return {"kind": "edm", "edm": to_dict(cfg.teacher.edm)}
    return None


def build_denoiser(net: nn.Module, constants: dict[str, Any]) -> EDMDenoiser | CTMDenoiser | EpsDenoiser:
    """The preconditioned denoiser module around `net` (see `ractd.diffusion.denoiser`)."""
    from .diffusion import DDPMConfig

    kind = constants["kind"]
    if kind == "eps":
        return EpsDenoiser(net, from_dict(DDPMConfig, constants["ddpm"], "denoiser.ddpm"))
    edm = from_dict(EDMConfig, constants["edm"], "denoiser.edm")
    if kind == "ctm":
        return CTMDenoiser(net, edm)
    if kind == "edm":
        return EDMDenoiser(net, edm)
    raise ValueError(f"denoiser.kind: expected 'edm', 'ctm' or 'eps', got {kind!r}")


# ------------------------------------------------------------------------------------------------ artifacts


@dataclass
class Artifact:
    """A trained stage loaded from its folder. `denoiser` wraps `net` for teachers and students (else None)."""

    path: Path
    stage: str
    config: RunConfig
    net: nn.Module
    normalizers: NormalizerSet
    obs_dim: int
    act_dim: int
    meta: dict[str, Any]
    weights: str = "model"
    denoiser: EDMDenoiser | CTMDenoiser | EpsDenoiser | None = None

    @classmethod
    def from_parts(cls, path: Path, stage: str, cfg: RunConfig, net: nn.Module, normalizers: NormalizerSet,
                   obs_dim: int, act_dim: int, meta: dict[str, Any] | None = None,
                   weights: str = "model") -> Artifact:
        """An in-memory artifact (e.g. a student being trained, for online selection) with its denoiser."""
        constants = denoiser_constants(cfg, stage)
        den = None if constants is None else build_denoiser(net, constants)
        return cls(path, stage, cfg, net, normalizers, obs_dim, act_dim, meta or {}, weights, den)


def stage_header(cfg: RunConfig, stage: str, obs_dim: int, act_dim: int, dataset_fingerprint: str
                 ) -> dict[str, Any]:
    """The content of a run folder's config.json."""
    header = {"stage": stage, "obs_dim": obs_dim, "act_dim": act_dim, "dataset_fingerprint": dataset_fingerprint,
              "config": to_dict(cfg)}
    constants = denoiser_constants(cfg, stage)
    if constants is not None:
        header["denoiser"] = constants
    return header


def write_stage_header(run_dir: Path, header: dict[str, Any], normalizers: NormalizerSet) -> None:
    """config.json + normalizer.safetensors (each atomic), so a crashed run is self-describing."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", header)
    normalizers.save(run_dir / "normalizer.safetensors")


def upgrade_header(header: dict[str, Any]) -> dict[str, Any]:
    """Read a config.json written by an earlier ractd (`upgrade_config_dict` for the config). An old student run
    kept its EDM constants in `student.ctm.edm`; they become its "denoiser" constants and its `teacher.edm`."""
    cfg = header["config"]
    ctm = (cfg.get("student") or {}).get("ctm") if isinstance(cfg, dict) else None
    header = {**header}
    if header.get("stage") == "student" and "denoiser" not in header and isinstance(ctm, dict) and "edm" in ctm:
        edm = dict(ctm["edm"])
        if "init_noise_scale" in ctm:
            edm["init_noise_scale"] = ctm["init_noise_scale"]
        header["denoiser"] = {"kind": "ctm", "edm": edm}
        cfg = {**cfg, "teacher": {**(cfg.get("teacher") or {}), "edm": edm}}
    header["config"] = upgrade_config_dict(cfg)
    return header


def load_artifact(path: str | Path, weights: str = "model", expect_stage: str | None = None) -> Artifact:
    """Load a stage folder: config.json → network (+ denoiser) → `<weights>.safetensors` (no pickle), normalizers."""
    path = Path(path)
    header_path = path / "config.json"
    if not header_path.exists():
        raise ArtifactError(f"{path}: not a ractd run folder (no config.json); train it with `ractd train ...`")
    header = read_json(header_path)
    for key in ("stage", "obs_dim", "act_dim", "config"):
        if key not in header:
            raise ArtifactError(f"{header_path}: missing key {key!r}")
    header = upgrade_header(header)
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
    constants = header.get("denoiser") or denoiser_constants(cfg, stage)
    try:
        den = None if constants is None else build_denoiser(net.eval(), constants)
    except (TypeError, ValueError, KeyError) as e:
        raise ArtifactError(f"{header_path}: key 'denoiser': {e}") from None
    return Artifact(path, stage, cfg, net.eval(), norms, header["obs_dim"], header["act_dim"], meta, weights, den)


def check_compatible(art: Artifact, obs_dim: int, act_dim: int, normalizers: NormalizerSet, what: str) -> None:
    """Refuse an artifact trained on other dimensions or another normalization (docs/algorithm.md §4.7)."""
    if (art.obs_dim, art.act_dim) != (obs_dim, act_dim):
        raise ArtifactError(
            f"{art.path}: the {what} was trained with obs_dim={art.obs_dim}, act_dim={art.act_dim}, "
            f"but the dataset has obs_dim={obs_dim}, act_dim={act_dim}"
        )
    if not art.normalizers.equals(normalizers, atol=1e-5):
        raise ArtifactError(
            f"{art.path}: the {what}'s normalizer differs from this dataset's (trained on other data?). "
            "Retrain it on the same dataset and data.* settings."
        )
