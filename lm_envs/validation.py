"""Argument and action checks shared by the environments."""

from __future__ import annotations

import numpy as np
from gymnasium.vector import AutoresetMode

from lm_envs.errors import suggest

_AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise TypeError/ValueError naming it and the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}).")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {bound}, got {value}.")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError with a suggestion."""
    if not isinstance(value, str) or value not in choices:
        hint = suggest(value, choices) if isinstance(value, str) else ""
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.{hint}")
    return value


def check_action(action: object, vocab_size: int) -> int:
    """Return a single action as an int, or raise naming the value and the valid range."""
    if isinstance(action, np.ndarray) and action.shape == ():
        action = action.item()
    if isinstance(action, bool) or not isinstance(action, (int, np.integer)):
        raise TypeError(
            f"action must be an integer token id, got {type(action).__name__} ({action!r}); "
            "pass an int in [0, vocab_size)."
        )
    action = int(action)
    if not 0 <= action < vocab_size:
        raise ValueError(
            f"action {action} is out of range; valid token ids are 0 .. {vocab_size - 1}."
        )
    return action


def check_actions(actions: object, num_envs: int, vocab_size: int) -> np.ndarray:
    """Return a batch of actions as an int64 array of shape (num_envs,), or raise."""
    array = np.asarray(actions)
    if array.shape != (num_envs,):
        array = array.reshape(-1) if array.size == num_envs else array
    if array.shape != (num_envs,):
        raise ValueError(f"actions must have shape ({num_envs},), got {np.shape(actions)}.")
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"actions must be integer token ids, got dtype {array.dtype}.")
    array = array.astype(np.int64, copy=False)
    if array.min() < 0 or array.max() >= vocab_size:
        bad = array[(array < 0) | (array >= vocab_size)][0]
        raise ValueError(
            f"action {bad} is out of range; valid token ids are 0 .. {vocab_size - 1}."
        )
    return array


def parse_autoreset_mode(mode: object) -> AutoresetMode:
    """Return the AutoresetMode named by ``mode`` (``"next_step"`` or ``"same_step"``)."""
    if mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        return mode
    name = mode
    if not isinstance(name, str) or name not in _AUTORESET_MODES:
        hint = suggest(name, _AUTORESET_MODES) if isinstance(name, str) else ""
        raise ValueError(
            f"autoreset_mode must be one of {list(_AUTORESET_MODES)}, got {mode!r}.{hint}"
        )
    return _AUTORESET_MODES[name]


def sub_env_seeds(seed: int | list[int | None] | None, num_envs: int) -> list[int | None]:
    """Return one seed per sub-environment: ``seed + i`` for an int, the list itself, or Nones.

    Sub-environment i of a batch reset with ``seed`` then follows the same trajectory as a
    single environment reset with ``seed + i``.
    """
    if seed is None:
        return [None] * num_envs
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return [int(seed) + i for i in range(num_envs)]
    seeds = list(seed)
    if len(seeds) != num_envs:
        raise ValueError(f"seed list has {len(seeds)} entries; expected num_envs={num_envs}.")
    return seeds
