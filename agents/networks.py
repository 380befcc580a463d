"""The Q-network: a token-window encoder followed by a linear or dueling head over V tokens."""

from __future__ import annotations

import torch
from torch import nn

from lm_envs.sb3.encoders import TokenWindowEncoder


class QNetwork(nn.Module):
    """Map a (batch, L) window of token ids to (batch, V) values, one per next token.

    The same module is the supervised baseline's model, where the outputs are logits.

    Args:
        vocab_size: V, the number of actions.
        context_length: L.
        encoder: ``"mlp"``, ``"gru"`` or ``"transformer"``.
        dueling: split the head into a state value and mean-centred advantages,
            Q(s, a) = V(s) + A(s, a) - mean_a A(s, a).
        **encoder_kwargs: ``embed_dim``, ``hidden_dim``, ``num_layers``, ``num_heads``.
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        encoder: str = "mlp",
        dueling: bool = False,
        **encoder_kwargs: int,
    ) -> None:
        super().__init__()
        self.encoder = TokenWindowEncoder(
            vocab_size, context_length, kind=encoder, **encoder_kwargs
        )
        self.dueling = dueling
        self.head = nn.Linear(self.encoder.out_dim, vocab_size)
        if dueling:
            self.value_head = nn.Linear(self.encoder.out_dim, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        features = self.encoder(tokens)
        if not self.dueling:
            return self.head(features)
        advantages = self.head(features)
        return self.value_head(features) + advantages - advantages.mean(dim=1, keepdim=True)
