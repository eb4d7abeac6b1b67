"""Diffusion core: EDM teacher, ODE samplers, CTM student and the RACTD losses, DDPM/DDIM baseline."""

from .ctm import (
    CTMConfig,
    RACTDLosses,
    ctm_g,
    ctm_jump,
    ctm_loss,
    dsm_loss,
    dsm_sigmas,
    multistep_sample,
    one_step_sample,
    ractd_loss,
    reward_loss,
    sample_ctm_indices,
    teacher_solve,
    update_target,
)
from .ddpm import DDPMConfig, cosine_alpha_bars, ddpm_loss, sample_ddim
from .edm import (
    EDMConfig,
    edm_denoise,
    edm_loss,
    huber_c,
    karras_loss_weight,
    karras_sigma,
    karras_sigmas,
    lognormal_sigmas,
    preconditioning,
    pseudo_huber,
)
from .sampling import heun_nfe, heun_step, initial_noise, sample_euler, sample_heun

__all__ = [name for name in dir() if not name.startswith("_")]
