"""Networks: the 1-D temporal U-Net (teacher/student), the reward MLP, inverse dynamics."""

from .embeddings import SinusoidalPosEmb, TimeEmbedding
from .mlp import InverseDynamics, ResidualMLP
from .unet import ConditionalUnet1D, insert_zero_time_columns

__all__ = [
    "ConditionalUnet1D",
    "InverseDynamics",
    "ResidualMLP",
    "SinusoidalPosEmb",
    "TimeEmbedding",
    "insert_zero_time_columns",
]


def count_parameters(module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in module.parameters())
