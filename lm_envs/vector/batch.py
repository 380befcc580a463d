"""The vector environment that runs any batch core with ``num_envs`` rows in one numpy call."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lm_envs.data import OBS_DTYPE
from lm_envs.envs.batch import BatchCore
from lm_envs.validation import (
    check_actions,
    check_choice,
    check_int,
    parse_autoreset_mode,
    sub_env_seeds,
)


def merge_row_infos(
    infos: dict[str, np.ndarray], row_infos: dict[str, np.ndarray], rows: np.ndarray, num_envs: int
) -> None:
    """Write per-row ``row_infos`` (entry j belongs to ``rows[j]``) into batch ``infos`` with masks."""
    for key, values in row_infos.items():
        if key not in infos:
            infos[key] = np.zeros(num_envs, dtype=values.dtype)
            infos[f"_{key}"] = np.zeros(num_envs, dtype=bool)
        infos[key][rows] = values
        infos[f"_{key}"][rows] = True


class BatchCoreVectorEnv(VectorEnv):
    """A Gymnasium vector environment over a batch core of ``num_envs`` rows.

    Subclasses validate with :meth:`_check_vector_args`, build the core and call
    :meth:`_attach_core`. Sub-environment ``i`` reset with ``seed + i`` follows the trajectory
    of the single environment over the same core reset with that seed.

    Autoreset is next-step by default: the step after an episode ends ignores that
    sub-environment's action and returns the first observation of a new episode with reward 0
    and neither flag set. With ``autoreset_mode="same_step"`` a finished sub-environment
    restarts inside the same step: the returned row is the new episode's first observation and
    ``infos["final_obs"]`` (an int32 (num_envs, L) array, rows valid where ``_final_obs`` is
    True) contains the observation that ended the episode. Stable-Baselines3's VecEnv expects
    that mode.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def _check_vector_args(
        self, num_envs: int, render_mode: str | None, autoreset_mode: str | AutoresetMode
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.autoreset_mode = parse_autoreset_mode(autoreset_mode)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        if render_mode is not None:
            check_choice("render_mode", render_mode, tuple(self.metadata["render_modes"]))
        self.render_mode = render_mode

    def _attach_core(self, core: BatchCore) -> None:
        self.core = core
        self.single_action_space = spaces.Discrete(core.vocab_size)
        self.single_observation_space = spaces.Box(
            0, core.vocab_size - 1, shape=(core.context_length,), dtype=OBS_DTYPE
        )
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._rngs: list[np.random.Generator] = []
        self._needs_reset = np.ones(self.num_envs, dtype=bool)

    def action_masks(self) -> np.ndarray:
        """Return a bool array (num_envs, V): True for token ids that are valid actions."""
        return np.broadcast_to(self.core.action_mask, (self.num_envs, self.core.vocab_size)).copy()

    def _reset_rows(self, rows: np.ndarray, infos: dict[str, np.ndarray]) -> None:
        row_infos = self.core.reset_rows(rows, [self._rngs[i] for i in rows])
        merge_row_infos(infos, row_infos, rows, self.num_envs)

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ):
        """Reset every sub-environment. ``seed`` is an int (sub-env i gets seed + i) or a list."""
        seeds = sub_env_seeds(seed, self.num_envs)
        if seed is not None or not self._rngs:
            self._rngs = [seeding.np_random(s)[0] for s in seeds]
        infos: dict[str, np.ndarray] = {}
        self._reset_rows(np.arange(self.num_envs), infos)
        self._needs_reset[:] = False
        return self.core.observe(), infos

    def step(self, actions):
        actions = check_actions(actions, self.num_envs, self.core.vocab_size)
        autoreset = self._needs_reset
        infos: dict[str, np.ndarray] = {}
        if autoreset.any():
            # Sub-environments whose episode ended on the previous step start a new one and
            # ignore their action in this step.
            self._reset_rows(np.flatnonzero(autoreset), infos)

        rewards, terminated, truncated, step_infos = self.core.step_rows(actions, ~autoreset)
        infos.update(step_infos)
        done = terminated | truncated

        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            # Finished sub-environments restart now; their last observation goes in the infos.
            if done.any():
                done_ids = np.flatnonzero(done)
                final_obs = np.zeros((self.num_envs, self.core.context_length), dtype=OBS_DTYPE)
                final_obs[done_ids] = self.core.observe()[done_ids]
                infos["final_obs"] = final_obs
                infos["_final_obs"] = done
                self._reset_rows(done_ids, infos)
        else:
            self._needs_reset = done
        return self.core.observe(), rewards.astype(np.float32), terminated, truncated, infos

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode is None:
            return None
        return tuple(self.core.render_row(i) for i in range(self.num_envs))
