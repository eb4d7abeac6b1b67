"""The out-of-combination presets: paper = the thesis's Maze2d hyperparameters field by field, cpu = the same code
path at small sizes; configs without conditioning build today's networks; the config refuses impossible mixes."""

from __future__ import annotations

import pytest
import torch

from ractd.artifact import build_network
from ractd.config import RunConfig, apply_overrides
from ractd.nn import ConditionalUnet1D, CrossAttention1D
from ractd.presets import preset
from ractd.schema import to_dict

OOC = ["ooc-maze2d-medium", "ooc-maze2d-large"]
PAPER_HORIZON = {"ooc-maze2d-medium": 256, "ooc-maze2d-large": 384}


@pytest.mark.parametrize("task", OOC)
def test_paper_presets_are_the_thesis_maze2d_values(task):
    """Table A.1 (Maze2d), field by field."""
    c = preset(task, "paper")
    t = c.teacher
    assert c.data.horizon == PAPER_HORIZON[task]  # H: 256 medium, 384 large
    assert t.kind == "ddpm" and t.ddpm.num_train_steps == 256  # diffusion steps T
    assert t.ddpm.action_weight == 1.0  # action weight
    dim = t.unet.down_dims[0]
    assert [d // dim for d in t.unet.down_dims] == [1, 4, 8] and dim == 32  # dim_mults (1, 4, 8), Diffuser's dim
    # condition embedding: 21 numbers per scalar, 3 waypoints of 4 scalars -> a 3 x 84 token matrix
    assert (c.conditioning.embed, c.conditioning.n_freqs, c.conditioning.include_input) == ("fourier", 10, True)
    assert c.conditioning.per_scalar() == 21 and 4 * c.conditioning.per_scalar() == 84
    assert c.conditioning.p_uncond == 0.1  # CFG drop probability
    assert (c.guidance.scale, c.guidance.form) == (1.3, "ho")  # CFG weight λ (the figures)
    steps_per_epoch = c.data.windows_per_epoch // t.train.batch_size
    assert steps_per_epoch == 10_000  # steps per epoch
    assert steps_per_epoch * t.train.epochs == 2_000_000  # train steps
    assert t.train.batch_size == 32 * 2  # batch 32 with gradient accumulation 2 (no batch norm: the same)
    assert t.train.lr == 2e-4  # learning rate
    assert t.train.ema and t.train.ema_max_decay == 0.995 and t.train.export == "ema"  # EMA decay, sampled from
    assert t.train.betas == (0.9, 0.999) and t.train.weight_decay == 0.0  # Adam
    # loss L2 with x0 prediction and clipped x̂0 as Diffuser's Maze2d; start and goal inpainted, noised (Algorithm 1)
    assert (t.ddpm.prediction, t.ddpm.clip_sample, c.planning.inpaint) == ("x0", True, "noised")
    assert (c.conditioning.kind, c.data.x_key, c.data.cond) == ("cross_attention", "actions_observations", "none")
    assert (t.unet.dropout, t.unet.mid_dropout) == (0.0, 0.0)
    assert c.ooc.split == "region_pairs" and c.ooc.maze == task.removeprefix("ooc-maze2d-")
    assert c.ooc.holdout == [["TL", "BR"], ["BR", "TL"], ["TR", "BL"], ["BL", "TR"]]
    assert (c.ooc.test_run_steps, c.ooc.test_seed_offset, c.ooc.n_tasks) == (1_000_000, 1000, 200)
    assert c.data.dataset == f"maze2d-{c.ooc.maze}" and c.data.max_dataset_steps is None and c.data.join_episodes


@pytest.mark.parametrize("task", OOC)
def test_cpu_presets_are_the_same_code_path_at_small_sizes(task):
    cpu, paper = preset(task, "cpu"), preset(task, "paper")
    assert cpu.data.horizon * 2 == paper.data.horizon
    assert cpu.teacher.ddpm.num_train_steps == 100 and cpu.teacher.unet.down_dims == [16, 32, 64]
    t = cpu.teacher.train
    assert t.batch_size == 64 and t.epochs * (cpu.data.windows_per_epoch // t.batch_size) == 8_000
    assert cpu.data.max_dataset_steps == {"ooc-maze2d-medium": 300_000, "ooc-maze2d-large": 400_000}[task]
    assert cpu.guidance.scale == 1.3
    same = ("conditioning", "guidance", "planning")
    for section in same:
        assert to_dict(getattr(cpu, section)) == to_dict(getattr(paper, section))
    assert (cpu.teacher.ddpm.prediction, cpu.teacher.ddpm.clip_sample) == ("x0", True)
    assert cpu.ooc.holdout == paper.ooc.holdout and cpu.ooc.maze == paper.ooc.maze


def test_a_config_without_conditioning_builds_todays_network():
    """The RACTD presets: the same parameters, drawn in the same order, as the U-Net built directly."""
    cfg = preset("maze2d-medium", "cpu")
    u = cfg.teacher.unet
    torch.manual_seed(0)
    ours = build_network(cfg, "teacher", 4, 2)
    torch.manual_seed(0)
    direct = ConditionalUnet1D(4, 8, u.time_embed_dim, u.down_dims, u.kernel_size, u.n_groups,
                               dropout=u.dropout, mid_dropout=u.mid_dropout)
    a, b = ours.state_dict(), direct.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(("kind", "global_dim", "tokens", "blocks"), [
    ("none", 0, 0, 0), ("concat", 3 * 84, 0, 0), ("cross_attention", 0, 84, 10)])
def test_the_conditioning_kind_picks_the_network(kind, global_dim, tokens, blocks):
    cfg = apply_overrides(preset("ooc-maze2d-medium", "cpu"), [f'conditioning.kind="{kind}"'])
    net = build_network(cfg, "teacher", 4, 2)
    assert (net.input_dim, net.global_cond_dim, net.token_dim) == (6, global_dim, tokens)
    assert sum(isinstance(m, CrossAttention1D) for m in net.modules()) == blocks  # none in the mid blocks


@pytest.mark.parametrize(("overrides", "message"), [
    (['data.x_key="observations"', 'data.cond="first_last"'], "needs data.x_key='actions_observations'"),
    (['teacher.kind="edm"'], "trained with teacher.kind='ddpm'"),
    (['data.cond="first_last"'], "set data.cond='none'"),
    (['ooc.holdout=[["TL","XX"]]'], "ooc.holdout"),
    (["ooc.test_seed_offset=0"], "another seed"),
    (["conditioning.p_uncond=1.5"], "p_uncond"),
])
def test_impossible_mixes_are_refused_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(preset("ooc-maze2d-medium", "cpu"), overrides)


def test_the_defaults_are_the_ractd_side():
    c = RunConfig()
    assert (c.conditioning.kind, c.ooc.split, c.guidance.scale) == ("none", "none", 0.0)
    assert (c.teacher.ddpm.prediction, c.teacher.ddpm.action_weight) == ("epsilon", 1.0)


def test_roundabout_paper_preset_is_the_thesis_table_a4():
    """Table A.4 (Roundabout), field by field; the network's size next to Table A.5's 13,546,370 parameters."""
    c = preset("ooc-roundabout", "paper")
    t = c.teacher
    assert c.data.horizon == 8 and t.kind == "ddpm" and t.ddpm.num_train_steps == 80  # H, T
    assert t.ddpm.action_weight == 10.0  # the first action's loss weight
    assert t.unet.down_dims == [64, 256, 512]  # dim_mults (1, 4, 8), dim 64 (Table A.5's size implies 56-64)
    assert (c.conditioning.tokens, c.conditioning.kind_dim, c.conditioning.kind) == ("composition", 20,
                                                                                      "cross_attention")
    assert c.conditioning.p_uncond == 0.1 and (c.guidance.scale, c.guidance.form) == (1.0, "ho")
    steps_per_epoch = c.data.windows_per_epoch // t.train.batch_size
    assert steps_per_epoch == 10_000 and steps_per_epoch * t.train.epochs == 10_000  # 1e4 train steps
    assert t.train.batch_size == 64 and t.train.lr == 2e-4 and t.train.ema_max_decay == 0.995
    assert (t.ddpm.prediction, t.ddpm.clip_sample, c.planning.inpaint) == ("x0", False, "noised")
    assert c.data.dataset == "roundabout-experts" and c.data.plan_pad_after == 7 and c.ooc.split == "none"
    params = sum(p.numel() for p in build_network(c, "teacher", 30, 5).parameters())
    assert 13_000_000 < params < 19_000_000  # 18.0 M: the U-Net of dim 64 plus ten cross-attention blocks
    cpu = preset("ooc-roundabout", "cpu")
    for section in ("conditioning", "guidance", "planning"):
        assert to_dict(getattr(cpu, section)) == to_dict(getattr(c, section))
    assert (cpu.data.horizon, cpu.teacher.ddpm.num_train_steps) == (8, 80)


def test_plan_padding_is_refused_with_the_region_pair_split():
    with pytest.raises(ValueError, match="plan_pad_after"):
        apply_overrides(preset("ooc-maze2d-medium", "cpu"), ["data.plan_pad_after=3"])
