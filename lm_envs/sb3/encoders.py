"""Token-window encoders: embed ids, then MLP, GRU or a small causal transformer.

One definition serves the custom DQN's Q-network, the supervised baseline and the SB3 feature
extractors, so that every learner compared on a task has the same network.
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_KINDS = ("mlp", "gru", "transformer")


class TokenWindowEncoder(nn.Module):
    """Encode a (batch, context_length) window of token ids into (batch, out_dim) features.

    Args:
        vocab_size: number of token ids (rows of the embedding table).
        context_length: window length L.
        kind: ``"mlp"`` (embeddings concatenated, then ``num_layers`` ReLU layers),
            ``"gru"`` (final GRU state) or ``"transformer"`` (causal self-attention, features
            of the last position).
        embed_dim: embedding size per token.
        hidden_dim: width of the MLP layers or the GRU state; the transformer's feed-forward
            width.
        num_layers: MLP layers, GRU layers or transformer blocks.
        num_heads: attention heads (transformer only; must divide ``embed_dim``).
    """

    def __init__(
        self,
        vocab_size: int,
        context_length: int,
        kind: str = "mlp",
        embed_dim: int = 32,
        hidden_dim: int = 256,
        num_layers: int = 1,
        num_heads: int = 4,
    ) -> None:
        super().__init__()
        if kind not in ENCODER_KINDS:
            raise ValueError(f"encoder kind must be one of {list(ENCODER_KINDS)}, got {kind!r}.")
        if kind == "transformer" and embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}; "
                "pick embed_dim as a multiple of num_heads."
            )
        for name, value in (
            ("vocab_size", vocab_size),
            ("context_length", context_length),
            ("embed_dim", embed_dim),
            ("hidden_dim", hidden_dim),
            ("num_layers", num_layers),
        ):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        self.kind = kind
        self.context_length = context_length
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        if kind == "mlp":
            layers: list[nn.Module] = [nn.Flatten()]
            width = context_length * embed_dim
            for _ in range(num_layers):
                layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
                width = hidden_dim
            self.body = nn.Sequential(*layers)
            self.out_dim = width
        elif kind == "gru":
            self.body = nn.GRU(embed_dim, hidden_dim, num_layers=num_layers, batch_first=True)
            self.out_dim = hidden_dim
        else:
            self.position = nn.Parameter(torch.zeros(context_length, embed_dim))
            layer = nn.TransformerEncoderLayer(
                embed_dim,
                num_heads,
                dim_feedforward=hidden_dim,
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            self.body = nn.TransformerEncoder(
                layer, num_layers=num_layers, enable_nested_tensor=False
            )
            self.register_buffer(
                "causal_mask",
                nn.Transformer.generate_square_subsequent_mask(context_length),
                persistent=False,
            )
            self.norm = nn.LayerNorm(embed_dim)
            self.out_dim = embed_dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # SB3 hands observations over as floats; ids are exact in float32 below 2**24.
        ids = tokens.long()
        embedded = self.embedding(ids)
        if self.kind == "mlp":
            return self.body(embedded)
        if self.kind == "gru":
            _, hidden = self.body(embedded)
            return hidden[-1]
        features = self.body(embedded + self.position, mask=self.causal_mask, is_causal=True)
        return self.norm(features[:, -1])
