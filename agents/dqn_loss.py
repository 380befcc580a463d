"""The pieces of the DQN update as pure torch functions: masked values, TD targets, loss, Polyak.

Masks are bool tensors (B, V), True for valid actions. Invalid actions get -inf before any max,
argmax or log-sum-exp, so they never supply a target value. A state without any valid action
(which the environments here never produce) gets value 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def masked_max(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Return the max over valid actions per row, (B,); rows without a valid action give 0."""
    best = torch.where(masks, values, float("-inf")).max(dim=1).values
    return torch.where(masks.any(dim=1), best, torch.zeros_like(best))


def masked_argmax(values: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Return the index of the best valid action per row, (B,) int64."""
    # torch.where skips the inverted-mask tensor that masked_fill(~masks, ...) would allocate.
    return torch.where(masks, values, float("-inf")).argmax(dim=1)


def soft_state_value(values: torch.Tensor, masks: torch.Tensor, alpha: float) -> torch.Tensor:
    """Return ``alpha * logsumexp(Q / alpha)`` over valid actions, (B,); 0 without valid actions.

    This is the state value of soft (entropy-regularised) Q-learning with temperature alpha; it
    tends to the max as alpha goes to 0.
    """
    scaled = (values / alpha).masked_fill(~masks, float("-inf"))
    value = alpha * torch.logsumexp(scaled, dim=1)
    return torch.where(masks.any(dim=1), value, torch.zeros_like(value))


def td_target(
    returns: torch.Tensor,
    discounts: torch.Tensor,
    next_q_target: torch.Tensor,
    next_masks: torch.Tensor,
    next_q_online: torch.Tensor | None = None,
    soft_alpha: float | None = None,
) -> torch.Tensor:
    """Return the n-step Bellman target ``returns + discounts * V(next_obs)``, (B,).

    ``discounts`` is ``gamma ** m`` for a window of m steps, or 0 when the episode terminated
    inside it. V(next_obs) is, by the arguments given:

    * the max over valid actions of the target network's Q (textbook DQN);
    * with ``next_q_online``, the target network's Q of the online network's best valid action
      (Double DQN);
    * with ``soft_alpha``, the soft value ``alpha * logsumexp(Q_target / alpha)`` over valid
      actions (soft Q-learning).

    Call it under ``torch.no_grad()``; the target must not carry gradients.
    """
    next_q_target = next_q_target.float()
    if soft_alpha is not None:
        next_values = soft_state_value(next_q_target, next_masks, soft_alpha)
    elif next_q_online is not None:
        best = masked_argmax(next_q_online.float(), next_masks)
        next_values = next_q_target.gather(1, best[:, None]).squeeze(1)
    else:
        next_values = masked_max(next_q_target, next_masks)
    # A terminated window has discount 0; selecting (not multiplying) keeps an infinite or
    # NaN next value out of the target.
    bootstrap = torch.where(discounts > 0, discounts * next_values, torch.zeros_like(next_values))
    return returns + bootstrap


def td_loss(
    q_taken: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, kind: str = "huber"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the importance-weighted mean loss and the TD errors ``q_taken - targets``.

    ``kind`` is ``"huber"`` (smooth L1 with delta 1) or ``"mse"`` (squared error).
    """
    td_errors = q_taken - targets
    if kind == "huber":
        per_sample = F.smooth_l1_loss(q_taken, targets, reduction="none")
    elif kind == "mse":
        per_sample = td_errors.square()
    else:
        raise ValueError(f"loss kind must be 'huber' or 'mse', got {kind!r}.")
    return (weights * per_sample).mean(), td_errors


@torch.no_grad()
def polyak_update(source: nn.Module, target: nn.Module, tau: float) -> None:
    """Move ``target`` towards ``source``: ``target = tau * source + (1 - tau) * target``.

    ``tau == 1`` copies the weights. Buffers (not trained) are copied as they are.
    """
    for target_param, source_param in zip(target.parameters(), source.parameters(), strict=True):
        if tau >= 1.0:
            target_param.copy_(source_param)
        else:
            target_param.lerp_(source_param, tau)
    for target_buffer, source_buffer in zip(target.buffers(), source.buffers(), strict=True):
        target_buffer.copy_(source_buffer)
