"""Stable-Baselines3 feature extractor over token-window observations."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from lm_envs.sb3.encoders import TokenWindowEncoder
from lm_envs.validation import check_int


def _window_shape(observation_space: spaces.Space) -> tuple[int, int]:
    """Return (vocab_size, context_length) of a token-window Box, or raise naming the problem."""
    if not isinstance(observation_space, spaces.Box):
        raise TypeError(
            "TokenWindowExtractor needs a Box observation space of token ids, got "
            f"{type(observation_space).__name__}; use it with lm_envs environments."
        )
    if len(observation_space.shape) != 1:
        raise ValueError(
            "TokenWindowExtractor needs a 1-D window (context_length,), got shape "
            f"{observation_space.shape}."
        )
    if not np.issubdtype(observation_space.dtype, np.integer):
        raise ValueError(
            f"TokenWindowExtractor needs integer token ids, got dtype {observation_space.dtype}."
        )
    low, high = observation_space.low, observation_space.high
    if np.any(low != 0) or np.any(high != high.flat[0]):
        raise ValueError(
            "TokenWindowExtractor needs bounds low=0 and one shared high=V-1 for every position, "
            f"got low in [{low.min()}, {low.max()}] and high in [{high.min()}, {high.max()}]."
        )
    # SB3 feeds observations as float32, which represents every integer id below 2**24 exactly.
    vocab_size = int(high.flat[0]) + 1
    if vocab_size > 2**24:
        raise ValueError(
            f"vocab_size={vocab_size} is above 2**24, where float32 observations lose ids; "
            "use a smaller vocabulary."
        )
    return vocab_size, int(observation_space.shape[0])


class TokenWindowExtractor(BaseFeaturesExtractor):
    """Embed a window of token ids and encode it with an MLP, a GRU or a causal transformer.

    The vocabulary size V is the space's ``high + 1`` and the context length its shape. Use it
    through ``policy_kwargs``::

        policy_kwargs = dict(
            features_extractor_class=TokenWindowExtractor,
            features_extractor_kwargs=dict(encoder="gru"),
        )

    Args:
        observation_space: ``Box(0, V - 1, shape=(context_length,))`` of integer ids.
        features_dim: size of the features; None keeps the encoder's output size, any other
            value adds a linear layer and a ReLU that project to it.
        encoder: ``"mlp"``, ``"gru"`` or ``"transformer"``.
        embed_dim: embedding size per token.
        hidden_dim: MLP or GRU width, or the transformer's feed-forward width.
        num_layers: MLP layers, GRU layers or transformer blocks.
        num_heads: attention heads (transformer only; must divide ``embed_dim``).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        features_dim: int | None = None,
        encoder: str = "mlp",
        embed_dim: int = 32,
        hidden_dim: int = 256,
        num_layers: int = 1,
        num_heads: int = 4,
    ) -> None:
        vocab_size, context_length = _window_shape(observation_space)
        if features_dim is not None:
            features_dim = check_int("features_dim", features_dim, 1)
        window_encoder = TokenWindowEncoder(
            vocab_size,
            context_length,
            kind=encoder,
            embed_dim=embed_dim,
            hidden_dim=hidden_dim,
            num_layers=num_layers,
            num_heads=num_heads,
        )
        super().__init__(observation_space, features_dim or window_encoder.out_dim)
        self.encoder = window_encoder
        self.projection: nn.Module = nn.Identity()
        if features_dim is not None:
            self.projection = nn.Sequential(
                nn.Linear(window_encoder.out_dim, features_dim), nn.ReLU()
            )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder(observations))
