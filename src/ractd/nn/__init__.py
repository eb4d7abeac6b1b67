"""Networks: the 1-D temporal U-Net (teacher/student; optional cross-attention to condition tokens), the reward MLP,
inverse dynamics, time and condition embeddings."""

import torch

from .attention import CrossAttention1D
from .embeddings import FourierEmbedding, SinusoidalPosEmb, TimeEmbedding, TokenEmbedding
from .kind_tokens import NULL_KIND, KindConditionedNet
from .mlp import InverseDynamics, ResidualMLP
from .unet import ConditionalUnet1D, insert_zero_time_columns

__all__ = [
    "ConditionalUnet1D",
    "CrossAttention1D",
    "FourierEmbedding",
    "InverseDynamics",
    "KindConditionedNet",
    "NULL_KIND",
    "ResidualMLP",
    "SinusoidalPosEmb",
    "TimeEmbedding",
    "TokenEmbedding",
    "insert_zero_time_columns",
]


def count_parameters(module: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters: all of them, or only those with requires_grad (`trainable_only`)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
