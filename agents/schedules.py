"""Exploration: a linear epsilon (or beta) schedule, Ape-X per-env epsilons, random valid actions."""

from __future__ import annotations

import numpy as np


class LinearSchedule:
    """A value that moves linearly from ``start`` to ``end`` over the first ``fraction`` of training.

    Progress is ``step / total_steps``, clipped to [0, 1]. With ``fraction == 0`` the value is
    ``end`` from the first step, so tiny budgets (``total_steps == 1``) need no special case.

    Args:
        start: value at step 0.
        end: value from ``fraction * total_steps`` on.
        fraction: share of the budget spent moving from ``start`` to ``end``, in [0, 1].
        total_steps: the training budget in environment steps, >= 1.
    """

    def __init__(self, start: float, end: float, fraction: float, total_steps: int) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {fraction}.")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}.")
        self.start = float(start)
        self.end = float(end)
        self.fraction = float(fraction)
        self.total_steps = int(total_steps)

    def __call__(self, step: int) -> float:
        """Return the value after ``step`` environment steps."""
        if self.fraction == 0.0:
            return self.end
        progress = min(max(step / self.total_steps, 0.0), 1.0)
        ramp = min(progress / self.fraction, 1.0)
        return self.start + (self.end - self.start) * ramp


def per_env_epsilons(base: float, num_envs: int, alpha: float) -> np.ndarray:
    """Return one epsilon per environment, ``base ** (1 + i / (num_envs - 1) * alpha)``.

    This is the spread of Ape-X (Horgan et al., 2018, "Distributed Prioritized Experience
    Replay"): environment 0 explores with ``base`` and the last one with ``base ** (1 + alpha)``.
    A single environment gets ``base``.
    """
    if num_envs == 1:
        return np.array([base], dtype=np.float64)
    exponents = 1.0 + np.arange(num_envs, dtype=np.float64) / (num_envs - 1) * alpha
    return np.power(base, exponents)


def sample_valid_actions(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one action per row of the bool (k, V) ``masks``, uniformly among its True entries.

    Raises:
        ValueError: a row has no valid action.
    """
    counts = masks.sum(axis=1)
    if (counts == 0).any():
        row = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(f"row {row} of the action masks has no valid action to explore.")
    picks = np.floor(rng.random(len(masks)) * counts).astype(np.int64)
    # The chosen action is the first column where the running count of valid actions passes
    # the pick.
    return np.argmax(np.cumsum(masks, axis=1) > picks[:, None], axis=1).astype(np.int64)
