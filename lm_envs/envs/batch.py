"""Batch cores, and the single environment that runs a batch core of one row.

A batch core contains the state and dynamics of ``num_envs`` episodes and steps them with numpy.
:class:`BatchCoreEnv` turns a core of one row into a Gymnasium environment, and
:class:`~lm_envs.vector.batch.BatchCoreVectorEnv` turns a core of ``num_envs`` rows into a
vector environment. Both run the same code, so sub-environment ``i`` of a batch reset with
``seed + i`` follows the trajectory of a single environment reset with that seed.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from lm_envs.data import OBS_DTYPE
from lm_envs.validation import check_action


class BatchCore(Protocol):
    """The state and dynamics of ``num_envs`` episodes, stepped with numpy.

    ``step_rows`` steps only rows where ``active`` is True and returns reward 0 and no episode
    end for the others. Info arrays follow Gymnasium's vector convention: ``infos[key]`` contains
    one entry per row and ``infos["_" + key]`` marks the rows where it is set.
    """

    num_envs: int
    vocab_size: int
    context_length: int
    action_mask: np.ndarray

    def reset_rows(
        self, rows: np.ndarray, rngs: Sequence[np.random.Generator]
    ) -> dict[str, np.ndarray]:
        """Start new episodes in ``rows`` (``rngs[j]`` draws for ``rows[j]``) and return their infos."""
        ...

    def step_rows(
        self, actions: np.ndarray, active: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Apply ``actions``; return float64 rewards, terminated, truncated and infos."""
        ...

    def observe(self) -> np.ndarray:
        """Return a copy of the current observations, shape (num_envs, context_length)."""
        ...

    def render_row(self, row: int) -> str:
        """Return the ansi rendering of one row."""
        ...


def row_info(infos: dict[str, np.ndarray], row: int) -> dict[str, Any]:
    """Return the entries of batch ``infos`` that are set for ``row``, as Python scalars."""
    info: dict[str, Any] = {}
    for key, values in infos.items():
        mask = infos.get(f"_{key}")
        if key.startswith("_") or (mask is not None and not mask[row]):
            continue
        value = values[row]
        info[key] = value.item() if isinstance(value, np.generic) else value
    return info


def all_rows(row_infos: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Return reset infos covering every row, with a True mask per key."""
    infos: dict[str, np.ndarray] = {}
    for key, values in row_infos.items():
        infos[key] = values
        infos[f"_{key}"] = np.ones(len(values), dtype=bool)
    return infos


def bind_env_arguments(env_class: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return the arguments of ``env_class.__init__`` (defaults filled in, no ``render_mode``).

    Native batched environments take the keyword arguments of their single environment. This
    fills in the same defaults and raises TypeError for names the single environment lacks.
    """
    parameters = inspect.signature(env_class.__init__).parameters
    names = [name for name in parameters if name not in ("self", "render_mode")]
    unknown = sorted(set(kwargs) - set(names))
    if unknown:
        raise TypeError(
            f"{env_class.__name__} got unexpected arguments {unknown}; valid arguments are "
            f"{names + ['render_mode', 'num_envs', 'autoreset_mode']}."
        )
    return {name: kwargs.get(name, parameters[name].default) for name in names}


class BatchCoreEnv(gym.Env):
    """A single environment that runs a :class:`BatchCore` of one row.

    Subclasses build the core in ``__init__`` and call :meth:`_attach_core`.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def _attach_core(self, core: BatchCore, render_mode: str | None) -> None:
        self.core = core
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(core.vocab_size)
        self.observation_space = spaces.Box(
            0, core.vocab_size - 1, shape=(core.context_length,), dtype=OBS_DTYPE
        )
        self._row = np.zeros(1, dtype=np.int64)
        self._done = True
        self._warned_after_done = False

    def action_masks(self) -> np.ndarray:
        """Return a bool array of length V: True for token ids that are valid actions."""
        return self.core.action_mask.copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        start_infos = self.core.reset_rows(self._row, [self.np_random])
        self._done = False
        info = row_info(all_rows(start_infos), 0)
        info["action_mask"] = self.action_masks()
        return self.core.observe()[0], info

    def step(self, action):
        action = check_action(action, self.core.vocab_size)
        if self._done:
            if not self._warned_after_done:
                warnings.warn(
                    "step() called after the episode ended; call reset() first. The final "
                    "observation is returned again with reward 0.",
                    stacklevel=2,
                )
                self._warned_after_done = True
            return self.core.observe()[0], 0.0, True, False, {"action_mask": self.action_masks()}

        actions = np.array([action], dtype=np.int64)
        rewards, terminated, truncated, infos = self.core.step_rows(actions, np.ones(1, bool))
        self._done = bool(terminated[0] or truncated[0])
        info = row_info(infos, 0)
        info["action_mask"] = self.action_masks()
        return (
            self.core.observe()[0],
            float(rewards[0]),
            bool(terminated[0]),
            bool(truncated[0]),
            info,
        )

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn('render() called without a render mode; pass render_mode="ansi".')
            return None
        return self.core.render_row(0)
